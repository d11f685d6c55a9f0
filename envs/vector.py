"""Native batched vector env: N EdgeLLM envs stepped together in compiled calls.

:class:`EdgeLLMVectorEnv` is a :class:`gymnasium.vector.VectorEnv` whose N sub-envs are
bit-identical to N :class:`~edgellm.envs.env.EdgeLLMEnv` (same observations, rewards,
truncations and info values under the same actions; sub-env i of ``reset(seed=s)`` is
``EdgeLLMEnv.reset(seed=s + i)``). The per-slot state of all N envs lives in (N, K)
arrays; adding users, rechecking candidates, evaluating the dispatched batch, the queue
mechanics and the observation are compiled loops over the envs that call the oracle's
kernel (:func:`edgellm.system._kernel.check_row_screened`, ``least_uplink_phase``), the queues'
compiled end of slot (:func:`edgellm.envs.queues._end_slot`) and
:func:`edgellm.system.prepare_arrays`: one cost model, no copy. The exogenous traffic of
all envs is drawn in one compiled call (:class:`~edgellm.envs.traffic.TrafficBatch`) from
each env's own generators, the same code that the single env's
:meth:`~edgellm.envs.traffic.Traffic.draw` calls for its one env.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numba import njit

from edgellm.envs.config import ScenarioConfig
from edgellm.envs.env import (
    ACTION_MODES,
    GAIN_DB_LO,
    GAIN_DB_SPAN,
    GLOBAL_FEATURES,
    MEDIA_BITS_SCALE,
    USER_FEATURES,
    EdgeLLMEnv,
)
from edgellm.envs.queues import (
    DEADLINE_S,
    DOWNLINK_MEDIA_BITS,
    DROP_CAUSES,
    FIELDS,
    ID,
    MEDIA_TOKENS,
    OUTPUT_TOKENS,
    PPL_TOLERANCE,
    PROMPT_TOKENS,
)
from edgellm.envs.queues import _end_slot as _queue_end_slot
from edgellm.envs.scenarios import get_scenario
from edgellm.envs.traffic import TrafficBatch
from edgellm.errors import EdgeLLMError
from edgellm.system import prepare, prepare_arrays
from edgellm.system._kernel import check_row, check_row_screened, least_uplink_phase
from edgellm.system.feasibility import REASONS

_jit = njit(cache=True, nogil=True)
# helpers called once per feasibility row or per user: inlined into their callers (as the
# kernel's row checks are, see edgellm.system._kernel)
_inline = njit(cache=True, nogil=True, inline="always")
_F = len(USER_FEATURES)  # text observation columns per user (media rows add 2 after them)
(_PRESENT, _PROMPT, _OUTPUT, _DEADLINE, _ADMISSIBLE, _UPLINK, _DOWNLINK, _QUEUE, _IN_BATCH,
 _ADDABLE) = range(_F)
_UP_BITS, _DOWN_BITS = _F, _F + 1  # media scenarios only
_MEMORY_LEFT, _COMPUTE, _SLOT, _BATCH = range(len(GLOBAL_FEATURES))
_REASON_NAMES = tuple(REASONS[c] for c in sorted(REASONS))  # codes 1 .. 6


# ----------------------------------------------------------------------------- compiled core
# ``cand``: per-user arrays of the slot's head-of-line requests, each (N, K):
#   (prefill tokens, output, window, admissible, up_bits, snr, down_c, enc_s)
# ``sysc``: (P, L, d, W, kv, C, M, kv_capacity, padded, B_U, B_D, slot_s)
# ``st``: the batch state, see EdgeLLMVectorEnv._alloc
# ``F``: observation columns per user (10, or 12 with media)


@_inline
def _cols(e, cand):
    """Env e's rows of the candidate arrays (views, made once per env: each costs a
    reference count)."""
    prompt, output, window, admissible, up_bits, snr, down_c, enc_s = cand
    return (prompt[e], output[e], window[e], admissible[e], up_bits[e], snr[e], down_c[e],
            enc_s[e])


@_inline
def _check(ids, cols, sysc, ws):
    """:func:`~edgellm.system._kernel.check_row_screened` (code, S, N, KV bytes, T_C) of
    the users ``ids`` (ascending) of one env (its ``cols``); ``ws``: :func:`_workspace`."""
    pe, oe, we, ae, ue, se, de, ee = cols
    P, L, d, W, kv, C, M, cap, padded, B_U, B_D, slot = sysc
    return check_row_screened(ids, pe, oe, we, ae, ue, se, de, ee, P, L, d, W, kv, C, M, cap,
                              padded, B_U, B_D, slot, ws[1], ws[2], ws[3], ws[4])


@_jit
def _workspace(K):
    """Scratch of the row checks, made once per compiled call: a row's user indices, the
    kernel's four float buffers (separate arrays: a view per row costs a reference
    count), a batch's members and the users of an action."""
    return (np.empty(K + 1, np.int64), np.empty(K), np.empty(K), np.empty(K), np.empty(K),
            np.empty(K, np.int64), np.empty(K, np.int64))


