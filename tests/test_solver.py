"""DFTSP is exact: it agrees with brute force, returns feasible batches, and is deterministic.
Feasible batches are down-closed (SPEC 2.4), which is what makes its pruning exact."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgellm.dftsp import solve
from edgellm.system import check_rows, evaluate, prepare
from edgellm.system.feasibility import OK, REASONS
from edgellm.system.generate import FAMILIES, family_instance, random_instance
from edgellm.system.instance import InstanceError

SYSTEMS = (("llama-2-7b", "w4a16", "rtx-4090"), ("llama-3-8b", "w8a8", "l4"),
           ("mistral-7b", "fp16", "jetson-agx-orin-64gb"), ("opt-6.7b", "w4a16", "l4"),
           ("bloom-7b1", "fp16", "a100-40gb-pcie"), ("llama-2-13b", "w8a8", "a100-40gb-pcie"),
           ("llama-2-13b", "w8a8", "l4"), ("llama-2-7b", "fp16", "rtx-4090"))
DEADLINES = ((0.5, 4.0), (0.5, 30.0), (10.0, 30.0))
RADIOS = ({}, {"uplink_hz": 2e4}, {"downlink_hz": 2e3}, {"uplink_hz": 1e4, "downlink_hz": 1e4})


def diverse_instance(rng: np.random.Generator, K: int, kv_cache: str, objective: str):
    model, quant, device = SYSTEMS[rng.integers(len(SYSTEMS))]
    return random_instance(rng, K, model=model, quant=quant, device=device, kv_cache=kv_cache,
                           objective=objective, radio=RADIOS[rng.integers(len(RADIOS))],
                           slot_s=float(rng.choice([2.0, 5.0, 30.0])),
                           deadline_s=DEADLINES[rng.integers(len(DEADLINES))],
                           trace=str(rng.choice(["sharegpt", "azure-conversation-2023"])),
                           distance_m=(20.0, float(rng.choice([300.0, 2000.0]))),
                           max_prompt=int(rng.choice([512, 8192])))


def test_dftsp_equals_bruteforce_on_600_random_instances():
    rng = np.random.default_rng(2024)
    reasons, sizes = Counter(), Counter()
    for t in range(600):
        kv_cache = ("padded", "exact")[t % 2]
        objective = ("requests", "tokens")[(t // 2) % 2]
        K = int(rng.integers(1, 13))
        inst = diverse_instance(rng, K, kv_cache, objective)
        d, b = solve(inst, "dftsp"), solve(inst, "bruteforce")
        assert d.value == b.value, (t, d.batch, b.batch)
        assert d.evaluation.feasible and d.evaluation.value == d.value
        assert evaluate(inst, d.batch).feasible
        assert d.nodes <= b.nodes == 2 ** K
        sizes[len(d.batch)] += 1
        p = prepare(inst)
        rest = [j for j in range(K) if j not in d.batch]
        if rest:
            rc = check_rows(p, np.array([list(d.batch) + [j] for j in rest]))
            reasons.update(REASONS[c] for c in rc.code if c != OK)
    # the instances exercise every constraint and batches of many sizes
    assert set(reasons) == set(REASONS.values()), reasons
    assert len(sizes) >= 6


def test_dftsp_equals_bruteforce_on_every_family():
    """Instance families of the benchmark: every objective, KV mode and slot range
    (3-30 s), systems drawn from the whole catalog."""
    for t in range(360):
        fam = FAMILIES[t % len(FAMILIES)]
        rng = np.random.default_rng([14, t])
        inst = family_instance(rng, int(rng.integers(1, 13)), *fam)
        d, b = solve(inst, "dftsp"), solve(inst, "bruteforce")
        assert d.value == b.value, (t, fam, d.batch, b.batch)
        assert d.status == "optimal" and d.upper_bound == d.value and d.gap == 0.0
        assert d.evaluation.feasible and d.evaluation.value == d.value


def test_limits_return_incumbent_with_valid_upper_bound():
    """Stopped after a few checks, the search returns a feasible batch and an upper bound
    that is at least the optimum; given enough, it proves the optimum."""
    stopped = 0
    for t in range(120):
        fam = FAMILIES[t % len(FAMILIES)]
        rng = np.random.default_rng([41, t])
        p = prepare(family_instance(rng, int(rng.integers(6, 13)), *fam))
        opt = solve(p, "bruteforce").value
        for limit in (1, 4, 16):
            s = solve(p, node_limit=limit)
            assert s.evaluation.feasible and s.evaluation.value == s.value <= opt
            assert s.upper_bound >= opt, (t, limit)
            assert s.gap == pytest.approx((s.upper_bound - s.value) / s.upper_bound
                                          if s.upper_bound else 0.0)
            if s.status == "optimal":
                assert s.value == opt == s.upper_bound
            else:
                assert s.status == "time_limit"
                stopped += 1
        full = solve(p, node_limit=10 ** 9)
        assert full.status == "optimal" and full.value == opt
    assert stopped > 50


def test_time_limit_stops_a_large_search():
    p = prepare(family_instance(np.random.default_rng([64, 1, 0]), 64, *FAMILIES[0]))
    assert solve(p).status == "optimal"  # about 2 ms once compiled
    s = solve(p, time_limit=1e-6)  # compilation (first solve of the process) is not counted
    assert s.status == "time_limit" and s.wall_s < 1.0
    assert s.upper_bound > s.value and 0 < s.gap < 1 and s.evaluation.feasible
    b = solve(p, "bruteforce", time_limit=0.01)
    assert b.status == "time_limit" and b.upper_bound >= b.value


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1"])
def test_bad_time_limit(bad):
    with pytest.raises(InstanceError, match="time_limit: must be a finite number > 0"):
        solve(random_instance(np.random.default_rng(0), 3), time_limit=bad)


def test_no_feasible_request_gives_empty_batch(tiny):
    from conftest import tiny_request

    inst = tiny([tiny_request(ppl_tolerance=0.0), tiny_request(deadline_s=1.0)])
    for method in ("dftsp", "bruteforce"):
        sol = solve(inst, method)
        assert sol.batch == () and sol.value == 0 and sol.evaluation.feasible


def test_hand_instance_optimum(tiny):
    """Five identical requests; memory holds 4 padded sequences of 7 tokens... by hand:
    capacity 8900 B / (7 * 16 B) = 79 sequences, so memory does not bind; the deadline
    does: T_C(b) must stay below 20 s."""
    from conftest import tiny_request

    inst = tiny([tiny_request(deadline_s=20.0) for _ in range(5)])
    sol = solve(inst)
    tc = [evaluate(inst, list(range(b))).t_compute_s for b in range(1, 6)]
    best = max(b for b in range(1, 6) if tc[b - 1] < 20.0)
    assert sol.value == best == solve(inst, "bruteforce").value


def test_deterministic():
    inst = random_instance(np.random.default_rng(7), 24)
    a, b = solve(inst), solve(inst)
    assert (a.batch, a.value, a.nodes) == (b.batch, b.value, b.nodes)


def test_unknown_method():
    with pytest.raises(ValueError, match="method: must be one of dftsp, bruteforce"):
        solve(random_instance(np.random.default_rng(0), 2), "greedy")


def test_pruning_beats_source_paper_claim():
    """The paper claims >45% fewer nodes than brute force; we require far more at K=12."""
    rng = np.random.default_rng(99)
    ratios = [solve(random_instance(rng, 12)).nodes / 2 ** 12 for _ in range(20)]
    assert np.median(ratios) < 0.1


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(2, 9), mask=st.integers(0, 2**9 - 1),
       kv=st.sampled_from(["padded", "exact"]))
def test_feasible_batches_are_down_closed(seed, K, mask, kv):
    """Adding a request to an infeasible batch never makes it feasible, and removing one
    from a feasible batch never makes it infeasible."""
    rng = np.random.default_rng(seed)
    p = prepare(diverse_instance(rng, K, kv, "requests"))
    batch = [k for k in range(K) if mask >> k & 1] or [0]
    ok = check_rows(p, np.array([batch])).code[0] == OK
    others = [j for j in range(K) if j not in batch]
    if not ok and others:
        sup = check_rows(p, np.array([batch + [j] for j in others])).code
        assert np.all(sup != OK)
    if ok and len(batch) > 1:
        subs = np.array([list(c) for c in itertools.combinations(batch, len(batch) - 1)])
        assert np.all(check_rows(p, subs).code == OK)


@pytest.mark.slow
def test_dftsp_equals_bruteforce_on_larger_family_instances():
    """K = 13..16 over every family."""
    for t in range(48):
        fam = FAMILIES[t % len(FAMILIES)]
        rng = np.random.default_rng([16, t])
        inst = family_instance(rng, int(rng.integers(13, 17)), *fam)
        d, b = solve(inst, "dftsp"), solve(inst, "bruteforce")
        assert d.value == b.value, (t, fam, d.batch, b.batch)


@pytest.mark.slow
def test_dftsp_equals_bruteforce_on_larger_instances():
    """K = 13..16 (up to 65536 subsets each): exactness where the pruning works hardest."""
    rng = np.random.default_rng(77)
    for t in range(80):
        K = int(rng.integers(13, 17))
        inst = diverse_instance(rng, K, ("padded", "exact")[t % 2],
                                ("requests", "tokens")[(t // 2) % 2])
        d, b = solve(inst, "dftsp"), solve(inst, "bruteforce")
        assert d.value == b.value, (t, d.batch, b.batch)
        assert d.nodes < b.nodes


def test_linear_relaxation_bounds_the_optimum():
    """The HiGHS relaxation (dftsp.relax) is an upper bound on every family."""
    from edgellm.dftsp.relax import relaxation_bound

    tight = 0
    for t in range(48):
        rng = np.random.default_rng([7, t])
        p = prepare(family_instance(rng, int(rng.integers(1, 11)), *FAMILIES[t % 12]))
        opt = solve(p, "bruteforce").value
        bound, _, solved = relaxation_bound(p)
        assert solved and bound >= opt - 1e-6, (t, bound, opt)
        tight += abs(bound - opt) < 1e-6
    assert 0 < tight < 48  # sometimes exact, not always


@pytest.fixture
def boxes_always(monkeypatch):
    """Search box by box whatever the number of candidates (normally above 16 only), and
    offer every box to the Lagrangian closing test from the start (normally after
    ``CLOSE_AFTER`` full checks only)."""
    from edgellm.dftsp import solver

    monkeypatch.setattr(solver, "BOX_MIN", 0)
    monkeypatch.setattr(solver, "CLOSE_AFTER", -1.0)


def test_box_search_equals_bruteforce_on_every_family(boxes_always):
    for t in range(480):
        fam = FAMILIES[t % len(FAMILIES)]
        rng = np.random.default_rng([15, t])
        inst = (family_instance(rng, int(rng.integers(1, 14)), *fam) if t % 2 else
                diverse_instance(rng, int(rng.integers(1, 14)), fam[1], fam[0]))
        d, b = solve(inst, "dftsp"), solve(inst, "bruteforce")
        assert d.value == b.value, (t, fam, d.batch, b.batch)
        assert d.status == "optimal" and d.upper_bound == d.value
        assert d.evaluation.feasible and d.evaluation.value == d.value


@pytest.mark.parametrize("boxes", [False, True])
def test_start_batch_keeps_the_optimum(boxes, monkeypatch):
    """A feasible first incumbent (the optimum, a sub-batch of it, a random feasible
    batch) changes neither the optimal value nor the validity of a limited search's
    bounds; an infeasible one is refused by name."""
    from edgellm.dftsp import solver

    if boxes:
        monkeypatch.setattr(solver, "BOX_MIN", 0)
        monkeypatch.setattr(solver, "CLOSE_AFTER", -1.0)
    rng = np.random.default_rng(77)
    refused = 0
    for t in range(120):
        fam = FAMILIES[t % len(FAMILIES)]
        p = prepare(family_instance(np.random.default_rng([17, t]), int(rng.integers(2, 14)),
                                    *fam))
        b = solve(p, "bruteforce")
        sub = [j for j in b.batch if rng.random() < 0.5]
        other = [j for j in rng.permutation(p.n) if evaluate(p, [j]).feasible][:2]
        for first in (b.batch, sub, other if evaluate(p, other).feasible else ()):
            d = solve(p, start=first)
            assert d.value == b.value and d.status == "optimal", (t, first)
            assert d.evaluation.feasible and d.evaluation.value == d.value
            s = solve(p, node_limit=2, start=first)
            assert evaluate(p, first).value <= s.value <= b.value <= s.upper_bound
        if len(b.batch) < p.n:
            bad = list(b.batch) + [j for j in range(p.n) if j not in b.batch][:1]
            if not evaluate(p, bad).feasible:
                with pytest.raises(ValueError, match="start: batch"):
                    solve(p, start=bad)
                refused += 1
    assert refused > 10


@pytest.mark.parametrize("close_after", [math.inf, -1.0])
def test_box_search_limits_give_valid_upper_bounds(boxes_always, monkeypatch, close_after):
    from edgellm.dftsp import solver

    monkeypatch.setattr(solver, "CLOSE_AFTER", close_after)
    stopped = 0
    for t in range(96):
        fam = FAMILIES[t % len(FAMILIES)]
        p = prepare(family_instance(np.random.default_rng([16, t]), 12, *fam))
        opt = solve(p, "bruteforce").value
        for limit in (1, 2, 4, 16, 64):
            s = solve(p, node_limit=limit)
            assert s.evaluation.feasible and s.value <= opt <= s.upper_bound, (t, limit)
            assert s.evaluation.value == s.value
            stopped += s.status == "time_limit"
            if s.status == "optimal":
                assert s.value == opt == s.upper_bound
    # the Lagrangian closing test proves more of them optimal within the node limits
    assert stopped > (10 if close_after == math.inf else 3)


def test_limited_box_search_bounds_the_optimum_at_larger_k(monkeypatch):
    """At 48 candidates (box search, ranges of boxes, Lagrangian box bounds from the
    first check on, or from CLOSE_AFTER), every node-limited solve returns a feasible
    incumbent and an upper bound at least the optimum, the same on every run. The
    optimum comes from the plain tree (no boxes, no ranges), and the box search agrees."""
    from edgellm.dftsp import solver

    for t in range(24):
        fam = FAMILIES[t % len(FAMILIES)]
        p = prepare(family_instance(np.random.default_rng([18, t]), 48, *fam))
        with monkeypatch.context() as m:
            m.setattr(solver, "BOX_MIN", 10**9)
            opt = solve(p).value
        assert solve(p).value == opt
        for close_after in (-1.0, solver.CLOSE_AFTER):
            for limit in (1, 30, 300):
                old = solver.CLOSE_AFTER
                solver.CLOSE_AFTER = close_after
                try:
                    s, again = solve(p, node_limit=limit), solve(p, node_limit=limit)
                finally:
                    solver.CLOSE_AFTER = old
                assert s.evaluation.feasible and s.evaluation.value == s.value
                assert s.value <= opt <= s.upper_bound, (t, close_after, limit)
                assert (s.batch, s.upper_bound) == (again.batch, again.upper_bound)


def test_box_bound_never_below_the_box_optimum():
    """For every box (longest prompt S*, longest output N*) of every feasible batch, the
    box bound is at least the best value of the batches with exactly that box."""
    from edgellm.dftsp import _search
    from edgellm.dftsp.solver import _unit, search_arrays

    tight = closed = lagrange_tight = 0
    for t in range(48):
        fam = FAMILIES[t % len(FAMILIES)]
        p = prepare(family_instance(np.random.default_rng([17, t]), 10, *fam))
        best: dict = {}
        for b in range(1, p.n + 1):
            rows = np.array(list(itertools.combinations(range(p.n), b)))
            ok = check_rows(p, rows).code == OK
            for r in rows[ok]:
                key = (p.prefill_tokens[r].max(), p.output_tokens[r].max())
                best[key] = max(best.get(key, 0), int(p.weight[r].sum()))
        a = search_arrays(p)
        for (S, N), v in best.items():
            E = np.flatnonzero((p.prefill_tokens <= S) & (p.output_tokens <= N))
            u = _search.box_bound(S, N, E, E.size, _unit(p), -1, p.weight, *a[:3], *a[5:8],
                                  *a[9:20])
            assert u >= v, (t, S, N, u, v)
            tight += u == v
            # the Lagrangian bound is never below the box optimum, from any count and
            # any floor, and often proves the box closed at its optimum
            cols = (p.window[E], (p.prefill_tokens + p.output_tokens)[E], p.down_c[E],
                    p.up_bits[E], p.snr_hz[E], p.weight[E])
            for k0 in (1, 3, 10):
                for floor in (-1, v - 1):
                    lag = _search.box_lagrange(S, N, E.size, floor, 1 << 40, *cols,
                                               *a[9:20], math.inf, k0)
                    assert lag >= v, (t, S, N, v, k0, floor, lag)
                    lagrange_tight += lag == v
                closed += _search.box_lagrange(S, N, E.size, v, v + 1, *cols, *a[9:20],
                                               math.inf, k0) <= v
    assert tight > 0 and closed > 0 and lagrange_tight > 0


def test_oracle_callers_stop_at_a_node_budget():
    """The oracle policies solve each slot under ORACLE_NODE_LIMIT full checks by default
    (or their own limits: the same batch on every machine), and count the slots they
    could not prove optimal."""
    import math
    from types import SimpleNamespace

    from edgellm.agents.foresight import UrgentOraclePolicy
    from edgellm.agents.oracle import OraclePolicy

    p = prepare(family_instance(np.random.default_rng([64, 1, 0]), 64, *FAMILIES[0]))
    view = SimpleNamespace(users=list(range(100, 100 + p.n)), prepared=p)
    exact = OraclePolicy()
    served = exact.select(view)
    assert exact.last.status == "optimal" and exact.unproven == 0
    assert served == tuple(100 + i for i in exact.last.batch)
    unlimited = OraclePolicy(node_limit=None, time_limit=math.inf)
    assert unlimited.select(view) == served and unlimited.last.status == "optimal"
    rushed = [OraclePolicy(node_limit=3) for _ in range(2)]
    picks = [r.select(view) for r in rushed]
    assert picks[0] == picks[1]  # a node budget, unlike a clock, is deterministic
    assert rushed[0].last.status == "time_limit" and rushed[0].unproven == 1
    assert rushed[0].last.value <= exact.last.value <= rushed[0].last.upper_bound
    urgent = UrgentOraclePolicy(node_limit=3)
    urgent.select(view)
    assert urgent.unproven == 1 and urgent.last.status == "time_limit"


def test_search_compiles_once_for_every_caller():
    """An env slot's column views and a random instance's arrays reach the compiled
    search with the same types: one compiled version, so no caller compiles inside its
    time limit after the first solve."""
    from edgellm.dftsp import _search
    from edgellm.envs import EdgeLLMEnv

    solve(random_instance(np.random.default_rng(0), 20))
    compiled = [len(f.signatures) for f in (_search.search, _search.greedy, _search.box_search)]
    env = EdgeLLMEnv("default")
    env.reset(seed=0)
    view = env.unwrapped.slot_view()
    assert view.users
    assert solve(view.prepared).status == "optimal"
    assert compiled == [len(f.signatures)
                        for f in (_search.search, _search.greedy, _search.box_search)]
