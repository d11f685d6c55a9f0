"""PPO fine-tuning of an imitation network (``finetune_steps`` > 0 in bc.yml / dagger.yml).

The imitation MLP becomes the actor of a MaskablePPO policy with the same layers
(``net_arch=dict(pi=hidden, vf=hidden)``): its hidden layers go to
``mlp_extractor.policy_net`` and its output layer to ``action_net``; the critic starts
fresh. MaskablePPO then optimises the episode return (value served minus penalties), which
can look past the current slot, unlike the per-slot oracle it was cloned from.

The critic learns first: ``finetune_warmup`` steps with the actor frozen (learning rate 0
for the actor's layers would need a second optimizer; instead the actor's parameters stay
out of the gradient), so the first policy updates use sensible advantages instead of those
of a random critic, which would undo the imitation. Every ``finetune_eval_freq`` steps the
policy plays the held-out seeds (10 000+); the best policy (the imitation one included, at
step 0) is the one returned. The result is saved as an ``sb3-policy``
(MaskableActorCriticPolicy) by the caller.
"""

from __future__ import annotations


def finetune_maskable_ppo(net, args, hp: dict, cfg, writer, start_step: int, held=None):
    """Return a MaskablePPO model initialised from ``net`` and trained ``finetune_steps``
    (the best on ``held``, a :class:`~edgellm.train.common.HeldOut`, when given)."""
    import copy

    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import configure

    from edgellm.agents.learned import LearnedPolicy, activation_class
    from edgellm.train.common import train_seed
    from edgellm.train.config import schedule
    from edgellm.train.rl import make_vec_env

    act = activation_class(hp["activation"])
    hidden = list(hp["net_arch"])
    n_envs = args.n_envs or hp["finetune_n_envs"]
    venv = make_vec_env(cfg, "sequential", n_envs, args.vec_env)
    model = MaskablePPO("MlpPolicy", venv, seed=args.seed, device="cpu",
                        learning_rate=schedule(hp["finetune_learning_rate"]),
                        n_steps=max(hp["finetune_rollout"] // n_envs, 1),
                        batch_size=256, n_epochs=5, gamma=hp["finetune_gamma"], ent_coef=0.0,
                        clip_range=0.1, target_kl=0.02,
                        policy_kwargs=dict(net_arch=dict(pi=hidden, vf=hidden),
                                           activation_fn=act))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    actor = [m for m in model.policy.mlp_extractor.policy_net
             if isinstance(m, torch.nn.Linear)] + [model.policy.action_net]
    with torch.no_grad():
        for dst, src in zip(actor, linears):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    venv.seed(train_seed(args.seed) + 500_000)
    model.set_logger(configure(str(args.run_dir / "tb" / "finetune"), ["tensorboard"]))

    best = {"value": -1.0, "state": None, "step": 0}

    def evaluate(step: int) -> None:
        if held is None:
            return
        res = held.evaluate(LearnedPolicy.from_model(model, "sequential", args.algo,
                                                     masked=True))
        writer.add_scalar("finetune/oracle_ratio", res["oracle_ratio"], start_step + step)
        writer.add_scalar("finetune/value_per_slot", res["value_per_slot"], start_step + step)
        if res["value_per_slot"] > best["value"]:
            best.update(value=res["value_per_slot"], step=step,
                        state=copy.deepcopy(model.policy.state_dict()))

    class Periodic(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next = hp["finetune_eval_freq"]

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                self.next += hp["finetune_eval_freq"]
                evaluate(self.num_timesteps)
            return True

    evaluate(0)
    params = [p for m in actor for p in m.parameters()]
    warm = min(hp["finetune_warmup"], hp["finetune_steps"])
    if warm:
        for p in params:
            p.requires_grad_(False)
        model.learn(warm, progress_bar=False, reset_num_timesteps=False)
        for p in params:
            p.requires_grad_(True)
    if hp["finetune_steps"] > warm:
        model.learn(hp["finetune_steps"] - warm, callback=Periodic(), progress_bar=False,
                    reset_num_timesteps=False)
    evaluate(model.num_timesteps)
    if best["state"] is not None:
        model.policy.load_state_dict(best["state"])
    writer.add_scalar("finetune/steps", hp["finetune_steps"], start_step)
    writer.add_scalar("finetune/best_step", best["step"], start_step)
    venv.close()
    return model