@_inline
def _list_members(e, inb, out):
    """Write env e's batch (ascending users) into ``out``; returns its size."""
    m = 0
    for j in range(inb.shape[1]):
        if inb[e, j]:
            out[m] = j
            m += 1
    return m


@_inline
def _insert(members, m, k, ids):
    """``ids[:m + 1]``: the ascending ``members[:m]`` with user k inserted in order."""
    p = 0
    while p < m and members[p] < k:
        ids[p] = members[p]
        p += 1
    ids[p] = k
    for q in range(p, m):
        ids[q + 1] = members[q]
    return ids[:m + 1]


@_inline
def _check_user(e, k, members, m, cols, sysc, ws, code, ctc, ckv):
    """Check batch ``members[:m]`` + user k of env e and record the row (``code``,
    ``ckv``, ``ctc``); returns its code."""
    res = _check(_insert(members, m, k, ws[0]), cols, sysc, ws)
    code[e, k] = res[0]
    ckv[e, k] = res[3]
    ctc[e, k] = res[4]
    return res[0]


@_jit
def _recheck(e, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, addable):
    """Re-check the candidates outside the batch against batch + it: those still addable
    (``addable``), or the others (their refusal reasons, needed only when the slot ends:
    feasible sets are down-closed, so they never become addable)."""
    cols = _cols(e, cand)
    K = present.shape[1]
    m = _list_members(e, inb, ws[5])
    for k in range(K):
        if not (present[e, k] and not inb[e, k] and ok[e, k] == addable):
            continue
        c = _check_user(e, k, ws[5], m, cols, sysc, ws, code, ctc, ckv)
        ok[e, k] = ok[e, k] and c == 0


@_inline
def _put(e, i, inb, ok, ctc, ckv, nb, tc, kv):
    """Put user i (checked against the batch: ``ctc``, ``ckv``) into env e's batch."""
    nb[e] += 1
    inb[e, i] = True
    ok[e, i] = False
    tc[e] = ctc[e, i]
    kv[e] = ckv[e, i]


@_jit
def _add(e, i, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, tc, kv):
    """Put user i into the batch and re-check the addable candidates against it."""
    _put(e, i, inb, ok, ctc, ckv, nb, tc, kv)
    _recheck(e, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, True)


@_jit
def _members(e, inb):
    """The users in env e's batch, ascending (a new array)."""
    out = np.empty(inb.shape[1], np.int64)
    return out[:_list_members(e, inb, out)]


@_inline
def _any_ok(e, present, ok):
    for k in range(present.shape[1]):
        if present[e, k] and ok[e, k]:
            return True
    return False


@_inline
def _refresh(e, F, sysc, present, inb, ok, nb, tc, kv, mask, obs):
    """The batch-dependent observation entries and the mask after an addition."""
    K = present.shape[1]
    for k in range(K):
        if present[e, k]:
            mask[e, k] = ok[e, k]
            obs[e, k * F + _IN_BATCH] = 1.0 if inb[e, k] else 0.0
            obs[e, k * F + _ADDABLE] = 1.0 if ok[e, k] else 0.0
    g = K * F
    obs[e, g + _MEMORY_LEFT] = min(max(1.0 - kv[e] / sysc[7], 0.0), 1.0)
    obs[e, g + _COMPUTE] = min(tc[e] / sysc[11], 1.0)
    obs[e, g + _BATCH] = nb[e] / K


@_jit
def _fill(e, order, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, tc, kv, recheck):
    """Greedy: add the users of ``order`` that keep the batch feasible, one check of
    batch + user each; with ``recheck``, re-check the other candidates against the final
    batch (what an addition at a time gives: refusals are final, feasible sets being
    down-closed). Without it, ``ok`` is left stale: the slot ends at once and the next
    one starts afresh; only the refusal reasons of ``slot_info`` need it."""
    cols = _cols(e, cand)
    fresh = True  # ctc, ckv and ok of the candidates are for the current batch
    for i in order:
        if not ok[e, i]:
            continue
        if not fresh:
            m = _list_members(e, inb, ws[5])
            if _check_user(e, i, ws[5], m, cols, sysc, ws, code, ctc, ckv) != 0:
                ok[e, i] = False
                continue
        _put(e, i, inb, ok, ctc, ckv, nb, tc, kv)
        fresh = False
    if recheck and not fresh:
        _recheck(e, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, True)


