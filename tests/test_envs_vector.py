"""The native vector env (EdgeLLMVectorEnv) against N single envs, and under SB3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from edgellm.envs import ENV_IDS, SCENARIOS, EdgeLLMEnv
from edgellm.envs.vector import EdgeLLMVectorEnv
from edgellm.errors import EdgeLLMError

SMALL = dict(n_users=6, max_slots=5)


def _env_info(info: dict, i: int) -> dict:
    """Env i's info from a vector info (dict of arrays with ``_key`` masks)."""
    out = {}
    for k, v in info.items():
        if k.startswith("_") or not info[f"_{k}"][i]:
            continue
        out[k] = _env_info(v, i) if isinstance(v, dict) else v[i]
    return out


def _same(a, b, path="info"):
    if isinstance(a, dict):
        assert set(a) == set(b), (path, sorted(a), sorted(b))
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.array_equal(np.asarray(a), np.asarray(b)), (path, a, b)
    else:
        assert a == b and type(a) is type(b) or (a == b and np.isscalar(b)), (path, a, b)


def _actions(mode, rng, masks, K, n):
    if mode == "sequential":  # masked random, with some invalid actions
        acts = [int(rng.choice(np.flatnonzero(m))) for m in masks]
        return np.array([a if rng.random() > 0.1 else int(rng.integers(-1, K + 2))
                         for a in acts])
    if mode == "subset":
        a = (rng.random((n, K)) < 0.4).astype(np.int8)
        return a
    a = rng.uniform(-1, 1, (n, K)).astype(np.float32)
    a[rng.random((n, K)) < 0.05] = np.nan
    return a


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("mode", list(ENV_IDS))
def test_bit_identical_to_single_envs_across_autoresets(mode, scenario):
    _check_identical(mode, scenario, **SMALL)


@pytest.mark.parametrize("scenario", ["default", "narrowband"])
@pytest.mark.parametrize("mode", list(ENV_IDS))
def test_bit_identical_at_full_size(mode, scenario):
    """16 users and full queues: long batches, many screened feasibility checks."""
    _check_identical(mode, scenario, n_users=16, max_slots=12)


@pytest.mark.parametrize("overlength", ["truncate", "reject"])
def test_bit_identical_with_overlength_trace_requests(overlength):
    """A 2048-token context makes the code trace's long prompts overlength."""
    seen = _check_identical("subset", "azure-code", model="opt-6.7b", max_output=512,
                            overlength=overlength, **SMALL)
    assert seen > 0


def _check_identical(mode, scenario, **over) -> int:
    """Step a vector env and N single envs with the same actions; assert equal results.
    Returns the single envs' total ``overlength``."""
    n, K = 3, over["n_users"]
    venv = gym.make_vec(f"edgellm.envs:{ENV_IDS[mode]}", num_envs=n, scenario=scenario,
                        **over)
    assert isinstance(venv, EdgeLLMVectorEnv)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    envs = [EdgeLLMEnv(scenario, action_mode=mode, **over) for _ in range(n)]
    assert venv.single_observation_space == envs[0].observation_space
    overlength = 0
    obs, info = venv.reset(seed=7)
    singles = [e.reset(seed=7 + i) for i, e in enumerate(envs)]
    for i, (o, inf) in enumerate(singles):
        assert np.array_equal(obs[i], o) and obs.dtype == np.float32
        _same(_env_info(info, i), inf)
    rng = np.random.default_rng(0)
    pending = [False] * n
    resets = 0
    masks = [e.action_masks() for e in envs]
    for _ in range(120 if mode == "sequential" else 25):
        assert np.array_equal(venv.action_masks(), np.stack(masks))
        acts = _actions(mode, rng, masks, K, n)
        obs, rew, term, trunc, info = venv.step(acts)
        for i, e in enumerate(envs):
            if pending[i]:  # NEXT_STEP autoreset: the action is ignored
                o, inf = e.reset()
                r, te, tr = 0.0, False, False
                resets += 1
            else:
                o, r, te, tr, inf = e.step(acts[i])
            assert np.array_equal(obs[i], o)
            assert rew[i] == r and term[i] == te and trunc[i] == tr
            _same(_env_info(info, i), inf)
            pending[i] = te or tr
            masks[i] = e.action_masks()
            overlength += inf.get("overlength", 0)
    assert resets >= n
    return overlength


def test_same_step_autoreset_and_list_seeds():
    venv = EdgeLLMVectorEnv(2, "default", action_mode="subset", autoreset_mode="same-step",
                            **SMALL)
    single = EdgeLLMEnv("default", action_mode="subset", **SMALL)
    venv.reset(seed=[5, 9])
    o, _ = single.reset(seed=9)
    for _ in range(SMALL["max_slots"] * 2):
        act = np.ones((2, SMALL["n_users"]), np.int8)
        obs, _, _, trunc, info = venv.step(act)
        o2, _, _, tr, _ = single.step(act[1])
        if tr:
            assert trunc[1] and np.array_equal(info["final_obs"][1], o2)
            o2, _ = single.reset()
        assert np.array_equal(obs[1], o2)


