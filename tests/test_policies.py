"""The per-user policy (train/policies.py) and potential-based shaping (train/shaping.py):
permutation equivariance, layout read from the spaces, training from ``edgellm train``,
loading in eval; the shaping terms telescope and leave the logged returns alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from edgellm.cli import main
from edgellm.errors import EdgeLLMError
from edgellm.train.policies import UserSetPolicy, UserSetScorePolicy, user_layout

SMALL = ["--set", "n_users=4", "--set", "max_slots=16"]
FAST = ["--eval-freq", "128", "--eval-episodes", "1", "--eval-slots", "4",
        "--final-eval-episodes", "1", "--final-eval-slots", "4", "--checkpoint-freq", "128",
        "--quiet"]
HP = ["n_steps=64", "batch_size=64", "n_epochs=2", "n_envs=2"]


def _policy(n_users: int, n_cols: int) -> UserSetPolicy:
    obs = spaces.Box(0.0, 1.0, (n_cols * n_users + 4,), np.float32)
    return UserSetPolicy(obs, spaces.Discrete(n_users + 1), lambda _: 3e-4,
                         user_arch=[16, 16], head_arch=[8])


@pytest.mark.parametrize("n_users,n_cols", [(5, 12), (3, 10)])  # media and text-only rows
def test_user_logits_follow_a_permutation_of_the_users(n_users, n_cols):
    th.manual_seed(0)
    pol = _policy(n_users, n_cols)
    gen = np.random.default_rng(1)
    obs = gen.random((6, n_cols * n_users + 4)).astype(np.float32)
    perm = gen.permutation(n_users)
    users = obs[:, :n_cols * n_users].reshape(6, n_users, n_cols)
    permuted = np.concatenate([users[:, perm].reshape(6, -1), obs[:, n_cols * n_users:]], 1)
    net = pol.mlp_extractor
    a, b = (net.forward_actor(th.as_tensor(o)) for o in (obs, permuted))
    assert a.shape == (6, n_users + 1)
    assert th.allclose(a[:, :n_users][:, perm], b[:, :n_users], atol=1e-6)
    assert th.allclose(a[:, n_users], b[:, n_users], atol=1e-6)  # dispatch logit
    va, vb = (pol.predict_values(th.as_tensor(o)) for o in (obs, permuted))
    assert th.allclose(va, vb, atol=1e-6)
    # and not a constant: another user's row changes user 0's logit only through the pool
    changed = obs.copy()
    changed[:, :n_cols] = 1.0 - changed[:, :n_cols]
    c = net.forward_actor(th.as_tensor(changed))
    assert not th.allclose(a[:, 0], c[:, 0])


@pytest.mark.parametrize("action", [spaces.Box(-1.0, 1.0, (4,), np.float32),
                                    spaces.MultiBinary(4)])
def test_score_policy_is_equivariant_in_the_one_step_modes(action):
    th.manual_seed(0)
    obs_space = spaces.Box(0.0, 1.0, (12 * 4 + 4,), np.float32)
    pol = UserSetScorePolicy(obs_space, action, lambda _: 3e-4, user_arch=[16], head_arch=[8])
    obs = np.random.default_rng(2).random((5, 52)).astype(np.float32)
    perm = np.array([2, 0, 3, 1])
    permuted = np.concatenate([obs[:, :48].reshape(5, 4, 12)[:, perm].reshape(5, 48),
                               obs[:, 48:]], 1)
    def params(o):  # SB3 reuses one distribution object: read it before the next call
        d = pol.get_distribution(th.as_tensor(o)).distribution
        return (d.mean, d.stddev) if isinstance(action, spaces.Box) else (d.logits, None)

    (pa, std), (pb, _) = params(obs), params(permuted)
    assert pa.shape == (5, 4) and th.allclose(pa[:, perm], pb, atol=1e-6)
    assert not th.allclose(pa[:, 0], pa[:, 1])
    if std is not None:  # one standard deviation shared by every user
        assert th.allclose(std, std[:, :1].expand(-1, 4))
    with pytest.raises(EdgeLLMError, match="sequential"):
        UserSetPolicy(obs_space, action, lambda _: 3e-4)
    with pytest.raises(EdgeLLMError, match="priority or subset"):
        UserSetScorePolicy(obs_space, spaces.Discrete(5), lambda _: 3e-4)
    if isinstance(action, spaces.Box):
        with pytest.raises(EdgeLLMError, match="use_sde"):
            UserSetScorePolicy(obs_space, action, lambda _: 3e-4, use_sde=True)


def test_layout_is_read_from_the_spaces():
    box = spaces.Box(0.0, 1.0, (12 * 16 + 4,), np.float32)
    assert user_layout(box, spaces.Discrete(17)) == (16, 12)
    assert user_layout(spaces.Box(0.0, 1.0, (84,), np.float32), spaces.Discrete(9)) == (8, 10)
    assert user_layout(box, spaces.MultiBinary(16)) == (16, 12)
    with pytest.raises(EdgeLLMError, match="action space"):
        user_layout(box, spaces.MultiDiscrete([2, 2]))
    with pytest.raises(EdgeLLMError, match="not C"):
        user_layout(spaces.Box(0.0, 1.0, (50,), np.float32), spaces.Discrete(17))


def test_user_set_policy_trains_saves_and_eval_loads_it(tmp_path):
    from edgellm.agents import make_policy
    from edgellm.envs import get_scenario
    from edgellm.eval.runner import run_episode

    argv = ["train", "--algo", "maskable-ppo", "--scenario", "default", "--timesteps", "256",
            "--seed", "0", "--logdir", str(tmp_path), "--run-name", "us", *SMALL, *FAST,
            "--hyperparams", *HP, "policy=UserSetPolicy",
            "policy_kwargs=dict(user_arch=[16], head_arch=[16])",
            "shaping={in_batch: 1.0, addable: 0.5}"]
    assert main(argv) == 0
    run = tmp_path / "us"
    meta = json.loads((run / "model.json").read_text())
    assert meta["algo"] == "maskable-ppo" and meta["obs_dim"] == 12 * 4 + 4
    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(run / "model.zip", device="cpu")
    assert isinstance(model.policy, UserSetPolicy)
    assert model.policy.user_arch == [16] and model.policy.head_arch == [16]
    policy = make_policy(f"learned:{run / 'model.json'}")
    rec = run_episode(policy, get_scenario("default", n_users=4, max_slots=8), seed=123,
                      action_mode="subset")
    assert rec["slots"] == 8 and rec["invalid_actions"] == 0 and sum(rec["per_slot"]["value"]) > 0


@pytest.mark.parametrize("algo,item,name", [("ppo", "policy=UserSetPolicy", "policy"),
                                            ("maskable-ppo", "policy=UserSetScorePolicy",
                                             "policy"),
                                            ("maskable-ppo", "shaping={queue: 1}", "shaping")])
def test_bad_policy_or_shaping_is_one_clear_error(tmp_path, capsys, algo, item, name):
    argv = ["train", "--algo", algo, "--timesteps", "64", "--logdir", str(tmp_path), *SMALL,
            "--quiet", "--hyperparams", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgellm: error: ") and name in err[0]


def test_shaping_telescopes_and_keeps_the_logged_returns():
    """With gamma = 1 the shaping terms of an episode sum to phi(s_T) - phi(s_0); the
    episode return VecMonitor reports is the env's own."""
    from edgellm.envs import get_scenario
    from edgellm.train.rl import make_vec_env
    from edgellm.train.shaping import PotentialShaping

    cfg = get_scenario("default", n_users=4, max_slots=6)
    raw = make_vec_env(cfg, "sequential", 2)
    venv = PotentialShaping(raw, 1.0, {"in_batch": 1.0, "addable": 0.5})
    venv.seed(7)
    obs = venv.reset()
    phi0 = venv.potential(obs)
    gen = np.random.default_rng(0)
    shaped_sum, done_at = np.zeros(2), [None, None]
    infos_end = [None, None]
    for _ in range(200):
        masks = raw.env_method("action_masks")
        acts = np.array([gen.choice(np.flatnonzero(m)) for m in masks])
        obs, rew, dones, infos = venv.step(acts)
        for i in range(2):
            if done_at[i] is None:
                shaped_sum[i] += rew[i]
                if dones[i]:
                    done_at[i] = infos[i]["episode"]["r"]
                    infos_end[i] = infos[i]["terminal_observation"]
        if all(d is not None for d in done_at):
            break
    assert all(d is not None for d in done_at)
    for i in range(2):
        phi_t = venv.potential(infos_end[i][None])[0]
        assert shaped_sum[i] == pytest.approx(done_at[i] + phi_t - phi0[i], abs=1e-4)
    assert phi0.max() > 0  # the potential is not trivially zero


