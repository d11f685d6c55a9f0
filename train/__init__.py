"""Training of learned schedulers (SPEC section 5): SB3 / sb3-contrib RL and imitation of
the DFTSP oracle (behaviour cloning, DAgger) in torch.

>>> from edgellm.train import TrainArgs, train
>>> result = train(TrainArgs(algo="dagger", scenario="default", timesteps=20_000))
>>> result["oracle_ratio"]          # held-out value per slot / the oracle's

A run folder ``<logdir>/<run>/`` holds ``model.zip`` or ``model.pt`` with its sidecar
``model.json`` (loadable as ``learned:<logdir>/<run>/model.json``), ``eval.json``,
``config.yaml``, ``checkpoints/`` and TensorBoard logs under ``tb/``.
"""

from __future__ import annotations

from edgellm.agents.learned import IMITATION_ALGOS
from edgellm.train.config import TRAIN_ALGOS, TrainArgs, resolve_hyperparams


def train(args: TrainArgs) -> dict:
    """Train as ``args`` says; return the final held-out evaluation (also in eval.json)."""
    import torch

    args.check()
    hp = resolve_hyperparams(args)
    torch.set_num_threads(args.torch_threads)
    if args.algo in IMITATION_ALGOS:
        from edgellm.train.imitation import train_imitation

        return train_imitation(args, hp)
    if args.algo == "rllib-ppo":
        from edgellm.train.rllib import train_rllib

        return train_rllib(args, hp)
    from edgellm.train.rl import train_sb3

    return train_sb3(args, hp)


__all__ = ["TRAIN_ALGOS", "TrainArgs", "resolve_hyperparams", "train"]
