"""PPO fine-tuning of an imitation network (``finetune_steps`` > 0 in bc.yml / dagger.yml).

The imitation MLP becomes the actor of a MaskablePPO policy with the same layers
(``net_arch=dict(pi=hidden, vf=hidden)``): its hidden layers go to
``mlp_extractor.policy_net`` and its output layer to ``action_net``; the critic starts
fresh. MaskablePPO then optimises the episode return (value served minus penalties), which
can look past the current slot, unlike the per-slot oracle it was cloned from. The result
is saved as an ``sb3-policy`` (MaskableActorCriticPolicy) by the caller.
"""

from __future__ import annotations


def finetune_maskable_ppo(net, args, hp: dict, cfg, writer, start_step: int):
    """Return a MaskablePPO model initialised from ``net`` and trained ``finetune_steps``."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import configure

    from edgellm.agents.learned import activation_class
    from edgellm.train.common import train_seed
    from edgellm.train.rl import make_vec_env

    act = activation_class(hp["activation"])
    hidden = list(hp["net_arch"])
    venv = make_vec_env(cfg, "sequential", args.n_envs or 4, args.vec_env)
    model = MaskablePPO("MlpPolicy", venv, seed=args.seed, device="cpu", learning_rate=1e-4,
                        n_steps=512, batch_size=256, n_epochs=5, gamma=0.99, ent_coef=0.0,
                        clip_range=0.1,
                        policy_kwargs=dict(net_arch=dict(pi=hidden, vf=hidden),
                                           activation_fn=act))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    pi = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for dst, src in zip([*pi, model.policy.action_net], linears):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    venv.seed(train_seed(args.seed) + 500_000)
    model.set_logger(configure(str(args.run_dir / "tb" / "finetune"), ["tensorboard"]))
    model.learn(hp["finetune_steps"], progress_bar=False)
    writer.add_scalar("finetune/steps", hp["finetune_steps"], start_step)
    venv.close()
    return model
