"""``edgellm eval --video FILE``: a short clip of one policy's episode.

The env renders ``rgb_array`` frames (see :mod:`edgellm.envs.render`) after the reset and
after every step (one step per slot, or one per added user in sequential mode). ``.gif``
needs only Pillow (a matplotlib dependency); ``.mp4`` needs moviepy (the ``[video]``
extra). The file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from edgellm.errors import EdgeLLMError

VIDEO_SUFFIXES = (".gif", ".mp4")


class FrameRecorder(gym.Wrapper):
    """Keeps the frame of the state after the reset and after every step."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.frames: list[np.ndarray] = []

    def reset(self, **kw):
        out = self.env.reset(**kw)
        self.frames.append(self.env.render())
        return out

    def step(self, action):
        out = self.env.step(action)
        self.frames.append(self.env.render())
        return out


def check_video_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise EdgeLLMError(f"--video: {path}: must end in {' or '.join(VIDEO_SUFFIXES)}")
    if path.suffix.lower() == ".mp4":
        try:
            import moviepy  # noqa: F401
        except ImportError:
            raise EdgeLLMError(f"--video: {path}: mp4 needs moviepy "
                               f"(pip install 'edgellm-gym[video]'); a .gif needs nothing "
                               f"more") from None
    return path


def record_episode(policy, cfg, seed: int, action_mode: str, path: str | Path,
                   fps: float = 4.0) -> int:
    """Play one episode of ``policy`` (seed ``seed``) and write its frames; return how
    many frames were written."""
    from edgellm.envs import EdgeLLMEnv
    from edgellm.io import atomic_path

    path = check_video_path(path)
    env = FrameRecorder(EdgeLLMEnv(cfg, action_mode=policy.action_mode or action_mode,
                                   render_mode="rgb_array"))
    try:
        obs, _ = env.reset(seed=seed)
        policy.reset(seed)
        while True:
            out = policy.play_slot(env, obs)
            obs = out.obs
            if out.truncated or out.terminated:
                break
    finally:
        env.close()
    frames = env.frames
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            images[0].save(tmp, save_all=True, append_images=images[1:],
                           duration=int(1000 / fps), loop=0, optimize=False)
        else:
            from moviepy.video.io.ImageSequenceClip import ImageSequenceClip

            ImageSequenceClip(frames, fps=fps).write_videofile(str(tmp), logger=None,
                                                               audio=False)
    return len(frames)
