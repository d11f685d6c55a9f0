"""Behaviour cloning and DAgger of the DFTSP oracle, in torch (sequential action mode).

The idea, top to bottom:

1. **Expert labels.** In sequential mode a slot is built one user at a time. At a state
   with partial batch S, the expert's *set* of correct actions is every user that belongs
   to some maximum-value feasible batch containing S (all optimal completions, found by
   level-wise enumeration of the feasible supersets of S with ``check_rows``; feasible
   batches are down-closed, SPEC 2.4, so level j+1 only extends feasible level-j sets).
   With nothing left to add the label is "dispatch" (action K). On the oracle's own path
   (S empty) these are exactly the users of the optimal batches DFTSP finds. With
   ``expert: oracle-urgent`` the weights are those of the foresight baseline
   ``oracle-urgent`` (maximum value, then the soonest-expiring members), so the labels
   are its batches: a teacher that already looks past the slot.
2. **Rollouts.** Each iteration plays ``steps_per_iter`` env steps; every action comes
   from the expert with probability beta_i = beta0 * beta_decay^i, else from the learner
   (masked argmax). ``bc``: beta = 1 always (expert states only). ``dagger``: beta
   decays, so the learner's own mistakes (and the queue states they lead to) are labelled.
3. **Aggregate and fit.** All labelled states go into one buffer; ``grad_steps`` Adam
   updates of the masked *set* cross-entropy
   ``-log sum_{a in labels} softmax_mask(logits)_a`` (any optimal action is right).
4. **Act.** The network is a plain MLP (obs -> K + 1 logits); at inference the masked
   argmax (``action_masks()``) makes every action feasible. It is saved as ``torch-mlp``
   (see :mod:`edgellm.agents.learned`).

Periodic held-out evaluation (seeds 10 000+) keeps the best network; checkpoints hold the
network, the optimizer, the buffer and the counters, so ``--resume`` continues.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgellm.agents.foresight import lexicographic_weights, urgency_rank
from edgellm.agents.learned import LearnedPolicy, TorchMLP, mlp
from edgellm.envs import EdgeLLMEnv
from edgellm.eval.runner import build_scenario
from edgellm.io import write_json
from edgellm.system import check_rows
from edgellm.system.feasibility import OK
from edgellm.train.common import (
    EVAL_SEED,
    FINAL_SEED,
    HeldOut,
    atomic_save,
    prepare_run_dir,
    progress_bar,
    prune_checkpoints,
    sidecar,
    train_seed,
    write_yaml,
)
from edgellm.train.config import TrainArgs

CKPT_SUFFIX = ".pt"


# ----------------------------------------------------------------------------- the expert
def best_completions(p, chosen: tuple[int, ...], addable: np.ndarray,
                     max_rows: int = 20_000, weight: np.ndarray | None = None
                     ) -> list[frozenset] | None:
    """All maximum-weight feasible batches that contain ``chosen`` (instance indices).

    ``addable``: sorted indices c with ``chosen + c`` feasible; ``weight``: per candidate
    (default the value ``p.weight``). Returns None when a level would need more than
    ``max_rows`` feasibility checks (the caller falls back)."""
    w = p.weight if weight is None else weight
    base = float(w[list(chosen)].sum()) if chosen else 0.0
    best_val, best = base, [frozenset(chosen)]
    level = [(int(c),) for c in addable]
    cand = [int(c) for c in addable]
    while level:
        vals = base + np.array([w[list(t)].sum() for t in level], dtype=float)
        m = float(vals.max())
        if m > best_val:
            best_val, best = m, []
        if m == best_val:
            best += [frozenset(chosen + t) for t, v in zip(level, vals) if v == m]
        have = set(level)
        new = [t + (c,) for t in level for c in cand
               if c > t[-1] and (t[:-1] + (c,)) in have]  # Apriori join
        if not new:
            break
        if len(new) > max_rows:
            return None
        rows = np.array([chosen + t for t in new], dtype=np.intp)
        code = check_rows(p, rows).code
        level = [t for t, c in zip(new, code) if c == OK]
    return best


class Expert:
    """Optimal next actions in sequential mode (see the module docstring, step 1).

    ``kind="oracle"``: the batches of maximum value (the myopic DFTSP oracle);
    ``"oracle-urgent"``: among those, the ones whose members expire soonest (the foresight
    baseline :class:`~edgellm.agents.foresight.UrgentOraclePolicy`, same integer weights)."""

    def __init__(self, max_rows: int = 20_000, kind: str = "oracle"):
        self.max_rows = max_rows
        self.kind = kind
        self.fallbacks = 0
        self._slot_key = None
        self._best: list[frozenset] | None = None

    def new_slot(self) -> None:
        self._slot_key = None
        self._best = None

    def labels(self, base) -> np.ndarray:
        """Bool (K + 1,): the optimal actions at the env's current state."""
        K = base.n_users
        out = np.zeros(K + 1, dtype=bool)
        view = base.slot_view()
        pos = {u: i for i, u in enumerate(view.users)}
        chosen = frozenset(pos[u] for u in view.chosen)
        mask = base.action_masks()[:K]
        addable = np.array(sorted(pos[int(u)] for u in np.flatnonzero(mask)), dtype=np.intp)
        if addable.size == 0:
            out[K] = True
            return out
        best = None
        if self._best is not None and self._slot_key == view.slot:
            best = [T for T in self._best if chosen <= T]  # still on an optimal path
        if not best:
            p = view.prepared
            weight = None
            if self.kind == "oracle-urgent":
                weight = lexicographic_weights(p.weight, urgency_rank(p, view.users))
            best = best_completions(p, tuple(sorted(chosen)), addable, self.max_rows, weight)
            if best is None:  # too many feasible sets: every addable user counts as right
                self.fallbacks += 1
                out[[view.users[i] for i in addable]] = True
                return out
        self._best, self._slot_key = best, view.slot
        nxt = set().union(*best) - chosen
        if not nxt:
            out[K] = True
        else:
            out[[view.users[i] for i in nxt]] = True
        return out