def test_action_mask_shapes():
    for mode, shape in (("sequential", (4, 7)), ("subset", (4, 12)), ("priority", (4, 6))):
        venv = EdgeLLMVectorEnv(4, "default", action_mode=mode, **SMALL)
        venv.reset(seed=0)
        m = venv.action_masks()
        assert m.shape == shape and m.dtype == bool
        assert venv.observation_space.shape == (4, 12 * 6 + 4)  # default has media: 12 per user


@pytest.mark.parametrize("bad", [0, -3, 2.5, "4", True])
def test_bad_num_envs(bad):
    with pytest.raises(EdgeLLMError, match="num_envs"):
        EdgeLLMVectorEnv(bad, "default")


def test_bad_mode_and_options():
    with pytest.raises(EdgeLLMError, match="action_mode"):
        EdgeLLMVectorEnv(2, "default", action_mode="greedy")
    with pytest.raises(EdgeLLMError, match="autoreset_mode"):
        EdgeLLMVectorEnv(2, "default", autoreset_mode="later")
    with pytest.raises(EdgeLLMError, match="render_mode"):
        EdgeLLMVectorEnv(2, "default", render_mode="rgb_array")
    venv = EdgeLLMVectorEnv(2, "default", **SMALL)
    with pytest.raises(EdgeLLMError, match="reset"):
        venv.step(np.zeros((2, 6)))
    with pytest.raises(EdgeLLMError, match="options"):
        venv.reset(options={"scenario": {"slot_s": 2.0}})
    venv.reset(seed=0)
    with pytest.raises(EdgeLLMError, match="shape"):
        venv.step(np.zeros((3, 6)))


def _thunk(env_id, **kw):
    def make():
        # the module:id string imports edgellm.envs (and registers) in subprocesses too
        return gym.make(f"edgellm.envs:{env_id}", n_users=6, max_slots=10, **kw)

    return make


def test_gymnasium_async_vector_env_of_single_envs():
    envs = gym.vector.AsyncVectorEnv([_thunk(ENV_IDS["subset"]), _thunk(ENV_IDS["subset"])])
    try:
        obs, info = envs.reset(seed=[1, 2])
        assert obs.shape == (2, 12 * 6 + 4) and obs.dtype == np.float32
        envs.action_space.seed(0)
        obs, r, term, trunc, info = envs.step(envs.action_space.sample())
        assert info["slot_done"].all()
    finally:
        envs.close()


@pytest.mark.parametrize("mode", list(ENV_IDS))
def test_sb3_adapter_matches_dummy_vec_env(mode):
    """Same seeds, same actions: the native SB3 VecEnv and a DummyVecEnv of single envs
    return the same observations, rewards, dones, terminal observations and masks."""
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
    from stable_baselines3.common.vec_env import DummyVecEnv

    from edgellm.train.vec import EdgeLLMSB3VecEnv

    native = EdgeLLMSB3VecEnv(3, "bursty", action_mode=mode, **SMALL)
    dummy = DummyVecEnv([lambda: EdgeLLMEnv("bursty", action_mode=mode, **SMALL)
                         for _ in range(3)])
    assert is_masking_supported(native)
    for v in (native, dummy):
        v.seed(11)
    o1, o2 = native.reset(), dummy.reset()
    assert np.array_equal(o1, o2)
    rng = np.random.default_rng(1)
    dones = 0
    for _ in range(40):
        m1, m2 = get_action_masks(native), get_action_masks(dummy)
        assert np.array_equal(m1, m2)
        if mode == "sequential":
            acts = np.array([rng.choice(np.flatnonzero(m)) for m in m1])
        else:
            acts = np.stack([native.action_space.sample() for _ in range(3)])
        o1, r1, d1, i1 = native.step(acts)
        o2, r2, d2, i2 = dummy.step(acts)
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(d1, d2)
        for a, b in zip(i1, i2):
            if "terminal_observation" in b:
                assert np.array_equal(a["terminal_observation"], b["terminal_observation"])
                assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
            if b.get("slot_done"):
                assert a["served"] == b["served"] and a["dropped"] == b["dropped"]
        dones += int(d1.sum())
    assert dones >= 3


@pytest.mark.parametrize("mode", list(ENV_IDS))
def test_without_slot_info_same_trajectories(mode):
    """slot_info=False drops only the per-batch report keys; everything else is equal."""
    over = dict(n_users=16, max_slots=6)
    full = EdgeLLMVectorEnv(3, "default", action_mode=mode, **over)
    lean = EdgeLLMVectorEnv(3, "default", action_mode=mode, slot_info=False, **over)
    dropped = {"batch", "served_ids", "t_uplink_s", "t_compute_s", "memory_bytes", "binding",
               "refused"}
    o1, _ = full.reset(seed=3)
    o2, _ = lean.reset(seed=3)
    rng = np.random.default_rng(2)
    for _ in range(60):
        masked = full.action_masks()
        assert np.array_equal(masked, lean.action_masks())
        if mode == "sequential":
            a = np.argmax(np.where(masked, rng.random(masked.shape), -1.0), axis=1)
        else:
            a = _actions(mode, rng, None, 16, 3)
        r1, r2 = full.step(a), lean.step(a)
        for x, y in zip(r1[:4], r2[:4]):
            assert np.array_equal(x, y)
        i1, i2 = r1[4], r2[4]
        assert set(i1) - set(i2) == dropped | {f"_{k}" for k in dropped} or \
            not i1["slot_done"].any()
        for k in i2:
            _same(i1[k], i2[k], k)