def test_score_policy_trains_with_ppo_in_priority_mode_and_loads_in_eval(tmp_path):
    from edgellm.agents import make_policy
    from edgellm.envs import get_scenario
    from edgellm.eval.runner import run_episode

    argv = ["train", "--algo", "ppo", "--scenario", "default", "--timesteps", "256",
            "--seed", "0", "--logdir", str(tmp_path), "--run-name", "sc", *SMALL, *FAST,
            "--hyperparams", *HP, "policy=UserSetScorePolicy",
            "policy_kwargs=dict(user_arch=[16], head_arch=[16], log_std_init=-0.5)"]
    assert main(argv) == 0
    meta = json.loads((tmp_path / "sc" / "model.json").read_text())
    assert meta["algo"] == "ppo" and meta["action_mode"] == "priority"
    policy = make_policy(f"learned:{tmp_path / 'sc' / 'model.json'}")
    assert isinstance(policy.model.policy, UserSetScorePolicy)
    rec = run_episode(policy, get_scenario("default", n_users=4, max_slots=8), seed=3,
                      action_mode="subset")
    assert rec["slots"] == 8 and rec["action_mode"] == "priority"


def test_policy_saved_alone_loads_as_sb3_policy(tmp_path):
    """``format: sb3-policy`` with ``policy_class: UserSetPolicy`` (as fine-tuning writes)."""
    from edgellm.agents import make_policy
    from edgellm.envs import get_scenario
    from edgellm.eval.runner import run_episode

    env_cfg = get_scenario("default", n_users=4, max_slots=8)
    pol = _policy(4, 12)
    pol.save(tmp_path / "p.zip")
    (tmp_path / "p.json").write_text(json.dumps({
        "schema": "edgellm.policy/1", "algo": "maskable-ppo", "action_mode": "sequential",
        "scenario": "default", "format": "sb3-policy", "policy_class": "UserSetPolicy"}))
    policy = make_policy(f"learned:{tmp_path / 'p.json'}")
    assert isinstance(policy.model, UserSetPolicy) and policy.masked
    assert policy.model.user_arch == [16, 16] and policy.model.head_arch == [8]
    rec = run_episode(policy, env_cfg, seed=5, action_mode="subset")
    assert rec["slots"] == 8 and rec["invalid_actions"] == 0