# ----------------------------------------------------------------------------- the network
def set_loss(logits, mask, labels):
    """Masked set cross-entropy and accuracy (argmax among the allowed actions is a label)."""
    import torch

    neg = torch.finfo(logits.dtype).min / 4
    z = logits.masked_fill(~mask, neg)
    logz = torch.logsumexp(z, dim=1)
    logl = torch.logsumexp(z.masked_fill(~labels, neg), dim=1)
    acc = labels.gather(1, z.argmax(dim=1, keepdim=True)).float().mean()
    return (logz - logl).mean(), acc


def permute_users(obs, mask, labels, n_users: int, gen):
    """Augmentation: the same states with the users relabelled by a random permutation
    per sample (users are exchangeable: their rows of the observation, their mask and label
    entries move together; the global features and the dispatch action stay)."""
    import torch

    from edgellm.envs.env import GLOBAL_FEATURES

    B, K = obs.shape[0], n_users
    perm = torch.argsort(torch.rand(B, K, generator=gen), dim=1)
    F = (obs.shape[1] - len(GLOBAL_FEATURES)) // K  # columns per user (12 with media)
    users = obs[:, :K * F].reshape(B, K, F)
    users = users.gather(1, perm[:, :, None].expand(B, K, F)).reshape(B, K * F)
    obs = torch.cat([users, obs[:, K * F:]], dim=1)
    mask = torch.cat([mask[:, :K].gather(1, perm), mask[:, K:]], dim=1)
    labels = torch.cat([labels[:, :K].gather(1, perm), labels[:, K:]], dim=1)
    return obs, mask, labels


def net_policy(net, algo: str) -> LearnedPolicy:
    """``net`` behind the eval policy interface (sequential mode, masked argmax)."""
    return LearnedPolicy.from_model(TorchMLP(net, "sequential"), "sequential", algo)


class Buffer:
    """Aggregated labelled states (grows to ``capacity``, then drops the oldest)."""

    def __init__(self, obs_dim: int, n_actions: int, capacity: int):
        self.capacity = capacity
        self.obs = np.zeros((0, obs_dim), np.float32)
        self.mask = np.zeros((0, n_actions), bool)
        self.labels = np.zeros((0, n_actions), bool)

    def add(self, obs: list, mask: list, labels: list) -> None:
        if not obs:
            return
        self.obs = np.concatenate([self.obs, np.asarray(obs, np.float32)])[-self.capacity:]
        self.mask = np.concatenate([self.mask, np.asarray(mask, bool)])[-self.capacity:]
        self.labels = np.concatenate([self.labels, np.asarray(labels, bool)])[-self.capacity:]

    def __len__(self) -> int:
        return len(self.obs)


