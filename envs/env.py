"""The multi-slot edge LLM batch-scheduling environment (SPEC section 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from edgellm.envs.config import ScenarioConfig
from edgellm.envs.queues import (
    DEADLINE_S,
    DOWNLINK_MEDIA_BITS,
    DROP_CAUSES,
    ENCODER_FLOPS,
    ID,
    MEDIA_TOKENS,
    OUTPUT_TOKENS,
    PPL_TOLERANCE,
    PROMPT_TOKENS,
    Queues,
    Rules,
)
from edgellm.envs.render import RENDER_MODES, Renderer, RenderState, check_render_mode
from edgellm.envs.scenarios import get_scenario
from edgellm.envs.traffic import Traffic
from edgellm.errors import EdgeLLMError
from edgellm.system import catalog, check_rows, evaluate, prepare, prepare_arrays
from edgellm.system.feasibility import OK, REASONS, Prepared, check_additions, encoder_rate
from edgellm.system.instance import SlotInstance

ACTION_MODES = ("sequential", "subset", "priority")
USER_FEATURES = ("present", "prompt", "output", "deadline", "admissible", "uplink_gain",
                 "downlink_gain", "queue", "in_batch", "addable")
GLOBAL_FEATURES = ("memory_left", "compute_time", "slot", "batch_size")
MEDIA_FEATURES = ("uplink_bits", "downlink_bits")  # appended to each user row with media
MEDIA_BITS_SCALE = 4e6  # payload normalization [bit] (500 kB)
_U = {name: i for i, name in enumerate(USER_FEATURES + MEDIA_FEATURES)}  # user feature column
_G = {name: i for i, name in enumerate(GLOBAL_FEATURES)}  # index of a global feature
_REQUEST_COLS = slice(_U["present"], _U["admissible"] + 1)  # the head request's own columns
_GAIN_COLS = slice(_U["uplink_gain"], _U["downlink_gain"] + 1)
GAIN_DB_LO, GAIN_DB_SPAN = -150.0, 100.0  # gain normalization: (10 log10 g + 150) / 100
_REASON_ORDER = tuple(sorted(REASONS))     # check_rows codes in test order
_NO_USERS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class SlotView:
    """The current decision state (see :meth:`EdgeLLMEnv.slot_view`).

    ``instance`` holds one request per entry of ``users`` (same order): request index i is
    the head-of-line request of user ``users[i]``; ``prepared`` holds its arrays for the
    feasibility kernel. ``request_ids[i]`` is that request's id: ids grow in arrival order.
    """

    users: tuple[int, ...]
    prepared: Prepared
    chosen: tuple[int, ...]
    queue_lengths: np.ndarray
    slot: int
    request_ids: tuple[int, ...] = ()

    @property
    def instance(self) -> SlotInstance:
        return self.prepared.instance


class EdgeLLMEnv(gym.Env):
    """Batch scheduling of quantized LLM inference at a wireless edge node, slot by slot.

    K users send inference requests into per-user FIFO queues (capacity Q). In every slot
    the head-of-line requests are the candidates; the agent picks a batch; the node
    uploads the prompts, runs the batch on its GPU and sends the answers back, which must
    all fit in the slot and in every member's remaining deadline (SPEC sections 2 and 4).
    Every batch is checked with ``edgellm.system.check_rows`` / ``evaluate``, the cost model
    of the DFTSP oracle, so env, oracle and heuristics agree.

    **Action space** (``action_mode``):

    * ``sequential``: ``Discrete(K + 1)``. Action ``i < K`` adds user i's head-of-line
      request to the slot's batch; action ``K`` dispatches the batch and ends the slot.
      ``action_masks()`` (also ``info["action_mask"]`` and the ``addable`` observation
      column) is True exactly for the users whose addition keeps the batch feasible, and
      always for ``K``. An invalid action (out of range, a user without a request, already
      added, or masked out) is a no-op flagged ``invalid_action`` (penalty
      ``invalid_penalty``). The slot also ends automatically after an addition that leaves
      no addable user, and on the slot's (K+1)-th step, so an episode takes at most
      ``(K + 1) * max_slots`` steps. A slot is thus one path down the DFTSP tree.
    * ``subset``: ``MultiBinary(K)``, one step per slot: the users set to 1 (users without a
      request are ignored). An infeasible set is, with ``subset_infeasible="repair"``
      (default), repaired deterministically: its users are added in ascending id order,
      each one only if the batch stays feasible (``repaired`` in info); with ``"reject"``
      nothing is served and ``invalid_action`` is set. ``action_masks()`` returns 2K
      flags (per user: may choose 0, may choose 1 = feasible alone) for MaskablePPO.
    * ``priority``: ``Box(-1, 1, (K,))`` scores, one step per slot. Users with score > 0
      are tried in descending score order (ties: lower id first) and added while the batch
      stays feasible; users with score <= 0 are never added. Non-finite scores count as
      <= 0 and set ``invalid_action``.

    ``env.unwrapped.action_for(users)`` gives the action that serves a given batch.

    **Observation**: ``Box(0, 1, (C K + 4,), float32)``, a fresh array each step, with C = 12
    columns per user on ``default`` (media: the last two are below the table) and C = 10 on
    text-only scenarios. Row k of the first C K entries (user k,
    ``obs[:C*K].reshape(K, C)``):

    ====  ==============  ===========================================================
    col   name            value (0 where user k has no request)
    ====  ==============  ===========================================================
    0     present         1 if user k has a head-of-line request
    1     prompt          prefill tokens (s + media tokens) / max_prompt, clipped
    2     output          n / max_output
    3     deadline        remaining deadline / deadline_s[1], clipped to [0, 1]
    4     admissible      1 if the model's perplexity increase <= the tolerance
    5     uplink_gain     (10 log10 g + 150) / 100, clipped (all users, request or not)
    6     downlink_gain   (10 log10 h + 150) / 100, clipped (all users)
    7     queue           queue length / Q (all users)
    8     in_batch        1 if already in this slot's batch (sequential mode)
    9     addable         1 if adding it keeps the batch feasible (the action mask)
    ====  ==============  ===========================================================

    followed by 4 global entries: ``10 K`` memory left (1 - KV bytes of the batch / KV
    capacity), ``10 K + 1`` compute time of the batch / slot_s, ``10 K + 2`` slot index /
    max_slots, ``10 K + 3`` batch size / K.

    With media (``media_mix`` not text only, e.g. the ``default`` preset) each user row
    has 12 columns, ``Box(0, 1, (12 K + 4,))``: the 10 above, then ``10 uplink_bits``
    (prompt + media bits / 4e6, clipped) and ``11 downlink_bits`` (answer + media bits /
    4e6, clipped); the global entries follow at ``12 K``. Text-only scenarios keep the
    10-column layout.

    **Reward**: at the end of a slot, the value served (requests, or output tokens with
    ``objective="tokens"``) minus ``drop_penalty`` times the weight of every request dropped
    at that slot's end; minus ``invalid_penalty`` on any invalid action; 0 on the other
    steps of a sequential slot. ``info["reward_terms"]`` holds the named terms
    (``served``, ``drops``, ``invalid``), which sum to the reward.

    **Slot dynamics**: serve the batch (pop the heads), age every queued request (its
    remaining deadline shrinks by ``slot_s``), drop requests that can never be met
    (``expired``: remaining deadline <= the compute time of the request alone, so no batch
    and no channel can serve it), draw the next slot's fading and arrivals. An arrival that
    no batch could ever serve (inadmissible, KV alone over capacity, compute alone >= slot)
    is dropped as ``rejected`` when ``reject_unservable`` (else it waits and expires); an
    arrival that meets a full queue is dropped as ``overflow`` (``drop_new``) or pushes out
    the head (``drop_oldest``, counted ``overflow``). Arrivals and lengths follow the
    scenario's ``workload``: log-normal lengths, rows of a real trace (``empirical``), or
    the trace's own arrivals replayed (``replay``, see :mod:`edgellm.system.traces`).

    **info** (every step): ``slot_done``, ``action_mask``, ``invalid_action``,
    ``repaired``. When ``slot_done``: ``slot``, ``batch`` (user ids), ``value``, ``served``,
    ``served_tokens``, ``served_ids`` (request ids), ``dropped`` (cause -> count),
    ``t_uplink_s``, ``t_compute_s``, ``memory_bytes`` (weights + KV, from ``evaluate``),
    ``binding``, ``refused`` (reason -> count), ``overlength`` (trace workloads: arrivals
    of the next slot longer than the model context, truncated or rejected as the scenario's
    ``overlength`` says), ``reward_terms``. ``binding`` is the
    constraint that stopped the batch from growing: None when some candidate outside the
    batch could still be added, or when there is none; otherwise the most frequent reason
    ``check_rows`` gives for (batch + c) over the candidates c outside the batch (ties go
    to the earlier test: accuracy, memory, slot, deadline, downlink, uplink).

    **Episode end**: no terminal state; ``truncated`` after ``max_slots`` slots.

    **One request's life, module by module**:

    1. *traffic* (:mod:`edgellm.envs.traffic`): the request is drawn at the end of the
       slot before it arrives (arrival flag from the scenario's arrival process or the
       replayed trace; ``prompt_tokens``, ``output_tokens`` from the log-normals of the
       scenario's :class:`~edgellm.system.workloads.Workload` or a trace row;
       ``deadline_s``, ``ppl_tolerance`` from the Workload; media from ``media_mix``),
       with the slot's fading gains.
    2. *queues* (:mod:`edgellm.envs.queues`, compiled): ``Queues.end_slot`` admits it
       (or drops it: ``rejected``, ``expired``, ``overflow``), gives it an id, and from then
       on ages its remaining deadline by ``slot_s`` each slot until it is served or expires.
    3. *candidates* (``_begin_slot`` here): at the head of its user's queue it becomes a
       candidate: its fields and its user's current gains become one request of the slot
       instance (:func:`edgellm.system.prepare_arrays`), and the observation row of its user.
    4. *feasibility* (:mod:`edgellm.system.feasibility`): ``check_rows`` /
       ``check_additions`` decide which candidates can join the batch (the action mask);
       the action (``_act_*`` here) builds the batch only from feasible additions.
    5. *serve* (``_dispatch`` here): :func:`edgellm.system.evaluate` of the final batch
       gives its value, uplink and compute times and memory; ``Queues.end_slot`` pops it.
    6. *info*: ``served_ids`` carries its id, ``dropped`` counts it if it was dropped
       instead, and ``reward_terms`` its weight.

    **Rendering** (``render_mode``, see :mod:`edgellm.envs.render`): ``"rgb_array"``: a
    ``uint8`` frame ``(540, 960, 3)`` of queues, head requests, deadlines, gains, batch
    membership and the batch's GPU memory, compute time and radio use against their limits;
    ``"ansi"``: the same as a text table; ``"human"``: the frame in a window (needs a
    display). ``gymnasium.wrappers.RecordVideo`` works with ``"rgb_array"``.

    **Arguments**: ``scenario`` (preset name or :class:`ScenarioConfig`), ``action_mode``,
    ``render_mode`` (None, ``"rgb_array"``, ``"ansi"`` or ``"human"``), and any
    :class:`ScenarioConfig` field as a keyword override. Per-episode overrides:
    ``reset(options={"scenario": {...}})`` (``n_users`` cannot change). All randomness
    comes from ``reset(seed=...)``; arrivals, requests and channels never depend on the
    actions.

    **Version history**: v0: initial version. After version 0.1 (same ids): the ``default``
    scenario is text, photos and speech on 5 MHz of a 20 MHz carrier (observation
    ``12 K + 4``); the version-0.1 default (text on a 40 kHz / 2.5 kHz slice) is the
    ``thin-slice`` preset, so ``scenario="thin-slice"`` reproduces earlier results.

    Example::

        >>> import gymnasium as gym, edgellm.envs
        >>> env = gym.make("edgellm.envs:EdgeLLM-Sequential-v0", scenario="default")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.unwrapped.n_users)
        >>> bool(info["slot_done"])
        True
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(self, scenario: str | ScenarioConfig = "default", action_mode: str = "subset",
                 render_mode: str | None = None, **overrides: Any):
        if action_mode not in ACTION_MODES:
            raise EdgeLLMError(f"action_mode: must be one of {', '.join(ACTION_MODES)}, "
                               f"got {action_mode!r}")
        check_render_mode(render_mode)
        self.config = get_scenario(scenario, **overrides)
        self.base_config = self.config
        self.action_mode = action_mode
        self.render_mode = render_mode
        self._renderer = Renderer(render_mode) if render_mode is not None else None
        self.n_users = K = self.config.n_users
        if action_mode == "sequential":
            self.action_space = spaces.Discrete(K + 1)
        elif action_mode == "subset":
            self.action_space = spaces.MultiBinary(K)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (K,), dtype=np.float32)
        self._F = len(USER_FEATURES) + len(MEDIA_FEATURES) * self.config.has_media
        self._n_obs = self._F * K + len(GLOBAL_FEATURES)
        self.observation_space = spaces.Box(0.0, 1.0, (self._n_obs,), dtype=np.float32)
        self._apply_config(self.config)
        self._traffic: Traffic | None = None

    # ------------------------------------------------------------------ configuration
    def _apply_config(self, cfg: ScenarioConfig) -> None:
        self.config = cfg
        self._system = catalog.build_instance(
            cfg.model, cfg.quant, cfg.device, (),
            radio=dict(uplink_hz=cfg.uplink_hz, downlink_hz=cfg.downlink_hz,
                       noise_psd_w_per_hz=cfg.noise_psd_w_per_hz, en_power_w=cfg.en_power_w,
                       bits_per_token=cfg.bits_per_token,
                       uplink_noise_psd_w_per_hz=cfg.uplink_noise_psd_w_per_hz,
                       downlink_noise_psd_w_per_hz=cfg.downlink_noise_psd_w_per_hz),
            slot_s=cfg.slot_s, kv_cache=cfg.kv_cache, objective=cfg.objective)
        p0 = prepare(self._system)  # system constants, no requests
        self._rules = Rules(cfg.slot_s, cfg.objective == "tokens", cfg.reject_unservable,
                            cfg.overflow == "drop_new", self._system.quant.ppl_increase,
                            p0.kv_capacity, p0.padded, p0.cost_constants,
                            encoder_rate(self._system))

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cfg = self.base_config
        if options and options.get("scenario"):
            over = dict(options["scenario"])
            if "n_users" in over and over["n_users"] != self.n_users:
                raise EdgeLLMError(f"options.scenario.n_users: cannot change per episode "
                                   f"(env has {self.n_users}), got {over['n_users']!r}")
            cfg = cfg.replace(**over)
            if cfg.has_media != self.base_config.has_media:
                raise EdgeLLMError("options.scenario.media_mix: cannot switch between text "
                                   "only and media per episode (the observation size "
                                   f"differs), got {cfg.media_mix!r}")
        if cfg is not self.config:
            self._apply_config(cfg)
        entropy = seed if seed is not None else int(self.np_random.integers(2 ** 63))
        self._traffic = Traffic(cfg, np.random.SeedSequence(entropy))
        self._queues = Queues(self.n_users, cfg.queue_capacity)
        self.counts = {"arrived": 0, "served": 0, **{c: 0 for c in DROP_CAUSES}}
        self._slot = 0
        self._last = None  # (users, value, binding, dropped, evaluation) of the last slot
        self._value_total = 0.0
        drops, _ = self._end_slot(_NO_USERS, self._traffic.draw(advance_fading=False))
        self._begin_slot()
        if self.render_mode == "human":
            self.render()
        return self._obs.copy(), {"slot_done": False, "action_mask": self._mask_info(),
                                  "dropped": drops}

    def step(self, action):
        self._pending_invalid = False
        self._repaired = False
        mode = self.action_mode
        if mode == "sequential":
            done = self._act_sequential(action)
        elif mode == "subset":
            self._act_subset(action)
            done = True
        else:
            self._act_priority(action)
            done = True
        if not done:  # the batch grew by one user, or nothing changed
            pen = self.config.invalid_penalty if self._pending_invalid else 0.0
            if not self._pending_invalid:
                self._refresh_obs()
            if self.render_mode == "human":
                self.render()
            info = {"slot_done": False, "action_mask": self._mask_info(),
                    "invalid_action": self._pending_invalid, "repaired": False,
                    "reward_terms": {"served": 0.0, "drops": 0.0, "invalid": -pen}}
            return self._obs.copy(), -pen, False, False, info
        out = self._dispatch()
        if self.render_mode == "human":
            self.render()
        return out

    def render(self):
        """The frame, text or window of the current state, per ``render_mode`` (None: no
        rendering, returns None)."""
        if self._renderer is None:
            if self.render_mode is None:
                gym.logger.warn("render() called without a render_mode; pass "
                                "render_mode='rgb_array', 'ansi' or 'human' to the env")
            return None
        if self._traffic is None:
            raise EdgeLLMError("render(): call reset() first")
        return self._renderer.render(self.render_state())

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
        super().close()

    def render_state(self) -> RenderState:
        """The current state as plain numbers for :mod:`edgellm.envs.render`."""
        cfg, K, p = self.config, self.n_users, self._p
        users = self._users
        per = {k: np.zeros(K) for k in ("prompt", "output", "deadline")}
        per["prompt"][users] = p.prefill_tokens
        per["output"][users] = p.output_tokens
        per["deadline"][users] = self._heads[:, DEADLINE_S]
        present = np.zeros(K, dtype=bool)
        present[users] = True
        in_batch = np.zeros(K, dtype=bool)
        in_batch[users] = self._in
        addable = np.zeros(K, dtype=bool)
        addable[users] = self._ok
        with np.errstate(divide="ignore"):
            up_db, down_db = 10.0 * np.log10(self._traffic.gain)
        if self._batch or self._last is None:
            label, batch = "building", tuple(int(users[i]) for i in sorted(self._batch))
            ev = evaluate(p, sorted(self._batch))
        else:
            label, batch, ev = "last slot", tuple(self._last[0]), self._last[4]
        last = self._last or ((), None, None, 0, None)
        return RenderState(
            slot=self._slot, max_slots=cfg.max_slots, value_total=self._value_total,
            queue=self._queues.length.copy(), queue_capacity=cfg.queue_capacity,
            present=present, prompt=per["prompt"], output=per["output"],
            deadline=per["deadline"], uplink_db=up_db, downlink_db=down_db,
            in_batch=in_batch, addable=addable, max_prompt=cfg.max_prompt,
            max_output=cfg.max_output, deadline_max=float(cfg.deadline_s[1]),
            batch_label=label, batch=batch, memory_used=float(ev.memory_bytes),
            memory_limit=float(p.kv_capacity + p.weight_bytes),
            t_compute=float(ev.t_compute_s), slot_s=cfg.slot_s,
            uplink_used=float(sum(ev.uplink_hz)), uplink_hz=float(p.uplink_hz),
            downlink_used=float(sum(ev.downlink_hz)), downlink_hz=float(p.downlink_hz),
            last_value=last[1], last_batch=tuple(last[0]), last_binding=last[2],
            last_dropped=int(last[3]))

    # ------------------------------------------------------------------ public helpers
    def action_masks(self) -> np.ndarray:
        """Mask for sb3-contrib MaskablePPO (see the class docstring, per action mode)."""
        if self.action_mode == "subset":
            m = np.ones((self.n_users, 2), dtype=bool)
            m[:, 1] = self._mask
            return m.ravel()
        return self._mask.copy()

    def slot_view(self) -> SlotView:
        """The current slot's candidates (one per user with a request), their prepared arrays,
        the users chosen so far and the head-of-line request ids."""
        return SlotView(users=tuple(int(u) for u in self._users), prepared=self._p,
                        chosen=tuple(int(self._users[i]) for i in self._batch),
                        queue_lengths=self._queues.length.copy(), slot=self._slot,
                        request_ids=tuple(int(x) for x in self._heads[:, ID]))

    def action_for(self, users: Sequence[int]):
        """The action that serves exactly the batch ``users`` (user ids) in this mode."""
        users = [int(u) for u in users]
        K = self.n_users
        if self.action_mode == "subset":
            a = np.zeros(K, dtype=np.int8)
            a[users] = 1
            return a
        if self.action_mode == "priority":
            a = np.full(K, -1.0, dtype=np.float32)
            for r, u in enumerate(users):
                a[u] = 1.0 - r / max(len(users), 1)
            return a
        chosen = {int(self._users[i]) for i in self._batch}
        for u in users:
            if u not in chosen:
                return u
        return K

    # ------------------------------------------------------------------ action modes
    def _act_sequential(self, action) -> bool:
        K = self.n_users
        try:
            a = int(action)
            if a != action:  # e.g. 2.5
                a = -1
        except (TypeError, ValueError, OverflowError):
            a = -1
        self._steps += 1
        if a == K:
            return True
        i = self._pos[a] if 0 <= a < K else -1
        if i < 0 or not self._ok[i]:
            self._pending_invalid = True
        else:
            self._add(i)
            if not self._ok.any():
                return True
        return self._steps >= K + 1

    def _act_subset(self, action) -> None:
        try:
            a = np.asarray(action, dtype=float).reshape(-1)
            if a.shape[0] != self.n_users or not np.all(np.isfinite(a)):
                raise ValueError
        except (TypeError, ValueError):
            self._pending_invalid = True
            return
        pos = self._pos[a > 0.5]
        cand = np.sort(pos[pos >= 0])
        if cand.size == 0:
            return
        if self._ok[cand].all():
            if cand.size == 1:
                self._add(int(cand[0]))
                return
            rc = check_rows(self._p, cand[None, :])
            if rc.code[0] == OK:
                self._set_batch(cand, float(rc.t_compute[0]), float(rc.kv_bytes[0]))
                return
        if self.config.subset_infeasible == "reject":
            self._pending_invalid = True
            return
        self._repaired = True
        self._fill(cand)

    def _act_priority(self, action) -> None:
        try:
            a = np.asarray(action, dtype=float).reshape(-1)
            if a.shape[0] != self.n_users:
                raise ValueError
        except (TypeError, ValueError):
            self._pending_invalid = True
            return
        bad = ~np.isfinite(a)
        if bad.any():
            self._pending_invalid = True
            a = np.where(bad, -1.0, a)
        users = np.flatnonzero((a > 0) & (self._pos >= 0))
        if users.size == 0:
            return
        order = users[np.lexsort((users, -a[users]))]
        self._fill(self._pos[order])

    # ------------------------------------------------------------------ batch building
    def _fill(self, order) -> None:
        """Greedy: add the candidates in ``order`` that keep the batch feasible."""
        for i in order:
            if self._ok[i]:
                self._add(int(i))

    def _add(self, i: int) -> None:
        """Add candidate i (must be addable) and re-check all others against the new batch:
        one check_rows call, rows = batch + c for every candidate c outside it."""
        self._batch.append(i)
        self._in[i] = True
        self._ok[i] = False
        self._tc, self._kv = self._cand_tc[i], self._cand_kv[i]
        self._recheck()

    def _set_batch(self, cand: np.ndarray, tc: float, kv: float) -> None:
        self._batch = [int(i) for i in cand]
        self._in[cand] = True
        self._ok[cand] = False
        self._tc, self._kv = tc, kv
        self._recheck()

    def _recheck(self) -> None:
        others = (~self._in).nonzero()[0]
        if others.size == 0:
            return
        rc = check_additions(self._p, self._batch, others)
        self._code[others] = rc.code
        self._ok[others] &= rc.code == OK  # feasible sets are down-closed
        self._cand_tc[others] = rc.t_compute
        self._cand_kv[others] = rc.kv_bytes

    # ------------------------------------------------------------------ masks and obs
    def _mask_info(self) -> np.ndarray:
        return self._mask.copy()

    def _refresh_obs(self) -> None:
        """Update the batch-dependent entries (and the sequential mask) after an addition."""
        K, F = self.n_users, self._F
        self._mask[self._users] = self._ok
        u = self._obs[:K * F].reshape(K, F)
        u[self._users, _U["in_batch"]] = self._in
        u[self._users, _U["addable"]] = self._ok
        g = self._obs[K * F:]
        g[_G["memory_left"]] = min(max(1.0 - self._kv / self._rules.kv_capacity, 0.0), 1.0)
        g[_G["compute_time"]] = min(self._tc / self.config.slot_s, 1.0)
        g[_G["batch_size"]] = len(self._batch) / K

    # ------------------------------------------------------------------ slot mechanics
    def _begin_slot(self) -> None:
        cfg, K = self.config, self.n_users
        q_len = self._queues.length
        users = q_len.nonzero()[0]
        self._users = users
        self._pos = np.full(K, -1, dtype=np.intp)
        self._pos[users] = np.arange(users.size)
        gains = self._traffic.gain  # (2, K): uplink, downlink
        up, down = gains
        self._heads = heads = self._queues.data[users, 0]
        s, n, tau = heads[:, PROMPT_TOKENS], heads[:, OUTPUT_TOKENS], heads[:, DEADLINE_S]
        media = heads[:, MEDIA_TOKENS:ENCODER_FLOPS + 1].T if cfg.has_media else (None,) * 4
        self._p = prepare_arrays(self._system, s, n, tau, heads[:, PPL_TOLERANCE], up[users],
                                 down[users], np.full(users.size, cfg.tx_power_w), *media)
        m = users.size
        self._batch: list[int] = []
        self._in = np.zeros(m, dtype=bool)
        self._tc = self._kv = 0.0
        self._steps = 0
        rc = check_rows(self._p, np.arange(m)[:, None])  # singletons (none if m = 0)
        self._code, self._ok = rc.code, rc.code == OK
        self._cand_tc, self._cand_kv = rc.t_compute, rc.kv_bytes
        # action mask: sequential K + 1 actions, else the users feasible alone
        self._mask = np.zeros(K + (self.action_mode == "sequential"), dtype=bool)
        self._mask[users] = self._ok
        self._mask[K:] = True
        # observation (see the class docstring); remaining deadlines are > 0
        F = self._F
        self._obs = obs = np.zeros(K * F + len(GLOBAL_FEATURES), dtype=np.float32)
        rows = np.empty((m, _REQUEST_COLS.stop))  # the head requests' own columns
        rows[:, _U["present"]] = 1.0
        np.minimum(self._p.prefill_tokens / cfg.max_prompt, 1.0, out=rows[:, _U["prompt"]])
        np.divide(n, cfg.max_output, out=rows[:, _U["output"]])
        np.minimum(tau / cfg.deadline_s[1], 1.0, out=rows[:, _U["deadline"]])
        rows[:, _U["admissible"]] = self._p.admissible
        u = obs[:K * F].reshape(K, F)
        u[users, _REQUEST_COLS] = rows
        db = (10.0 * np.log10(gains) - GAIN_DB_LO) / GAIN_DB_SPAN
        u[:, _GAIN_COLS] = np.minimum(np.maximum(db, 0.0), 1.0).T  # rows: uplink, downlink
        u[:, _U["queue"]] = q_len / cfg.queue_capacity
        u[users, _U["addable"]] = self._ok
        if cfg.has_media:
            down = n * cfg.bits_per_token + heads[:, DOWNLINK_MEDIA_BITS]
            u[users, _U["uplink_bits"]] = np.minimum(self._p.up_bits / MEDIA_BITS_SCALE, 1.0)
            u[users, _U["downlink_bits"]] = np.minimum(down / MEDIA_BITS_SCALE, 1.0)
        g = obs[K * F:]
        g[_G["memory_left"]] = 1.0
        g[_G["slot"]] = min(self._slot / cfg.max_slots, 1.0)

    def _dispatch(self):
        cfg = self.config
        p = self._p
        batch = sorted(self._batch)
        served = self._users[batch]
        users = served.tolist()
        ev = evaluate(p, batch)
        assert ev.feasible, "env built an infeasible batch"  # exact masks: cannot happen
        value = ev.value
        served_tokens = int(p.output_tokens[batch].sum())
        # binding constraint and refusals (codes are against the final batch)
        out = ~self._in
        codes = self._code[out]
        counts = np.bincount(codes, minlength=len(REASONS) + 1).tolist()
        refused = {REASONS[c]: counts[c] for c in _REASON_ORDER if counts[c]}
        binding = None
        if codes.size and not self._ok[out].any():
            binding = max(refused, key=lambda r: refused[r])  # first max: earlier test
        served_ids = tuple(self._heads[batch, ID].astype(np.int64).tolist())
        self.counts["served"] += len(users)
        slot = self._slot
        self._slot += 1
        draw = self._traffic.draw()
        drops, dropped_w = self._end_slot(served, draw)
        self._begin_slot()
        invalid = self._pending_invalid
        terms = {"served": float(value), "drops": -cfg.drop_penalty * dropped_w,
                 "invalid": -cfg.invalid_penalty if invalid else 0.0}
        reward = terms["served"] + terms["drops"] + terms["invalid"]
        truncated = self._slot >= cfg.max_slots
        info = {"slot_done": True, "action_mask": self._mask_info(), "invalid_action": invalid,
                "repaired": self._repaired, "slot": slot, "batch": tuple(users), "value": value,
                "served": len(users), "served_tokens": served_tokens, "served_ids": served_ids,
                "dropped": drops, "t_uplink_s": ev.t_uplink_s, "t_compute_s": ev.t_compute_s,
                "memory_bytes": ev.memory_bytes,
                "binding": binding, "refused": refused, "overlength": draw.overlength,
                "reward_terms": terms}
        self._last = (users, value, binding, sum(drops.values()), ev)
        self._value_total += value
        return self._obs.copy(), float(reward), False, truncated, info

    def _end_slot(self, served: np.ndarray, draw) -> tuple[dict, float]:
        """Serve ``served`` (user ids), age the queues and admit ``draw``'s arrivals; count
        the drops by cause. Returns the drops and their objective weight."""
        drops, weight = self._queues.end_slot(served, draw, self._rules)
        drops = dict(zip(DROP_CAUSES, drops.tolist()))
        for c, k in drops.items():
            self.counts[c] += k
        self.counts["arrived"] = self._queues.next_id
        return drops, weight