@_jit
def _step_sequential(act, live, F, cand, sysc, present, inb, ok, code, ctc, ckv, nb, tc, kv,
                     steps, mask, obs, invalid, done):
    K = present.shape[1]
    ws = _workspace(K)
    for e in range(act.size):
        if not live[e]:
            continue
        a = act[e]
        steps[e] += 1
        d = False
        if a == K:
            d = True
        elif a < 0 or a > K or not present[e, a] or not ok[e, a]:
            invalid[e] = True
        else:
            _add(e, a, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, tc, kv)
            _refresh(e, F, sysc, present, inb, ok, nb, tc, kv, mask, obs)
            if not _any_ok(e, present, ok):
                d = True
        done[e] = d or steps[e] >= K + 1


@_jit
def _step_subset(act, live, reject, cand, sysc, present, inb, ok, code, ctc, ckv, nb, tc, kv,
                 invalid, repaired, recheck):
    K = present.shape[1]
    ws = _workspace(K)
    for e in range(act.shape[0]):
        if not live[e] or invalid[e]:
            continue
        users = ws[6]
        b = 0
        all_ok = True
        for k in range(K):
            if act[e, k] > 0.5 and present[e, k]:
                users[b] = k
                b += 1
                all_ok = all_ok and ok[e, k]
        if b == 0:
            continue
        users = users[:b]
        if all_ok:
            if b == 1:
                _put(e, users[0], inb, ok, ctc, ckv, nb, tc, kv)
                if recheck:
                    _recheck(e, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, True)
                continue
            res = _check(users, _cols(e, cand), sysc, ws)
            if res[0] == 0:
                for i in users:
                    inb[e, i] = True
                    ok[e, i] = False
                nb[e] = b
                kv[e] = res[3]
                tc[e] = res[4]
                if recheck:
                    _recheck(e, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, True)
                continue
        if reject:
            invalid[e] = True
            continue
        repaired[e] = True
        _fill(e, users, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, tc, kv, recheck)


@_jit
def _step_priority(act, live, cand, sysc, present, inb, ok, code, ctc, ckv, nb, tc, kv,
                   recheck):
    K = present.shape[1]
    ws = _workspace(K)
    for e in range(act.shape[0]):
        if not live[e]:
            continue
        users = np.empty(K, np.int64)
        score = np.empty(K)
        b = 0
        for k in range(K):
            if act[e, k] > 0 and present[e, k]:
                users[b] = k
                score[b] = -act[e, k]
                b += 1
        if b == 0:
            continue
        order = users[:b][np.argsort(score[:b], kind="mergesort")]  # ties: lower id first
        _fill(e, order, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, tc, kv, recheck)


@_jit
def _dispatch(envs, cand, weight, weight_bytes, sysc, present, inb, ok, code, ctc, ckv, nb,
              details):
    """Value and served tokens of each listed env's batch; with ``details``, also evaluate
    it as ``evaluate`` does, count the refusals (against the final batch) by reason and find
    the binding one (0: none). Returns per listed env: value, served tokens, uplink phase,
    compute time, memory bytes, binding code, refusal counts (E, 7)."""
    E, K = envs.size, present.shape[1]
    value = np.zeros(E, np.int64)
    tokens = np.zeros(E, np.int64)
    t_up = np.zeros(E)
    t_c = np.zeros(E)
    mem = np.full(E, weight_bytes)
    binding = np.zeros(E, np.int64)
    refused = np.zeros((E, 7), np.int64)
    ws = _workspace(K)
    output, up_bits, snr = cand[1], cand[4], cand[5]
    for j in range(E):
        e = envs[j]
        if details and nb[e] > 0:  # reasons of the non-addable candidates, final batch
            _recheck(e, cand, sysc, ws, present, inb, ok, code, ctc, ckv, nb, False)
        b = 0
        n_out = 0
        any_ok = False
        for k in range(K):
            if inb[e, k]:
                b += 1
            elif present[e, k]:
                n_out += 1
                refused[j, code[e, k]] += 1
                any_ok = any_ok or ok[e, k]
        if n_out > 0 and not any_ok:
            best = 1
            for c in range(2, 7):
                if refused[j, c] > refused[j, best]:
                    best = c
            binding[j] = best
        if b == 0:
            continue
        v = 0
        n = 0.0
        for k in range(K):
            if inb[e, k]:
                v += weight[e, k]
                n += output[e, k]
        value[j] = v
        tokens[j] = np.int64(n)  # sums of integers: exact in any order
        if not details:
            continue
        arr = _members(e, inb)
        P, L, d, W, kv, C, M, cap, padded, B_U, B_D, slot = sysc
        pe, oe, we, ae, ue, se, de, ee = _cols(e, cand)
        res = check_row(arr, pe, oe, we, ae, ue, se, de, ee, P, L, d, W, kv, C, M, cap, padded,
                        B_U, B_D, slot, ws[1], ws[2], ws[3], ws[4])
        if res[0] != 0:
            raise AssertionError("env built an infeasible batch")
        tcv = res[4]
        t_up[j] = least_uplink_phase(up_bits[e][arr], snr[e][arr], res[5], sysc[9])
        t_c[j] = tcv
        mem[j] = weight_bytes + res[3]
    return value, tokens, t_up, t_c, mem, binding, refused