# ----------------------------------------------------------------------------- training state
@dataclass
class Learner:
    """Everything training changes, as saved in a checkpoint: the network, its optimizer,
    the aggregated buffer, both generators (beta draws, minibatches), the counters and the
    best network so far on the held-out evaluation."""

    net: Any
    opt: Any
    buf: Buffer
    rng: np.random.Generator
    gen: Any  # torch.Generator
    state: dict = field(default_factory=lambda: {
        "num_timesteps": 0, "iteration": 0, "episodes": 0, "best_value": -1.0,
        "train_s": 0.0})
    best: dict | None = None

    @classmethod
    def create(cls, args: TrainArgs, hp: dict, obs_dim: int, n_actions: int) -> Learner:
        import torch

        torch.set_flush_denormal(True)  # Adam's tiny second moments: denormals slow CPUs 5x
        torch.manual_seed(args.seed)
        net = mlp([obs_dim, *hp["net_arch"], n_actions], hp["activation"])
        opt = torch.optim.Adam(net.parameters(), lr=hp["learning_rate"],
                               weight_decay=hp["weight_decay"])
        return cls(net, opt, Buffer(obs_dim, n_actions, hp["buffer_size"]),
                   np.random.default_rng(args.seed), torch.Generator().manual_seed(args.seed))

    def load(self, path) -> None:
        import torch

        ck = torch.load(path, map_location="cpu", weights_only=False)
        self.net.load_state_dict(ck["net"])
        self.opt.load_state_dict(ck["opt"])
        self.buf.obs, self.buf.mask, self.buf.labels = ck["obs"], ck["mask"], ck["labels"]
        self.rng.bit_generator.state = ck["rng"]
        self.gen.set_state(ck["torch_rng"])
        self.state.update(ck["state"])
        self.best = ck.get("best")

    def save(self, run) -> None:
        """Checkpoint ``checkpoints/step_<N>.pt`` (the last three are kept)."""
        import torch

        ck = {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "obs": self.buf.obs,
              "mask": self.buf.mask, "labels": self.buf.labels,
              "rng": self.rng.bit_generator.state, "torch_rng": self.gen.get_state(),
              "state": dict(self.state), "best": self.best}
        path = run / "checkpoints" / f"step_{self.state['num_timesteps']}{CKPT_SUFFIX}"
        atomic_save(path, lambda tmp: torch.save(ck, tmp))
        prune_checkpoints(run, CKPT_SUFFIX)


@dataclass
class SlotStats:
    """Slots finished during one rollout and what they served and dropped."""

    slots: int = 0
    served: int = 0
    dropped: int = 0


class Rollout:
    """The training env, played on from one iteration to the next; episodes use the
    training seeds ``train_seed(seed) + episode``."""

    def __init__(self, env: EdgeLLMEnv, expert: Expert, seed: int, learner: Learner):
        self.env, self.expert, self.seed, self.learner = env, expert, seed, learner
        self.policy = TorchMLP(learner.net, "sequential")
        self.obs = self._reset()

    def _reset(self):
        obs, _ = self.env.reset(seed=train_seed(self.seed) + self.learner.state["episodes"])
        self.expert.new_slot()
        return obs

    def collect(self, n_steps: int, beta: float) -> tuple[tuple[list, list, list], SlotStats]:
        """Step 2 of the module docstring: ``n_steps`` steps, each action the expert's with
        probability ``beta``, else the learner's (masked argmax). Returns the labelled
        states with a real choice (observation, mask, expert labels) and slot figures."""
        env, expert, rng = self.env, self.expert, self.learner.rng
        self.learner.net.eval()
        d_obs, d_mask, d_lab = [], [], []
        stats = SlotStats()
        for _ in range(n_steps):
            mask = env.action_masks()
            labels = expert.labels(env)
            if mask.sum() > 1:  # a real choice: keep it
                d_obs.append(self.obs)
                d_mask.append(mask)
                d_lab.append(labels)
            if rng.random() < beta:
                action = int(np.flatnonzero(labels)[0])
            else:
                action = self.policy.predict(self.obs, action_masks=mask)[0]
            self.obs, _, _, truncated, info = env.step(action)
            if info["slot_done"]:
                expert.new_slot()
                stats.served += info["served"]
                stats.dropped += sum(info["dropped"].values())
                stats.slots += 1
            if truncated:
                self.learner.state["episodes"] += 1
                self.obs = self._reset()
        self.learner.state["num_timesteps"] += n_steps
        return (d_obs, d_mask, d_lab), stats


