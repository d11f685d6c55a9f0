"""``edgellm train`` and ``edgellm demo``: every algorithm trains, saves, loads in eval;
resume continues the step count; bad hyperparameters give one clear error; the expert's
labels are optimal; the quick demo runs end to end."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from edgellm.cli import main
from edgellm.errors import EdgeLLMError

SMALL = ["--set", "n_users=4", "--set", "max_slots=16"]
FAST = ["--eval-freq", "128", "--eval-episodes", "1", "--eval-slots", "4",
        "--final-eval-episodes", "1", "--final-eval-slots", "4", "--checkpoint-freq", "128",
        "--quiet"]
# small rollouts / updates so a few hundred steps exercise several iterations
HP = {"ppo": ["n_steps=64", "batch_size=64", "n_epochs=2", "n_envs=2"],
      "maskable-ppo": ["n_steps=64", "batch_size=64", "n_epochs=2", "n_envs=2"],
      "a2c": ["n_steps=8", "n_envs=2"],
      "dqn": ["learning_starts=50", "buffer_size=1000"],
      "bc": ["steps_per_iter=64", "grad_steps=5"],
      "dagger": ["steps_per_iter=64", "grad_steps=5"]}


def _train(tmp_path, algo, steps=256, extra=()):
    argv = ["train", "--algo", algo, "--scenario", "default", "--timesteps", str(steps),
            "--seed", "0", "--logdir", str(tmp_path), "--run-name", algo, *SMALL, *FAST,
            "--hyperparams", *HP[algo], *extra]
    assert main(argv) == 0
    return tmp_path / algo


def _play_one_episode(model_json) -> dict:
    from edgellm.agents import make_policy
    from edgellm.envs import get_scenario
    from edgellm.eval.runner import run_episode

    policy = make_policy(f"learned:{model_json}")
    cfg = get_scenario("default", n_users=4, max_slots=8)
    return run_episode(policy, cfg, seed=123, action_mode="subset")


@pytest.mark.parametrize("algo", ["ppo", "maskable-ppo", "a2c", "dqn", "bc", "dagger"])
def test_each_algo_trains_saves_and_eval_loads_it(tmp_path, algo):
    run = _train(tmp_path, algo)
    meta = json.loads((run / "model.json").read_text())
    assert meta["schema"] == "edgellm.policy/1" and meta["algo"] == algo
    assert meta["n_users"] == 4 and meta["obs_dim"] == 12 * 4 + 4  # 12 per user: media
    assert (run / meta["weights"]).is_file()
    ev = json.loads((run / "eval.json").read_text())
    assert ev["num_timesteps"] >= 256 and 0 <= ev["oracle_ratio"] <= 2
    cfg = (run / "config.yaml").read_text()
    assert "hyperparams" in cfg and "n_timesteps: 256" in cfg
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    rec = _play_one_episode(run / "model.json")
    assert rec["slots"] == 8 and rec["action_mode"] == meta["action_mode"]
    if algo in ("maskable-ppo", "bc", "dagger"):  # masked argmax: never an invalid action
        assert rec["invalid_actions"] == 0


def test_dagger_then_maskable_ppo_finetuning(tmp_path):
    """finetune_steps > 0: the imitation net (of the foresight teacher here) initialises
    MaskablePPO, which fits its critic first, then trains with periodic held-out evaluations
    and is saved as an sb3 zip that eval loads and plays with masks (never invalid)."""
    run = _train(tmp_path, "dagger", extra=[
        "expert=oracle-urgent", "finetune_steps=256", "finetune_warmup=64",
        "finetune_eval_freq=64", "finetune_n_envs=2", "finetune_rollout=64"])
    meta = json.loads((run / "model.json").read_text())
    assert meta["format"].startswith("sb3") and (run / meta["weights"]).is_file()
    assert {"finetune/steps", "finetune/oracle_ratio", "finetune/best_step"} <= _tb_tags(run)
    rec = _play_one_episode(run / "model.json")
    assert rec["slots"] == 8 and rec["invalid_actions"] == 0


def _tb_tags(run) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for f in (run / "tb").rglob("events.out.tfevents.*"):
        ea = EventAccumulator(str(f))
        ea.Reload()
        tags |= set(ea.Tags()["scalars"])
    return tags


def test_tensorboard_has_domain_scalars(tmp_path):
    tags = _tb_tags(_train(tmp_path, "dagger"))
    assert {"imitation/loss", "imitation/accuracy", "slot/served_per_slot",
            "eval/oracle_ratio", "eval/served_per_slot"} <= tags
    tags = _tb_tags(_train(tmp_path, "maskable-ppo"))
    assert {"slot/served_per_slot", "slot/dropped_per_slot", "eval/oracle_ratio"} <= tags
    assert any(t.startswith("train/") for t in tags)


@pytest.mark.parametrize("algo", ["maskable-ppo", "dagger"])
def test_resume_continues_the_step_count(tmp_path, algo):
    run = _train(tmp_path, algo, steps=256)
    assert json.loads((run / "eval.json").read_text())["num_timesteps"] == 256
    # without --resume the same run folder is refused
    with pytest.raises(EdgeLLMError, match="--resume"):
        from edgellm.train import TrainArgs, train
        train(TrainArgs(algo=algo, logdir=str(tmp_path), run_name=algo, timesteps=64,
                        scenario_overrides={"n_users": 4}, progress=False))
    argv = ["train", "--algo", algo, "--timesteps", "512", "--logdir", str(tmp_path),
            "--run-name", algo, "--resume", *SMALL, *FAST, "--hyperparams", *HP[algo]]
    assert main(argv) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["num_timesteps"] == 512  # 256 before + 256 new, not 512 new
    if algo == "maskable-ppo":
        from sb3_contrib import MaskablePPO

        ckpts = sorted(int(p.stem[5:]) for p in (run / "checkpoints").glob("step_*.zip"))
        assert ckpts[-1] == 512
        assert MaskablePPO.load(run / "checkpoints" / "step_512.zip").num_timesteps == 512


@pytest.mark.parametrize("algo,item,name", [
    ("ppo", "n_stepz=64", "n_stepz"),            # unknown key
    ("ppo", "gamma=1.5", "gamma"),               # out of range
    ("ppo", "learning_rate=fast", "learning_rate"),
    ("dqn", "batch_size=-3", "batch_size"),
    ("a2c", "policy_kwargs=dict(net_arch=", "policy_kwargs"),
    ("dagger", "hidden=[64]", "hidden"),
    ("bc", "net_arch=[0]", "net_arch"),
    ("dagger", "activation=gelu", "activation"),
    ("dagger", "expert=rollout", "expert"),
    ("dagger", "finetune_learning_rate=lin_x", "finetune_learning_rate"),
    ("rllib-ppo", "gamma=1.5", "gamma"),
    ("rllib-ppo", "lr=0.1", "lr"),
])
def test_bad_hyperparameter_is_one_clear_error(tmp_path, capsys, algo, item, name):
    argv = ["train", "--algo", algo, "--timesteps", "64", "--logdir", str(tmp_path), *SMALL,
            "--quiet", "--hyperparams", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgellm: error: ") and name in err[0]
    if "unknown key" in err[0]:
        assert "allowed:" in err[0]
    assert not (tmp_path / f"{algo}-default-s0" / "model.json").exists()


def test_hyperparameter_files_are_rl_zoo_format_and_valid():
    from edgellm.envs import ENV_IDS
    from edgellm.train.config import (
        _RLLIB_RULES,
        TRAIN_ALGOS,
        RLlibPPOHP,
        load_yaml,
        validate_fields,
        validate_imitation,
        validate_sb3,
    )

    for algo in TRAIN_ALGOS:
        data = load_yaml(algo)
        assert data and set(data) <= set(ENV_IDS.values())
        for section in data.values():
            assert "n_timesteps" in section
            if algo == "rllib-ppo":
                validate_fields(algo, section, RLlibPPOHP, _RLLIB_RULES)
            else:
                (validate_imitation if algo in ("bc", "dagger") else validate_sb3)(algo, section)


def _all_feasible_batches(p, m):
    from edgellm.system import check_rows
    from edgellm.system.feasibility import OK

    out = []
    for b in range(1, m + 1):
        for rows in itertools.combinations(range(m), b):
            if check_rows(p, np.array([rows])).code[0] == OK:
                out.append(frozenset(rows))
    return out


def test_expert_labels_are_exactly_the_optimal_next_actions():
    """On env states, the labels are the users in some max-value feasible superset of the
    batch so far (checked by brute force), and the optimum equals DFTSP's value."""
    from edgellm.dftsp import solve
    from edgellm.envs import EdgeLLMEnv
    from edgellm.train.imitation import Expert

    env = EdgeLLMEnv("default", action_mode="sequential", n_users=8, max_slots=40)
    env.reset(seed=5)
    expert, rng, checked = Expert(), np.random.default_rng(0), 0
    for _ in range(150):
        view = env.slot_view()
        labels = expert.labels(env)
        m = len(view.users)
        pos = {u: i for i, u in enumerate(view.users)}
        chosen = frozenset(pos[u] for u in view.chosen)
        sets = [T for T in _all_feasible_batches(view.prepared, m) if chosen <= T] if m else []
        w = view.prepared.weight
        if sets:
            best = max(int(w[list(T)].sum()) for T in sets)
            if not chosen:
                assert best == solve(view.prepared).value
            want = {view.users[i] for T in sets if int(w[list(T)].sum()) == best
                    for i in T - chosen}
            got = set(np.flatnonzero(labels[:-1]).tolist())
            assert got == want and (labels[-1] == (not want))
            checked += 1
        # follow a random allowed action so off-optimal states are visited too
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        _, _, _, _, info = env.step(action)
        if info["slot_done"]:
            expert.new_slot()
    assert checked > 50


