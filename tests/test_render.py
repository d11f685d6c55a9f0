"""Rendering (rgb_array, ansi, human), RecordVideo, and SB3's make_vec_env (issue 12)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from edgellm.envs import ENV_IDS
from edgellm.envs.render import FRAME_H, FRAME_W
from edgellm.errors import EdgeLLMError

MODES = tuple(ENV_IDS)


def _make(mode="sequential", **kw):
    return gym.make(f"edgellm.envs:{ENV_IDS[mode]}", **kw)


@pytest.mark.parametrize("mode", MODES)
def test_rgb_frames_fixed_shape_and_follow_the_state(mode):
    env = _make(mode, render_mode="rgb_array", n_users=6, max_slots=30)
    env.reset(seed=3)
    frames = [env.render()]
    for _ in range(6):
        if mode == "sequential":
            mask = env.unwrapped.action_masks()
            action = int(np.flatnonzero(mask[:-1])[0]) if mask[:-1].any() else 6
        else:
            action = env.unwrapped.action_for(range(6))
        env.step(action)
        frames.append(env.render())
    for f in frames:
        assert f.shape == (FRAME_H, FRAME_W, 3) and f.dtype == np.uint8
    # every step changes the state, and so the picture
    for a, b in zip(frames, frames[1:]):
        assert (a != b).any()
    # the same state draws the same picture
    assert np.array_equal(env.render(), frames[-1])
    env.close()


def test_rgb_frame_shows_the_batch():
    """The queue bar of a user turns green when it joins the batch (sequential mode)."""
    env = _make("sequential", render_mode="rgb_array", n_users=4, max_slots=10)
    env.reset(seed=0)
    while env.unwrapped.action_masks()[:-1].sum() < 2:
        env.step(4)  # dispatch until two users can be added (one keeps the slot open)
    before = env.render()
    user = int(np.flatnonzero(env.unwrapped.action_masks()[:-1])[0])
    env.step(user)
    after = env.render()
    green = np.array([0x2C, 0xA0, 0x2C])
    assert (np.abs(after.astype(int) - green).sum(-1) == 0).sum() > \
        (np.abs(before.astype(int) - green).sum(-1) == 0).sum()
    assert env.unwrapped.render_state().in_batch[user]


def test_ansi_is_a_table():
    env = _make("subset", render_mode="ansi", n_users=5, max_slots=10)
    env.reset(seed=0)
    env.step(np.ones(5, dtype=np.int8))
    text = env.render()
    lines = text.splitlines()
    assert lines[0].startswith("slot 1/10") and "last slot: batch" in lines[0]
    assert lines[1].split()[:3] == ["user", "queue", "prompt"]
    assert [int(ln.split()[0]) for ln in lines[2:7]] == list(range(5))
    assert lines[7].startswith("batch (last slot)") and "GPU memory" in lines[7]


@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
@pytest.mark.parametrize("bad", ["rgb", "video", 3])
def test_bad_render_mode_one_clear_error(bad):
    from edgellm.envs import EdgeLLMEnv

    msg = r"render_mode: must be None or one of 'ansi', 'rgb_array', 'human', got"
    with pytest.raises(EdgeLLMError, match=msg):
        EdgeLLMEnv(render_mode=bad)
    if isinstance(bad, str):
        with pytest.raises(EdgeLLMError, match=msg):
            _make("subset", render_mode=bad)


def test_human_without_display_one_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(EdgeLLMError, match="render_mode='human': no display"):
        _make("subset", render_mode="human")


@pytest.fixture
def fake_window(monkeypatch):
    """A display that records the frames human mode shows (no window opens here)."""
    from edgellm.envs import render

    shown = []
    monkeypatch.setattr(render, "has_display", lambda: True)
    monkeypatch.setattr(render.Renderer, "_show", lambda self, rgb: shown.append(rgb))
    return shown


def test_human_shows_a_frame_every_step(fake_window):
    env = _make("subset", render_mode="human", n_users=4, max_slots=5)
    env.reset(seed=0)
    env.step(np.ones(4, dtype=np.int8))
    assert env.render() is None
    assert len(fake_window) == 3 and fake_window[0].shape == (FRAME_H, FRAME_W, 3)


def test_gymnasium_check_env_with_rendering(fake_window):
    """Every declared render mode passes gymnasium's checker."""
    from gymnasium.utils.env_checker import check_env

    check_env(_make("sequential", render_mode="rgb_array", n_users=4, max_slots=8).unwrapped)


def test_record_video(tmp_path):
    pytest.importorskip("moviepy")
    from gymnasium.wrappers import RecordVideo

    env = RecordVideo(_make("subset", render_mode="rgb_array", n_users=4, max_slots=6),
                      str(tmp_path / "videos"), episode_trigger=lambda ep: True,
                      disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        *_, term, trunc, _ = env.step(env.action_space.sample())
        done = term or trunc
    env.close()
    files = list((tmp_path / "videos").glob("*.mp4"))
    assert len(files) == 1 and files[0].stat().st_size > 1000


def _vec_env_run(vec: str, env_ids) -> None:
    """make_vec_env (which asks for render_mode='rgb_array') for each id; MaskablePPO trains
    on the sequential one, with masks through env_method."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common import vec_env
    from stable_baselines3.common.env_util import make_vec_env

    cls = getattr(vec_env, vec)
    for env_id in env_ids:
        venv = make_vec_env(f"edgellm.envs:{env_id}", n_envs=2, vec_env_cls=cls, seed=0,
                            env_kwargs={"n_users": 4, "max_slots": 5})
        try:
            obs = venv.reset()
            assert obs.shape == (2, 12 * 4 + 4)  # default has media: 12 columns per user
            assert venv.render_mode == "rgb_array"
            if env_id == ENV_IDS["sequential"]:
                model = MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1,
                                    seed=0, device="cpu")
                model.learn(64)
                assert model.num_timesteps == 64
                masks = np.stack(venv.env_method("action_masks"))
                assert masks.shape == (2, 5) and masks[:, -1].all()
            else:
                venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
        finally:
            venv.close()


@pytest.mark.parametrize("vec", ["DummyVecEnv", "SubprocVecEnv"])
def test_make_vec_env_and_maskable_ppo(vec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from outside the repository
    ids = list(ENV_IDS.values()) if vec == "DummyVecEnv" else [ENV_IDS["sequential"]]
    _vec_env_run(vec, ids)


@pytest.mark.slow
def test_make_vec_env_subproc_every_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _vec_env_run("SubprocVecEnv", [ENV_IDS["subset"], ENV_IDS["priority"]])


def test_eval_writes_a_gif_of_one_policy(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from edgellm.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["eval", "--policies", "oracle,edf", "--episodes", "1", "--slots", "3", "--set",
            "n_users=4", "--no-plots", "--quiet", "--out", "ev", "--video-policy", "edf",
            "--video-slots", "5"]
    assert main([*argv, "--video", "ev/edf.gif"]) == 0
    assert "wrote ev/edf.gif: edf, seed 0, 6 frames" in capsys.readouterr().out
    with Image.open("ev/edf.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (FRAME_W, FRAME_H)
    assert main([*argv, "--video", "ev/edf.avi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["edgellm: error: --video: ev/edf.avi: must end in .gif or .mp4"]