def fit(learner: Learner, hp: dict, n_users: int) -> tuple[list[float], list[float]]:
    """Step 3: ``grad_steps`` Adam updates of the set loss on minibatches of the whole
    buffer (users permuted per sample with ``augment``). Returns the losses and accuracies."""
    import torch

    net, buf, gen = learner.net, learner.buf, learner.gen
    net.train()
    losses, accs = [], []
    n = len(buf)
    for _ in range(hp["grad_steps"] if n else 0):
        idx = torch.randint(n, (min(hp["batch_size"], n),), generator=gen).numpy()
        b_obs, b_mask, b_lab = (torch.as_tensor(buf.obs[idx]), torch.as_tensor(buf.mask[idx]),
                                torch.as_tensor(buf.labels[idx]))
        if hp["augment"]:
            b_obs, b_mask, b_lab = permute_users(b_obs, b_mask, b_lab, n_users, gen)
        loss, acc = set_loss(net(b_obs), b_mask, b_lab)
        learner.opt.zero_grad()
        loss.backward()
        learner.opt.step()
        losses.append(loss.item())
        accs.append(acc.item())
    return losses, accs


def log_iteration(writer, step: int, learner: Learner, beta: float, losses: list,
                  accs: list, slots: SlotStats, label_fallbacks: int) -> None:
    """TensorBoard scalars of one iteration (``imitation/``, ``slot/``, ``time/``)."""
    if losses:
        writer.add_scalar("imitation/loss", float(np.mean(losses)), step)
        writer.add_scalar("imitation/accuracy", float(np.mean(accs)), step)
    writer.add_scalar("imitation/beta", beta, step)
    writer.add_scalar("imitation/buffer_size", len(learner.buf), step)
    writer.add_scalar("imitation/label_fallbacks", label_fallbacks, step)
    if slots.slots:
        writer.add_scalar("slot/served_per_slot", slots.served / slots.slots, step)
        writer.add_scalar("slot/dropped_per_slot", slots.dropped / slots.slots, step)
    writer.add_scalar("time/steps_per_s", step / max(learner.state["train_s"], 1e-9), step)


def evaluate_and_keep_best(learner: Learner, held: HeldOut, algo: str, writer, step: int,
                           bar, run_name: str) -> None:
    """Periodic held-out evaluation; the best network so far is kept for the end."""
    net = learner.net
    net.eval()
    res = held.evaluate(net_policy(net, algo))
    net.train()
    for k in ("served_per_slot", "value_per_slot", "dropped_per_slot", "oracle_ratio",
              "decision_ms_per_slot"):
        writer.add_scalar(f"eval/{k}", res[k], step)
    if bar is not None:
        bar.write(f"[{run_name}] step {step}: held-out value/slot "
                  f"{res['value_per_slot']:.3f} = {res['oracle_ratio']:.3f} x oracle")
    if res["value_per_slot"] > learner.state["best_value"]:
        learner.state["best_value"] = res["value_per_slot"]
        learner.best = {k: v.clone() for k, v in net.state_dict().items()}


