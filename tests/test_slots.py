"""Slot-long returns (train/slots.py, ``horizon: slot``): the learner's episodes end at every
slot end without a bootstrap, the env's steps and logged episodes stay unchanged, and
``edgellm train`` takes the key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgellm.cli import main
from edgellm.envs import get_scenario
from edgellm.train.rl import make_vec_env
from edgellm.train.slots import SlotEpisodes


@pytest.mark.parametrize("kind", ["native", "dummy"])
def test_slot_ends_are_episode_ends_for_the_learner_only(kind):
    cfg = get_scenario("default", n_users=4, max_slots=5)
    raw, plain = make_vec_env(cfg, "sequential", 2, kind), make_vec_env(cfg, "sequential", 2,
                                                                         kind)
    venv = SlotEpisodes(raw)
    venv.seed(3)
    plain.seed(3)
    obs, obs_p = venv.reset(), plain.reset()
    gen = np.random.default_rng(0)
    slot_ends = episode_ends = 0
    for _ in range(80):
        masks = np.stack(raw.env_method("action_masks"))
        acts = np.array([gen.choice(np.flatnonzero(m)) for m in masks])
        obs, rew, dones, infos = venv.step(acts)
        obs_p, rew_p, dones_p, infos_p = plain.step(acts)
        assert np.array_equal(obs, obs_p) and np.array_equal(rew, rew_p)
        for i in range(2):
            ended = bool(infos_p[i].get("slot_done")) or bool(dones_p[i])
            assert dones[i] == ended
            if ended:
                slot_ends += 1
                assert infos[i]["TimeLimit.truncated"] is False  # no bootstrap across it
                assert np.array_equal(infos[i]["terminal_observation"],
                                      infos_p[i].get("terminal_observation", obs_p[i]))
            if dones_p[i]:  # the env's episode: VecMonitor's statistics pass through
                episode_ends += 1
                ep, ep_p = infos[i]["episode"], infos_p[i]["episode"]
                assert (ep["r"], ep["l"]) == (ep_p["r"], ep_p["l"])
    assert slot_ends > episode_ends > 0


def test_train_with_slot_horizon_and_a_bad_horizon(tmp_path, capsys):
    small = ["--set", "n_users=4", "--set", "max_slots=16", "--eval-freq", "128",
             "--eval-episodes", "1", "--eval-slots", "4", "--final-eval-episodes", "1",
             "--final-eval-slots", "4", "--checkpoint-freq", "128", "--quiet"]
    hp = ["n_steps=64", "batch_size=64", "n_epochs=2", "n_envs=2"]
    argv = ["train", "--algo", "maskable-ppo", "--timesteps", "256", "--seed", "0",
            "--logdir", str(tmp_path), "--run-name", "slot", *small, "--hyperparams", *hp,
            "horizon=slot", "gamma=1.0"]
    assert main(argv) == 0
    conf = (tmp_path / "slot" / "config.yaml").read_text()
    assert "horizon: slot" in conf
    assert json.loads((tmp_path / "slot" / "eval.json").read_text())["num_timesteps"] >= 256
    argv = ["train", "--algo", "maskable-ppo", "--timesteps", "64", "--logdir",
            str(tmp_path), *small, "--hyperparams", "horizon=day"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "horizon" in err[0]
