"""Pictures of the env's state: an RGB frame, a text table and a window.

:class:`EdgeLLMEnv` builds a :class:`RenderState` (plain numbers, see
``EdgeLLMEnv.render_state()``) and hands it to a :class:`Renderer` for its render mode:

* ``"rgb_array"``: a ``uint8`` array of shape ``(FRAME_H, FRAME_W, 3)`` drawn with
  matplotlib's Agg backend on a figure built once per renderer (only bar heights, colours
  and texts change between frames). Per user: queue length (bar colour: in the batch,
  addable, or neither), the head-of-line request's prompt and output tokens, its remaining
  deadline, uplink and downlink gains. For the batch (the one being built, else the last one
  served): GPU memory, compute time, uplink and downlink bandwidth against their limits.
  Header: slot index, value served so far, the last slot's batch, value, binding
  constraint and drops.
* ``"ansi"``: the same content as a multi-line text table.
* ``"human"``: the frame in a matplotlib window; needs a display and an interactive
  matplotlib backend, else one :class:`~edgellm.errors.EdgeLLMError` at construction.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from edgellm.errors import EdgeLLMError

RENDER_MODES = ("ansi", "rgb_array", "human")
FRAME_W, FRAME_H, DPI = 960, 540, 96
GAIN_DB_RANGE = (-150.0, -50.0)
_COLORS = {"batch": "#2ca02c", "addable": "#1f77b4", "idle": "#b0b0b0"}


@dataclass(frozen=True)
class RenderState:
    """What a frame shows. Per-user arrays have length K; values are 0 where a user has no
    request. Times in s, memory in bytes, bandwidths in Hz, gains in dB."""

    slot: int
    max_slots: int
    value_total: float          # value served since reset
    queue: np.ndarray           # queue lengths
    queue_capacity: int
    present: np.ndarray         # bool: has a head-of-line request
    prompt: np.ndarray          # head request's prompt tokens
    output: np.ndarray          # head request's output tokens
    deadline: np.ndarray        # head request's remaining deadline [s]
    uplink_db: np.ndarray
    downlink_db: np.ndarray
    in_batch: np.ndarray        # bool
    addable: np.ndarray         # bool: adding keeps the batch feasible
    max_prompt: int
    max_output: int
    deadline_max: float
    batch_label: str            # "building" (this slot's batch) or "last slot"
    batch: tuple[int, ...]      # users of the batch the gauges describe
    memory_used: float          # weights + KV of that batch [B]
    memory_limit: float         # memory_bytes - reserved_bytes [B]
    t_compute: float
    slot_s: float
    uplink_used: float          # sum of minimal uplink bandwidths [Hz]
    uplink_hz: float
    downlink_used: float
    downlink_hz: float
    last_value: float | None    # the last served slot (None before the first)
    last_batch: tuple[int, ...]
    last_binding: str | None
    last_dropped: int

    @property
    def n_users(self) -> int:
        return int(self.queue.shape[0])

    def gauges(self) -> list[tuple[str, float, float, str]]:
        """(name, used, limit, unit) of the batch's resources, in display units."""
        return [("GPU memory", self.memory_used / 1e9, self.memory_limit / 1e9, "GB"),
                ("compute", self.t_compute, self.slot_s, "s"),
                ("uplink", self.uplink_used / 1e6, self.uplink_hz / 1e6, "MHz"),
                ("downlink", self.downlink_used / 1e6, self.downlink_hz / 1e6, "MHz")]

    def header(self) -> str:
        head = (f"slot {self.slot}/{self.max_slots}   value served {self.value_total:g}")
        if self.last_value is None:
            return head
        return (f"{head}   last slot: batch {list(self.last_batch)} value "
                f"{self.last_value:g} binding {self.last_binding or '-'} "
                f"dropped {self.last_dropped}")


def check_render_mode(mode) -> None:
    if mode is not None and mode not in RENDER_MODES:
        raise EdgeLLMError(f"render_mode: must be None or one of "
                           f"{', '.join(map(repr, RENDER_MODES))}, got {mode!r}")