@_jit
def _end_slots(envs, inb, qdata, qlen, next_id, arrive, prompt, output, deadline, tolerance,
               media, slot_s, tokens, reject_unservable, drop_new, ppl_increase, kv_capacity,
               padded, cost, encoder_rate):
    """The queues' end of slot (serve the batch, age, admit ``arrive``...) for each env."""
    E = envs.size
    drops = np.zeros((E, 3), np.int64)
    weight = np.zeros(E)
    members = np.empty(inb.shape[1], np.int64)
    for j in range(E):
        e = envs[j]
        m = _list_members(e, inb, members)
        d, w, rid = _queue_end_slot(qdata[e], qlen[e], members[:m], arrive[j],
                                    prompt[j], output[j], deadline[j], tolerance[j],
                                    media[j], next_id[e], slot_s, tokens,
                                    reject_unservable, drop_new, ppl_increase, kv_capacity,
                                    padded, cost, encoder_rate)
        for c in range(3):
            drops[j, c] = d[c]
        weight[j] = w
        next_id[e] = rid
    return drops, weight


@_jit
def _heads(envs, qdata):
    """(E K, fields) rows of the head-of-line requests (stale where a queue is empty)."""
    E, K, nf = envs.size, qdata.shape[1], qdata.shape[3]
    out = np.empty((E * K, nf))
    for j in range(E):
        for k in range(K):
            for f in range(nf):
                out[j * K + k, f] = qdata[envs[j], k, 0, f]
    return out


@_jit
def _begin_slots(envs, F, prep, heads, db, norm, cand, weight, ids, sysc, qlen, Q, slot,
                 max_slots, present, inb, ok, code, ctc, ckv, nb, tc, kv, steps, mask, obs,
                 seq):
    """Candidates, singleton checks, mask and observation of a fresh slot for each listed
    env. ``prep``: prepare_arrays' columns in ``cand`` order, then the weights, each (E K,);
    ``db``: the gains' normalized dB (E, 2, K); ``norm``: max prompt, max output, largest
    deadline, bits per token (the observation's scales, as EdgeLLMEnv._begin_slot)."""
    K = present.shape[1]
    media = F > _F
    admissible = cand[3]
    ws = _workspace(K)
    one = ws[0][:1]
    for j in range(envs.size):
        e = envs[j]
        for k in range(K):
            i = j * K + k
            cand[0][e, k] = prep[0][i]
            cand[1][e, k] = prep[1][i]
            cand[2][e, k] = prep[2][i]
            cand[3][e, k] = prep[3][i]
            cand[4][e, k] = prep[4][i]
            cand[5][e, k] = prep[5][i]
            cand[6][e, k] = prep[6][i]
            cand[7][e, k] = prep[7][i]
            weight[e, k] = prep[8][i]
            ids[e, k] = heads[i, ID]
        for k in range(K):
            present[e, k] = qlen[e, k] > 0
            inb[e, k] = False
            ok[e, k] = False
            mask[e, k] = False
        if seq:
            mask[e, K] = True
        nb[e] = 0
        tc[e] = 0.0
        kv[e] = 0.0
        steps[e] = 0
        for k in range(K):
            o = k * F
            for f in range(F):
                obs[e, o + f] = 0.0
            obs[e, o + _UPLINK] = min(max(db[j, 0, k], 0.0), 1.0)
            obs[e, o + _DOWNLINK] = min(max(db[j, 1, k], 0.0), 1.0)
            obs[e, o + _QUEUE] = qlen[e, k] / Q
        g = K * F
        obs[e, g + _MEMORY_LEFT] = 1.0
        obs[e, g + _COMPUTE] = 0.0
        obs[e, g + _SLOT] = min(slot[e] / max_slots, 1.0)
        obs[e, g + _BATCH] = 0.0
        cols = _cols(e, cand)
        for k in range(K):
            if not present[e, k]:
                continue
            one[0] = k
            res = _check(one, cols, sysc, ws)
            i = j * K + k
            code[e, k] = res[0]
            ok[e, k] = res[0] == 0
            ckv[e, k] = res[3]
            ctc[e, k] = res[4]
            mask[e, k] = ok[e, k]
            o = k * F
            obs[e, o + _PRESENT] = 1.0
            obs[e, o + _PROMPT] = min(cand[0][e, k] / norm[0], 1.0)
            obs[e, o + _OUTPUT] = heads[i, OUTPUT_TOKENS] / norm[1]
            obs[e, o + _DEADLINE] = min(heads[i, DEADLINE_S] / norm[2], 1.0)
            obs[e, o + _ADMISSIBLE] = 1.0 if admissible[e, k] else 0.0
            obs[e, o + _ADDABLE] = 1.0 if ok[e, k] else 0.0
            if media:  # the payload columns of the users with a request
                obs[e, o + _UP_BITS] = min(cand[4][e, k] / MEDIA_BITS_SCALE, 1.0)
                down = heads[i, OUTPUT_TOKENS] * norm[3] + heads[i, DOWNLINK_MEDIA_BITS]
                obs[e, o + _DOWN_BITS] = min(down / MEDIA_BITS_SCALE, 1.0)