def _next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` above ``step``."""
    return (step // every + 1) * every


def finish(args: TrainArgs, hp: dict, learner: Learner, cfg, writer, obs_dim: int) -> dict:
    """Step 4: the final model (the best network on the periodic evaluation, else the last;
    optionally PPO-fine-tuned), its final held-out evaluation, model + sidecar + eval.json."""
    import torch

    run, net, state = args.run_dir, learner.net, learner.state
    if learner.best is not None:
        net.load_state_dict(learner.best)
    with torch.no_grad():  # no denormal weights: they would slow inference on any CPU
        for prm in net.parameters():
            prm[prm.abs() < 1e-30] = 0.0
    net.eval()
    finetuned = None
    if hp["finetune_steps"] > 0:
        from edgellm.train.finetune import finetune_maskable_ppo

        held = HeldOut(build_scenario(args.scenario, args.scenario_overrides, args.eval_slots),
                       [EVAL_SEED + i for i in range(args.eval_episodes)],
                       run / "oracle_eval.json")
        finetuned = finetune_maskable_ppo(net, args, hp, cfg, writer, state["num_timesteps"],
                                          held if args.eval_freq else None)
    final = HeldOut(build_scenario(args.scenario, args.scenario_overrides,
                                    args.final_eval_slots),
                    [FINAL_SEED + i for i in range(args.final_eval_episodes)],
                    run / "oracle_final.json")
    K = cfg.n_users
    extra = {"num_timesteps": state["num_timesteps"], "train_s": round(state["train_s"], 3),
             "net": {"hidden": list(hp["net_arch"]), "activation": hp["activation"]}}
    if finetuned is None:
        atomic_save(run / "model.pt", lambda tmp: torch.save(net.state_dict(), tmp))
        res = final.evaluate(net_policy(net, args.algo))
        meta = sidecar(args, algo=args.algo, fmt="torch-mlp", weights="model.pt",
                       obs_dim=obs_dim, n_users=K, extra=extra)
    else:
        model = finetuned
        atomic_save(run / "model.zip", lambda tmp: model.policy.save(tmp))
        res = final.evaluate(LearnedPolicy.from_model(model, "sequential", args.algo,
                                                      masked=True))
        meta = sidecar(args, algo=args.algo, fmt="sb3-policy", weights="model.zip",
                       obs_dim=obs_dim, n_users=K,
                       extra={**extra, "policy_class": "MaskableActorCriticPolicy",
                              "finetune_steps": hp["finetune_steps"]})
    writer.add_scalar("final/oracle_ratio", res["oracle_ratio"], state["num_timesteps"])
    writer.close()
    res.update(num_timesteps=state["num_timesteps"], train_s=round(state["train_s"], 3))
    write_json(run / "eval.json", res)
    write_json(run / "model.json", meta)
    return res


# ----------------------------------------------------------------------------- training
def train_imitation(args: TrainArgs, hp: dict) -> dict:
    """Run BC / DAgger as configured; write the run folder; return the final evaluation.

    Each iteration: collect (rollouts with a beta-mixture of expert and learner), fit (on
    the aggregated buffer), log, evaluate on held-out seeds when due, checkpoint when due;
    then finish (best network, optional fine-tuning, final evaluation, files)."""
    from torch.utils.tensorboard import SummaryWriter

    run = args.run_dir
    resume_from = prepare_run_dir(args, CKPT_SUFFIX)
    total = int(args.timesteps or hp["n_timesteps"])
    cfg = build_scenario(args.scenario, args.scenario_overrides)
    env = EdgeLLMEnv(cfg, action_mode="sequential")
    K = cfg.n_users
    obs_dim = int(env.observation_space.shape[0])
    learner = Learner.create(args, hp, obs_dim, K + 1)
    if resume_from is not None:
        learner.load(resume_from[1])
    state = learner.state
    beta_decay = 1.0 if args.algo == "bc" else hp["beta_decay"]
    held = HeldOut(build_scenario(args.scenario, args.scenario_overrides, args.eval_slots),
                   [EVAL_SEED + i for i in range(args.eval_episodes)], run / "oracle_eval.json")
    writer = SummaryWriter(str(run / "tb"))
    write_yaml(run / "config.yaml", {"args": args.to_dict(),
                                     "hyperparams": {**hp, "n_timesteps": total}})
    expert = Expert(kind=hp["expert"])
    rollout = Rollout(env, expert, args.seed, learner)
    bar = progress_bar(total, state["num_timesteps"], args.progress, f"{args.algo} {args.run}")
    t_start = time.perf_counter() - state["train_s"]
    next_eval = _next_multiple(state["num_timesteps"], args.eval_freq) if args.eval_freq \
        else None
    next_ckpt = _next_multiple(state["num_timesteps"], args.checkpoint_freq)
    try:
        while state["num_timesteps"] < total:
            beta = hp["beta0"] * beta_decay ** state["iteration"]
            n_steps = min(hp["steps_per_iter"], total - state["num_timesteps"])
            labelled, slots = rollout.collect(n_steps, beta)
            learner.buf.add(*labelled)
            losses, accs = fit(learner, hp, K)
            state["iteration"] += 1
            step = state["num_timesteps"]
            state["train_s"] = time.perf_counter() - t_start
            log_iteration(writer, step, learner, beta, losses, accs, slots, expert.fallbacks)
            if bar is not None:
                bar.update(n_steps)
                bar.set_postfix(loss=f"{np.mean(losses) if losses else 0:.3f}",
                                acc=f"{np.mean(accs) if accs else 0:.3f}", beta=f"{beta:.2f}")
            out_of_time = args.max_seconds is not None and state["train_s"] >= args.max_seconds
            last = step >= total or out_of_time
            if next_eval is not None and (step >= next_eval or last):  # also after the last
                evaluate_and_keep_best(learner, held, args.algo, writer, step, bar, args.run)
                next_eval = _next_multiple(step, args.eval_freq)
            if step >= next_ckpt or last:
                next_ckpt = _next_multiple(step, args.checkpoint_freq)
                learner.save(run)
            if out_of_time:
                break
    except KeyboardInterrupt:
        learner.save(run)
        raise
    finally:
        if bar is not None:
            bar.close()
    return finish(args, hp, learner, cfg, writer, obs_dim)