# ----------------------------------------------------------------------------- text
def ansi(s: RenderState) -> str:
    """A multi-line table of the state (``render_mode="ansi"``)."""
    lines = [s.header(),
             "user  queue  prompt  output  deadline_s  uplink_dB  downlink_dB  batch"]
    for k in range(s.n_users):
        mark = "in" if s.in_batch[k] else ("+" if s.addable[k] else ".")
        if s.present[k]:
            req = f"{int(s.prompt[k]):6d}  {int(s.output[k]):6d}  {s.deadline[k]:10.3f}"
        else:
            req = f"{'-':>6}  {'-':>6}  {'-':>10}"
        lines.append(f"{k:4d}  {int(s.queue[k]):2d}/{s.queue_capacity:<2d}  {req}  "
                     f"{s.uplink_db[k]:9.1f}  {s.downlink_db[k]:11.1f}  {mark:>5}")
    gauges = "  ".join(f"{n} {u:.3g}/{lim:.3g} {unit}" for n, u, lim, unit in s.gauges())
    lines.append(f"batch ({s.batch_label}) {list(s.batch)}: {gauges}")
    lines.append("batch column: in = in the batch, + = addable, . = not addable")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- frames
class _Frame:
    """The matplotlib figure of one K, built once; :meth:`draw` updates and rasterises it."""

    def __init__(self, s: RenderState):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        K = s.n_users
        self.key = _layout_key(s)
        self.fig = fig = Figure(figsize=(FRAME_W / DPI, FRAME_H / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(fig)
        gs = fig.add_gridspec(4, 2, width_ratios=(2.2, 1.0), left=0.07, right=0.98,
                              bottom=0.08, top=0.86, hspace=0.45, wspace=0.32)
        x = np.arange(K)
        self.title = fig.text(0.01, 0.965, "", fontsize=10, va="top", family="monospace")
        self.subtitle = fig.text(0.01, 0.925, "", fontsize=9, va="top", family="monospace")
        ax = [fig.add_subplot(gs[i, 0]) for i in range(4)]
        for a in ax:
            a.set_xlim(-0.6, K - 0.4)
            a.set_xticks(x if K <= 32 else x[::max(K // 16, 1)])
            a.tick_params(labelsize=7)
        for a in ax[:-1]:
            a.tick_params(labelbottom=False)
        ax[-1].set_xlabel("user", fontsize=8)
        w = 0.38
        self.queue = ax[0].bar(x, np.zeros(K), 0.7, color=_COLORS["idle"])
        ax[0].set_ylabel("queue", fontsize=8)
        self.prompt = ax[1].bar(x - w / 2, np.zeros(K), w, color="#9467bd", label="prompt")
        self.output = ax[1].bar(x + w / 2, np.zeros(K), w, color="#ff7f0e", label="output")
        ax[1].set_ylabel("tokens", fontsize=8)
        above = dict(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 0.98), ncol=2,
                     frameon=False, borderaxespad=0.0, handlelength=1.2)
        ax[1].legend(**above)
        self.deadline = ax[2].bar(x, np.zeros(K), 0.7, color="#d62728")
        ax[2].set_ylabel("deadline [s]", fontsize=8)
        self.slot_line = ax[2].axhline(0.0, color="k", lw=0.8, ls="--", label="slot length")
        ax[2].legend(**above)
        (self.up,) = ax[3].plot(x, np.zeros(K), "^", ms=4, color="#17becf", label="uplink")
        (self.down,) = ax[3].plot(x, np.zeros(K), "v", ms=4, color="#8c564b",
                                  label="downlink")
        ax[3].set_ylim(*GAIN_DB_RANGE)
        ax[3].set_ylabel("gain [dB]", fontsize=8)
        ax[3].legend(**above)
        # fixed limits (per layout key): ticks are laid out once
        ax[0].set_ylim(0, max(s.queue_capacity, 1))
        ax[1].set_ylim(0, max(s.max_prompt, s.max_output, 1))
        ax[2].set_ylim(0, max(s.deadline_max, s.slot_s) * 1.05)
        self.slot_line.set_ydata([s.slot_s, s.slot_s])
        # right column: resource gauges and the legend of bar colours
        g = fig.add_subplot(gs[0:3, 1])
        names = ["GPU memory", "compute", "uplink", "downlink"]
        y = np.arange(len(names))[::-1]
        g.barh(y, np.ones(len(names)), 0.6, color="#eeeeee", edgecolor="#888888")
        self.gauge = g.barh(y, np.zeros(len(names)), 0.6, color="#2ca02c")
        g.set_yticks(y, names, fontsize=8)
        g.set_xlim(0, 1.0)
        g.set_xticks([0, 0.5, 1.0], ["0", "50%", "limit"], fontsize=7)
        self.gauge_text = [g.text(0.02, yy, "", fontsize=7, va="center") for yy in y]
        self.gauge_title = g.text(0.5, 1.04, "", fontsize=9, ha="center",
                                  transform=g.transAxes)
        leg = fig.add_subplot(gs[3, 1])
        leg.axis("off")
        for i, (name, key) in enumerate((("in batch", "batch"), ("addable", "addable"),
                                          ("not addable", "idle"))):
            leg.add_patch(_rect(0.0, 0.75 - 0.3 * i, _COLORS[key]))
            leg.text(0.12, 0.8 - 0.3 * i, name, fontsize=8, va="center")
        leg.set_xlim(0, 1)
        leg.set_ylim(0, 1)
        # blitting: the axes, ticks and labels are drawn once; frames redraw the rest
        self.dynamic = [*self.queue, *self.prompt, *self.output, *self.deadline,
                        self.slot_line, self.up, self.down, *self.gauge, *self.gauge_text,
                        self.gauge_title, self.title, self.subtitle]
        for a in self.dynamic:
            a.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)

    def draw(self, s: RenderState) -> np.ndarray:
        K = s.n_users
        colors = np.where(s.in_batch, _COLORS["batch"],
                          np.where(s.addable, _COLORS["addable"], _COLORS["idle"]))
        for k in range(K):
            self.queue[k].set_height(s.queue[k])
            self.queue[k].set_color(colors[k])
            self.prompt[k].set_height(s.prompt[k])
            self.output[k].set_height(s.output[k])
            self.deadline[k].set_height(min(s.deadline[k], s.deadline_max))
        lo, hi = GAIN_DB_RANGE
        self.up.set_ydata(np.clip(s.uplink_db, lo, hi))
        self.down.set_ydata(np.clip(s.downlink_db, lo, hi))
        for bar, txt, (_, used, lim, unit) in zip(self.gauge, self.gauge_text, s.gauges()):
            frac = used / lim if lim > 0 else 0.0
            bar.set_width(min(max(frac, 0.0), 1.0))
            bar.set_color("#d62728" if frac > 0.95 else "#2ca02c")
            txt.set_text(f"{used:.3g} / {lim:.3g} {unit}")
        self.gauge_title.set_text(f"batch ({s.batch_label}): {len(s.batch)} users")
        self.title.set_text(f"slot {s.slot}/{s.max_slots}   value served {s.value_total:g}")
        sub = "" if s.last_value is None else (
            f"last slot: batch {list(s.last_batch)}  value {s.last_value:g}  binding "
            f"{s.last_binding or '-'}  dropped {s.last_dropped}")
        self.subtitle.set_text(sub)
        self.canvas.restore_region(self.background)
        for a in self.dynamic:
            self.fig.draw_artist(a)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def _layout_key(s: RenderState) -> tuple:
    return (s.n_users, s.queue_capacity, s.max_prompt, s.max_output, s.deadline_max, s.slot_s)


def _rect(x: float, y: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 0.08, 0.12, color=color)


def has_display() -> bool:
    """True where a window can open (macOS / Windows, or X11 / Wayland on Linux)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Renderer:
    """Renders :class:`RenderState` s in one mode; see the module docstring."""

    def __init__(self, mode: str):
        check_render_mode(mode)
        self.mode = mode
        self._frame: _Frame | None = None
        self._window = None
        if mode == "human" and not has_display():
            raise EdgeLLMError("render_mode='human': no display here ($DISPLAY and "
                               "$WAYLAND_DISPLAY unset); use render_mode='rgb_array' "
                               "(frames) or 'ansi' (text)")

    def frame(self, state: RenderState) -> np.ndarray:
        if self._frame is None or self._frame.key != _layout_key(state):
            self._frame = _Frame(state)
        return self._frame.draw(state)

    def render(self, state: RenderState):
        if self.mode == "ansi":
            return ansi(state)
        rgb = self.frame(state)
        if self.mode == "rgb_array":
            return rgb
        self._show(rgb)
        return None

    def _show(self, rgb: np.ndarray) -> None:
        import matplotlib.pyplot as plt

        if self._window is None:
            if plt.get_backend().lower() in ("agg", "pdf", "ps", "svg", "cairo", "template"):
                raise EdgeLLMError(f"render_mode='human': matplotlib backend "
                                   f"{plt.get_backend()!r} cannot open a window; set "
                                   f"MPLBACKEND (e.g. TkAgg, QtAgg) or use 'rgb_array'")
            fig = plt.figure(figsize=(FRAME_W / DPI, FRAME_H / DPI), dpi=DPI)
            ax = fig.add_axes((0, 0, 1, 1))
            ax.axis("off")
            self._window = (fig, ax.imshow(rgb))
        fig, img = self._window
        img.set_data(rgb)
        fig.canvas.draw_idle()
        plt.pause(0.001)

    def close(self) -> None:
        if self._window is not None:
            import matplotlib.pyplot as plt

            plt.close(self._window[0])
            self._window = None
        self._frame = None