# ----------------------------------------------------------------------------- the vector env
class EdgeLLMVectorEnv(VectorEnv):
    """N :class:`~edgellm.envs.env.EdgeLLMEnv` stepped as one batch (see the module docstring).

    ``EdgeLLMVectorEnv(num_envs, scenario="default", action_mode="subset", **overrides)``, or
    ``gym.make_vec("edgellm.envs:EdgeLLM-Sequential-v0", num_envs=N, scenario=...)``
    (registered as every id's ``vector_entry_point``). Everything the single env's docstring
    says holds per sub-env; batched spaces; ``info`` is a dict of arrays with ``_key`` masks
    (gymnasium's convention: a key is present for env i when ``info["_key"][i]``).

    **Autoreset** (``metadata["autoreset_mode"]``): ``NEXT_STEP`` (gymnasium's default): the
    step after an env is truncated resets it, ignores its action and returns its reset
    observation, reward 0 and its reset info. ``autoreset_mode="same-step"`` resets it in the
    step that truncates it, returning the first observation of the new episode with
    ``info["final_obs"]`` / ``info["final_info"]`` (what SB3's ``VecEnv`` needs).

    ``slot_info=False`` leaves out of ``info`` what only reports on the dispatched batch
    (``batch``, ``served_ids``, ``t_uplink_s``, ``t_compute_s``, ``memory_bytes``,
    ``binding``, ``refused``) and skips computing it (the exact uplink phase and the refusal
    reasons are a large share of a slot); observations, rewards and the other keys are
    unchanged. Training uses it.

    ``action_masks()`` returns an (N, K + 1) bool array in sequential mode and the single
    env's 2K subset masks as (N, 2K); ``reset(seed=s)`` seeds env i with ``s + i`` (a list
    of N seeds is also accepted). Per-episode scenario options are not supported, nor
    rendering (``render_mode`` must be None: render a single env). Every preset works,
    media scenarios (12 observation columns per user) and trace workloads (``overlength``
    in ``info``) included.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int, scenario: str | ScenarioConfig = "default",
                 action_mode: str = "subset", autoreset_mode: str = "next-step",
                 slot_info: bool = True, **overrides: Any):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise EdgeLLMError(f"num_envs: must be an integer >= 1, got {num_envs!r}")
        if action_mode not in ACTION_MODES:
            raise EdgeLLMError(f"action_mode: must be one of {', '.join(ACTION_MODES)}, "
                               f"got {action_mode!r}")
        modes = {"next-step": AutoresetMode.NEXT_STEP, "same-step": AutoresetMode.SAME_STEP}
        if autoreset_mode not in modes:
            raise EdgeLLMError(f"autoreset_mode: must be 'next-step' or 'same-step', "
                               f"got {autoreset_mode!r}")
        render_mode = overrides.pop("render_mode", None)
        if render_mode is not None:
            raise EdgeLLMError(f"render_mode: EdgeLLMVectorEnv renders nothing, got "
                               f"{render_mode!r} (render a single EdgeLLMEnv instead)")
        overrides.pop("max_episode_steps", None)
        self.metadata = {**self.metadata, "autoreset_mode": modes[autoreset_mode]}
        self.slot_info = bool(slot_info)
        self.config = cfg = get_scenario(scenario, **overrides)
        self.num_envs = N = int(num_envs)
        self.action_mode = action_mode
        self.n_users = K = cfg.n_users
        self.render_mode = None
        # the single env's spaces, batched
        single = EdgeLLMEnv(cfg, action_mode=action_mode)
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = batch_space(self.single_observation_space, N)
        self.action_space = batch_space(self.single_action_space, N)
        self._system = system = single._system
        self._rules_args = tuple(single._rules)  # the arguments of the queues' end of slot
        self._F = single._F  # observation columns per user
        p0 = prepare(system)
        self._sysc = (*p0.cost_constants, p0.kv_capacity, p0.padded, p0.uplink_hz,
                      p0.downlink_hz, p0.slot_s)
        self._weight_bytes = p0.weight_bytes + p0.encoder_bytes
        self._norm = (float(cfg.max_prompt), float(cfg.max_output), float(cfg.deadline_s[1]),
                      float(cfg.bits_per_token))
        self._alloc(N, K, cfg.queue_capacity)
        self._rngs: list[np.random.Generator | None] = [None] * N
        self._traffic = TrafficBatch(cfg, N)
        self._needs_reset = np.ones(N, dtype=bool)   # NEXT_STEP: reset at the next step
        self._started = False

    def _alloc(self, N: int, K: int, Q: int) -> None:
        f = np.zeros
        self._qdata = f((N, K, Q, len(FIELDS)))
        self._qlen = f((N, K), np.int64)
        self._next_id = f(N, np.int64)
        self._slot = f(N, np.int64)
        self._cand = tuple(f((N, K)) for _ in range(3)) + (f((N, K), bool),) + \
            tuple(f((N, K)) for _ in range(4))
        self._weight = f((N, K), np.int64)
        self._ids = f((N, K))
        self._present = f((N, K), bool)
        self._inb = f((N, K), bool)
        self._ok = f((N, K), bool)
        self._code = f((N, K), np.int8)
        self._ctc = f((N, K))
        self._ckv = f((N, K))
        self._nb = f(N, np.int64)
        self._tc = f(N)
        self._kv = f(N)
        self._steps = f(N, np.int64)
        self._mask = f((N, K + (self.action_mode == "sequential")), bool)
        self._obs = f((N, self._F * K + len(GLOBAL_FEATURES)), np.float32)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        if options:
            raise EdgeLLMError("EdgeLLMVectorEnv.reset: options are not supported (create "
                               "the vector env with the scenario overrides instead)")
        N = self.num_envs
        if seed is None:
            seeds = [None] * N
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(N)]
        else:
            seeds = list(seed)
            if len(seeds) != N:
                raise EdgeLLMError(f"reset: seed must be an int or {N} seeds, got {len(seeds)}")
        for i, s in enumerate(seeds):
            if s is not None:
                self._rngs[i], _ = seeding.np_random(int(s))
        envs = np.arange(N)
        drops = self._reset_envs(envs, seeds)
        self._needs_reset[:] = False
        self._started = True
        info = {"slot_done": np.zeros(N, bool), "_slot_done": np.ones(N, bool),
                "action_mask": self._mask.copy(), "_action_mask": np.ones(N, bool),
                "dropped": _cause_dict(drops, np.ones(N, bool)),
                "_dropped": np.ones(N, bool)}
        return self._obs.copy(), info

    def step(self, actions):
        if not self._started:
            raise EdgeLLMError("EdgeLLMVectorEnv.step: call reset() first")
        N = self.num_envs
        same_step = self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        reset_now = self._needs_reset.copy() if not same_step else np.zeros(N, bool)
        live = ~reset_now
        invalid = np.zeros(N, bool)
        repaired = np.zeros(N, bool)
        st = (self._present, self._inb, self._ok, self._code, self._ctc, self._ckv, self._nb,
              self._tc, self._kv)
        mode = self.action_mode
        if mode == "sequential":
            act = self._sequential_actions(actions)
            done = np.zeros(N, bool)
            _step_sequential(act, live, self._F, self._cand, self._sysc, *st, self._steps,
                             self._mask, self._obs, invalid, done)
        else:
            act, bad = self._box_actions(actions)
            invalid |= bad & live
            if mode == "subset":
                _step_subset(act, live, self.config.subset_infeasible == "reject", self._cand,
                             self._sysc, *st, invalid, repaired, self.slot_info)
            else:
                _step_priority(act, live, self._cand, self._sysc, *st, self.slot_info)
            done = live.copy()
        cfg = self.config
        pen = np.where(invalid, cfg.invalid_penalty, 0.0)
        rewards = -pen
        terms = {"served": np.zeros(N), "drops": np.zeros(N), "invalid": -pen}
        info: dict[str, Any] = {
            "slot_done": done & live, "_slot_done": np.ones(N, bool),
            "invalid_action": invalid, "_invalid_action": live.copy(),
            "repaired": repaired, "_repaired": live.copy()}
        d_envs = np.flatnonzero(done & live)
        if d_envs.size:
            self._dispatch_envs(d_envs, invalid, info, terms, rewards)
        info["reward_terms"] = _masked(terms, live)
        info["_reward_terms"] = live.copy()
        truncated = np.zeros(N, bool)
        truncated[d_envs] = self._slot[d_envs] >= cfg.max_slots
        terminated = np.zeros(N, bool)
        r_envs = np.flatnonzero(reset_now)
        if r_envs.size:  # NEXT_STEP: reset those truncated at the previous step
            drops = self._reset_envs(r_envs, [None] * r_envs.size)
            rewards[r_envs] = 0.0
            self._merge_drops(info, r_envs, drops)
        self._needs_reset = truncated | terminated
        info["action_mask"] = self._mask.copy()
        info["_action_mask"] = np.ones(N, bool)
        obs = self._obs.copy()
        if same_step and self._needs_reset.any():
            info = self._reset_same_step(obs, info)
        return obs, rewards, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """(N, K + 1) masks in sequential mode, (N, 2K) in subset mode, (N, K) in priority
        mode: each row is the single env's ``action_masks()``."""
        if self.action_mode == "subset":
            m = np.ones((self.num_envs, self.n_users, 2), dtype=bool)
            m[:, :, 1] = self._mask
            return m.reshape(self.num_envs, -1)
        return self._mask.copy()

    # ------------------------------------------------------------------ actions
    def _sequential_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions).reshape(-1)
        if a.size != self.num_envs:
            raise EdgeLLMError(f"step: expected {self.num_envs} actions, got shape "
                               f"{np.shape(actions)}")
        if a.dtype.kind in "iub":
            return a.astype(np.int64)
        try:
            f = a.astype(float)
        except (TypeError, ValueError):
            return np.full(self.num_envs, -1, np.int64)
        good = np.isfinite(f) & (f == np.floor(f)) & (np.abs(f) < 2 ** 62)
        return np.where(good, f, -1).astype(np.int64)

    def _box_actions(self, actions) -> tuple[np.ndarray, np.ndarray]:
        N, K = self.num_envs, self.n_users
        try:
            a = np.asarray(actions, dtype=float).reshape(N, K)
        except (TypeError, ValueError) as err:
            raise EdgeLLMError(f"step: expected actions of shape ({N}, {K}), got "
                               f"{np.shape(actions)}") from err
        finite = np.isfinite(a)
        bad = ~finite.all(axis=1)
        if self.action_mode == "priority":
            a = np.where(finite, a, -1.0)
        else:
            a = np.where(finite, a, 0.0)
        return np.ascontiguousarray(a), bad

    # ------------------------------------------------------------------ slot mechanics
    def _dispatch_envs(self, envs: np.ndarray, invalid: np.ndarray, info: dict, terms: dict,
                       rewards: np.ndarray) -> None:
        cfg, N = self.config, self.num_envs
        value, tokens, t_up, t_c, mem, binding, refused = _dispatch(
            envs, self._cand, self._weight, self._weight_bytes, self._sysc, self._present,
            self._inb, self._ok, self._code, self._ctc, self._ckv, self._nb, self.slot_info)
        served = self._nb[envs].copy()
        batches = np.empty(envs.size, dtype=object)
        ids = np.empty(envs.size, dtype=object)
        if self.slot_info:
            users = np.argsort(~self._inb[envs], axis=1, kind="stable")  # batch users first
            req = np.take_along_axis(self._ids[envs], users, axis=1).astype(np.int64)
            for j, (b, u, r) in enumerate(zip(served.tolist(), users.tolist(), req.tolist())):
                batches[j], ids[j] = tuple(u[:b]), tuple(r[:b])
        slot = self._slot[envs].copy()
        self._slot[envs] += 1
        drops, dropped_w, overlength = self._end_and_begin(envs)
        has = np.zeros(N, bool)
        has[envs] = True
        terms["served"][envs] = value
        terms["drops"][envs] = -cfg.drop_penalty * dropped_w
        terms["invalid"][envs] = np.where(invalid[envs], -cfg.invalid_penalty, 0.0)
        rewards[envs] = terms["served"][envs] + terms["drops"][envs] + terms["invalid"][envs]
        items = [("slot", slot, np.int64), ("value", value, np.int64),
                 ("served", served, np.int64), ("served_tokens", tokens, np.int64),
                 ("overlength", overlength, np.int64)]
        if self.slot_info:
            items += [("batch", batches, object), ("served_ids", ids, object),
                      ("t_uplink_s", t_up, float), ("t_compute_s", t_c, float),
                      ("memory_bytes", mem, float)]
        for key, v, dtype in items:
            arr = np.zeros(N, dtype) if dtype is not object else np.full(N, None, object)
            arr[envs] = v
            info[key], info[f"_{key}"] = arr, has
        self._merge_drops(info, envs, drops)
        if not self.slot_info:
            return
        bind = np.full(N, None, object)
        names = (None,) + _REASON_NAMES
        for j, e in enumerate(envs.tolist()):
            bind[e] = names[binding[j]]
        info["binding"], info["_binding"] = bind, has
        ref: dict[str, np.ndarray] = {}
        for c, name in enumerate(_REASON_NAMES, start=1):
            present = refused[:, c] > 0
            if present.any():
                arr = np.zeros(N, np.int64)
                arr[envs] = refused[:, c]
                m = np.zeros(N, bool)
                m[envs[present]] = True
                ref[name], ref[f"_{name}"] = arr, m
        info["refused"], info["_refused"] = ref, has

    @staticmethod
    def _merge_drops(info: dict, envs: np.ndarray, drops: np.ndarray) -> None:
        N = info["_slot_done"].size
        old = info.get("dropped")
        if old is None:
            mask = np.zeros(N, bool)
            mask[envs] = True
            info["dropped"] = _cause_dict(np.zeros((N, 3), np.int64), mask)
            info["_dropped"] = mask
        for c, name in enumerate(DROP_CAUSES):
            info["dropped"][name][envs] = drops[:, c]
            info["dropped"][f"_{name}"][envs] = True
        info["_dropped"][envs] = True

    def _end_and_begin(self, envs: np.ndarray, first: bool = False):
        """End the slot of each env in ``envs`` (serve its batch, draw and admit the next
        arrivals) and begin the next one. Returns the drops (E, 3), their weights (E,) and
        the overlength arrivals (E,)."""
        arrive, prompt, output, deadline, tol, gains, media, overlength = \
            self._traffic.draw(envs, first)
        drops, weight = _end_slots(envs, self._inb, self._qdata, self._qlen, self._next_id,
                                   arrive, prompt, output, deadline, tol, media,
                                   *self._rules_args)
        self._begin(envs, gains)
        return drops, weight, overlength

    def _begin(self, envs: np.ndarray, gains: np.ndarray) -> None:
        cfg, K, E = self.config, self.n_users, envs.size
        heads = _heads(envs, self._qdata)
        media = (heads[:, MEDIA_TOKENS + c] for c in range(len(FIELDS) - MEDIA_TOKENS)) \
            if cfg.has_media else ()
        p = prepare_arrays(self._system, heads[:, PROMPT_TOKENS], heads[:, OUTPUT_TOKENS],
                           heads[:, DEADLINE_S], heads[:, PPL_TOLERANCE], gains[:, 0].ravel(),
                           gains[:, 1].ravel(), np.full(E * K, cfg.tx_power_w), *media)
        prep = (p.prefill_tokens, p.output_tokens, p.window, p.admissible, p.up_bits,
                p.snr_hz, p.down_c, p.enc_s, p.weight)
        # the single env's gain normalization (EdgeLLMEnv._begin_slot), NumPy's log10
        db = (10.0 * np.log10(gains) - GAIN_DB_LO) / GAIN_DB_SPAN
        _begin_slots(envs, self._F, prep, heads, db, self._norm, self._cand, self._weight,
                     self._ids, self._sysc, self._qlen, cfg.queue_capacity, self._slot,
                     cfg.max_slots, self._present, self._inb, self._ok, self._code,
                     self._ctc, self._ckv, self._nb, self._tc, self._kv, self._steps,
                     self._mask, self._obs, self.action_mode == "sequential")

    def _reset_envs(self, envs: np.ndarray, seeds: list) -> np.ndarray:
        """Start a new episode in each env of ``envs`` (seed ``seeds[j]``, or one drawn from
        the env's generator as the single env does). Returns the drops of the first slot."""
        for e, s in zip(envs.tolist(), seeds):
            if s is None:
                if self._rngs[e] is None:
                    self._rngs[e], _ = seeding.np_random()
                s = int(self._rngs[e].integers(2 ** 63))
            self._traffic.seed(e, np.random.SeedSequence(s))
        self._qlen[envs] = 0
        self._next_id[envs] = 0
        self._slot[envs] = 0
        self._inb[envs] = False
        drops, _, _ = self._end_and_begin(envs, first=True)
        return drops

    def _reset_same_step(self, obs: np.ndarray, info: dict) -> dict:
        """SAME_STEP: reset the envs that just ended; ``obs`` gets their first observation."""
        done = self._needs_reset.copy()
        envs = np.flatnonzero(done)
        final_obs = np.full(self.num_envs, None, object)
        for e in envs.tolist():
            final_obs[e] = obs[e].copy()
        self._reset_envs(envs, [None] * envs.size)
        self._needs_reset[:] = False
        obs[envs] = self._obs[envs]
        new = {**info, "final_obs": final_obs, "_final_obs": done,
               "final_info": info, "_final_info": done, "action_mask": self._mask.copy()}
        return new


def _cause_dict(drops: np.ndarray, mask: np.ndarray) -> dict:
    out: dict[str, np.ndarray] = {}
    for c, name in enumerate(DROP_CAUSES):
        out[name] = drops[:, c].copy()
        out[f"_{name}"] = mask.copy()
    return out


def _masked(terms: dict, mask: np.ndarray) -> dict:
    out: dict[str, np.ndarray] = {}
    for k, v in terms.items():
        out[k] = np.where(mask, v, 0.0)
        out[f"_{k}"] = mask.copy()
    return out