def test_urgent_expert_labels_are_the_urgent_oracles_batch():
    """expert=oracle-urgent: on the empty batch of a slot the labels are exactly the batch
    of the foresight baseline oracle-urgent (unique: its integer weights break all ties)."""
    from edgellm.agents.foresight import UrgentOraclePolicy
    from edgellm.envs import EdgeLLMEnv
    from edgellm.train.imitation import Expert

    env = EdgeLLMEnv("default", action_mode="sequential", n_users=8, max_slots=60)
    env.reset(seed=3)
    expert, urgent, slots, differ = Expert(kind="oracle-urgent"), UrgentOraclePolicy(), 0, 0
    plain = Expert()
    while slots < 40:
        view = env.slot_view()
        labels = expert.labels(env)
        if not view.chosen and view.users:
            want = set(urgent.select(view))
            assert set(np.flatnonzero(labels[:-1]).tolist()) == want
            differ += set(np.flatnonzero(plain.labels(env)[:-1]).tolist()) != want
            slots += 1
        action = int(np.flatnonzero(labels)[0])
        _, _, _, _, info = env.step(action)
        if info["slot_done"]:
            expert.new_slot()
            plain.new_slot()
    assert differ > 0  # the two teachers do disagree (ties in value)


def test_same_seed_same_model(tmp_path):
    import torch

    a = _train(tmp_path / "a", "dagger", steps=128)
    b = _train(tmp_path / "b", "dagger", steps=128)
    sa, sb = torch.load(a / "model.pt"), torch.load(b / "model.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_quick_demo_writes_table_plot_and_tensorboard(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "oracle" in out and "learned:" in out and "x oracle" in out
    assert (tmp_path / "eval" / "summary.csv").is_file()
    assert list((tmp_path / "eval").glob("*.png"))
    assert list((tmp_path / "train").rglob("events.out.tfevents.*"))
    assert (tmp_path / "train" / "dagger-default" / "model.json").is_file()


@pytest.mark.slow
def test_default_demo_learns_close_to_the_oracle(tmp_path):
    """`make demo` as shipped: the learned scheduler must get within 10% of the oracle on
    held-out seeds, and beat the weakest heuristic (the benchmark reports the exact ratio)."""
    from edgellm.demo import run_demo

    summary = run_demo(tmp_path / "demo", progress=False)
    rows = {r["policy"]: r for r in summary["policies"]}
    learned = next(r for name, r in rows.items() if name.startswith("learned:"))
    assert learned["ratio_to_oracle"] >= 0.9
    assert learned["value_per_slot"] > min(r["value_per_slot"] for r in rows.values())
    assert (tmp_path / "demo" / "eval" / "summary.csv").is_file()
    assert list((tmp_path / "demo" / "train").rglob("events.out.tfevents*"))


@pytest.mark.parametrize("scenario", ["default", "thin-slice"])
def test_permute_users_moves_whole_user_rows(scenario):
    """DAgger/BC augmentation relabels users: each user's whole observation row (12 columns
    with media, 10 without), its mask and label entries move together; globals stay."""
    import torch

    from edgellm.envs import EdgeLLMEnv
    from edgellm.train.imitation import permute_users

    K = 3
    n_obs = EdgeLLMEnv(scenario, n_users=K).observation_space.shape[0]
    F = (n_obs - 4) // K
    B = 5
    user = torch.arange(K, dtype=torch.float32)
    rows = (100 * user[:, None] + torch.arange(F)[None, :]).reshape(-1)
    obs = torch.cat([rows, -torch.ones(4)]).repeat(B, 1)
    mask = torch.tensor([True, False, True, True]).repeat(B, 1)
    labels = torch.tensor([False, False, True, False]).repeat(B, 1)
    o, m, lab = permute_users(obs, mask, labels, K, torch.Generator().manual_seed(0))
    for b in range(B):
        got = o[b, :K * F].reshape(K, F)
        src = (got[:, 0] / 100).round().long()  # which user's row landed in each place
        assert sorted(src.tolist()) == list(range(K))
        assert torch.equal(got, rows.reshape(K, F)[src])
        assert torch.equal(m[b, :K], mask[b, src]) and torch.equal(lab[b, :K], labels[b, src])
        assert torch.equal(o[b, K * F:], -torch.ones(4)) and m[b, K] and not lab[b, K]
