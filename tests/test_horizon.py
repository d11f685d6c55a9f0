"""Hindsight bounds (SPEC section 7): validity against the exact optimum on tiny episodes,
replay of the lower bound's schedule, no policy above the upper bound, CLI errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgellm.agents import HEURISTICS, make_policy
from edgellm.cli import main
from edgellm.envs import SCENARIOS, get_scenario
from edgellm.horizon.bound import bound, make_env, replay
from edgellm.horizon.exact import exact_optimum
from edgellm.horizon.relax import items_of
from edgellm.horizon.trace import episode_trace

TEXT_SCENARIOS = [s for s in SCENARIOS if not get_scenario(s).has_media]
MEDIA_SCENARIOS = [s for s in SCENARIOS if get_scenario(s).has_media]


def tiny_case(i: int, scenarios=TEXT_SCENARIOS) -> tuple[str, int, int, dict]:
    """Random tiny episode i: preset, seed, H, overrides (K <= 4, H <= 8), varying the
    objective, KV mode, queue capacity, overflow rule and load so that FIFO order and
    overflow matter."""
    rng = np.random.default_rng(1000 + i)
    scenario = scenarios[i % len(scenarios)]
    over = dict(n_users=int(rng.integers(2, 5)), queue_capacity=int(rng.integers(1, 4)),
                overflow=str(rng.choice(["drop_new", "drop_oldest"])),
                objective=str(rng.choice(["requests", "tokens"])),
                kv_cache=str(rng.choice(["padded", "exact"])),
                arrival_rate=float(rng.uniform(0.4, 1.0)))
    return scenario, int(rng.integers(0, 10_000)), int(rng.integers(3, 9)), over


def check_case(i: int, node_cap=None, scenarios=TEXT_SCENARIOS) -> tuple[float, float, float]:
    scenario, seed, H, over = tiny_case(i, scenarios)
    kw = {} if node_cap is None else {"node_cap": node_cap}
    res = bound(scenario, seed, H, over, time_limit=30, **kw)
    exact = exact_optimum(make_env(scenario, H, over), seed)
    assert res.lower_bound <= exact <= res.upper_bound, (i, res.lower_bound, exact,
                                                         res.upper_bound)
    return res.lower_bound, exact, res.upper_bound


@pytest.mark.parametrize("i", range(12))
def test_bounds_bracket_exact_optimum(i):
    check_case(i)


@pytest.mark.parametrize("i", range(12, 18))
def test_linear_relaxation_bounds_exact_optimum(i):
    check_case(i, node_cap=0)  # every slot by its linear necessary conditions


@pytest.mark.parametrize("i", range(6))
def test_bounds_bracket_exact_optimum_with_media(i):
    """Photos and speech (uplink and downlink media bits, media prefill tokens, encoder
    time): the replayed schedule and the MILP bound still bracket the exact optimum, with
    exact maximal batches and with linear rows only."""
    assert MEDIA_SCENARIOS
    check_case(i, scenarios=MEDIA_SCENARIOS)
    check_case(i, node_cap=0, scenarios=MEDIA_SCENARIOS)


@pytest.mark.slow
def test_bounds_bracket_exact_optimum_200_cases():
    for i in range(200):
        check_case(i)
        check_case(i, node_cap=0)
    for i in range(50):
        check_case(i, scenarios=MEDIA_SCENARIOS)


def test_schedule_replays_to_lower_bound():
    res = bound("default", 3, 12, {"n_users": 6}, time_limit=30)
    env = make_env("default", 12, {"n_users": 6})
    value, batches = replay(env, 3, lambda e, t: res.schedule[t])
    assert value == res.lower_bound
    assert batches == res.schedule
    assert res.lower_bound >= res.policies["oracle"]
    assert res.lower_bound <= res.upper_bound
    assert res.gap == pytest.approx((res.upper_bound - res.lower_bound) / res.upper_bound)


def _policy_value(name: str, scenario: str, seed: int, H: int, over: dict) -> float:
    pol = make_policy(name)
    pol.reset(seed)
    return replay(make_env(scenario, H, over), seed, lambda e, t: pol.select(e.slot_view()))[0]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_policy_exceeds_upper_bound(scenario):
    H, over = 8, {"n_users": 8}
    for seed in (11, 12):
        res = bound(scenario, seed, H, over, time_limit=30)
        for name in ("oracle", "oracle-urgent", *HEURISTICS):
            assert _policy_value(name, scenario, seed, H, over) <= res.upper_bound, name


@pytest.mark.parametrize("argv, needle", [
    (["--scenario", "nope"], "unknown scenario 'nope'"),
    (["--slots", "0"], "--slots: must be an integer >= 1"),
    (["--slots", "3", "--set", "no_such_key=1"], "scenario.no_such_key: unknown field"),
    (["--slots", "3", "--time-limit", "-1"], "--time-limit: must be > 0"),
])
def test_bound_cli_bad_arguments(capsys, argv, needle):
    assert main(["bound", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_bound_cli_json(capsys):
    assert main(["bound", "--slots", "5", "--set", "n_users=4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("upper_bound", "lower_bound", "gap", "status", "method", "wall_s"):
        assert key in d
    assert d["lower_bound"] <= d["upper_bound"]


def test_eval_bound_column(tmp_path):
    from edgellm.eval.report import format_table
    from edgellm.eval.runner import EvalSpec, run_eval

    spec = EvalSpec(scenario="bursty", policies=("oracle", "oracle-urgent", "edf"), episodes=2,
                    slots=6, overrides={"n_users": 5}, regret=False, bound=True,
                    bound_time_limit=20)
    summary = run_eval(spec, tmp_path, progress=False, plots=False)
    b = summary["bounds"]
    assert b["lower_bound"] <= b["upper_bound"]
    for row in summary["policies"]:
        assert 0 <= row["ratio_to_bound"] <= 1
    assert "x bound" in format_table(summary)
    assert (tmp_path / "bounds.json").exists()


def test_scenario_stats_horizon_table(capsys):
    assert main(["scenario", "stats", "planning", "--slots", "3", "--bound-slots", "4",
                 "--bound-seeds", "1", "--bound-time-limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "best/oracle" in out and "hindsight over 4 slots" in out


@pytest.mark.parametrize("scenario", ["default", "text-only", "thin-slice"])
def test_trace_is_the_envs_requests_and_cost_model(scenario):
    """Every request at the head of a queue in a replayed episode is in the trace, inside
    its window, and the trace's cost-model arrays of it at that slot are the env's own bit
    for bit: prefill (text + media tokens), uplink bits (prompt + photo or speech), downlink
    demand (answer + speech), encoder seconds, window, SNR."""
    H, over, seed = 12, {"n_users": 6}, 5
    env = make_env(scenario, H, over)
    trace = episode_trace(env, seed, H)
    index = {int(r): i for i, r in enumerate(trace.rid)}
    pol = make_policy("oracle")
    seen = 0

    def choose(e, t):
        nonlocal seen
        view = e.slot_view()
        if not view.users:
            return ()
        r = np.array([index[i] for i in view.request_ids])
        assert np.all((trace.arrival[r] <= t) & (t <= trace.last[r]))
        mine, env_p = trace.prepared(r, np.full(r.size, t)), view.prepared
        for name in ("prefill_tokens", "output_tokens", "up_bits", "down_c", "enc_s", "window",
                     "snr_hz"):
            assert np.array_equal(getattr(mine, name), getattr(env_p, name)), name
        seen += r.size
        return pol.select(view)

    replay(env, seed, choose)
    assert seen > 0
    media = trace.media
    if get_scenario(scenario).has_media:  # photos up, spoken answers down, images encoded
        assert (media[:, 1] > 0).any() and (media[:, 2] > 0).any() and (media[:, 3] > 0).any()
    else:
        assert not media.any()


def test_media_items_carry_the_media_payloads():
    """At its arrival slot an item's KV tokens are text prompt + media tokens + output, its
    uplink bits s * bits_per_token + media bits; against the same requests without media,
    spoken answers need more downlink, photos and spoken questions more uplink, photos more
    prefill and encoder time."""
    env = make_env("default", 6, {"n_users": 6})
    trace = episode_trace(env, 1, 6)
    items = items_of(trace)
    r = items.req
    assert np.array_equal(items.mem, trace.prompt[r] + trace.media[r, 0] + trace.output[r])
    first = trace.arrival[r] == items.slot
    p = trace.prepared(r[first], items.slot[first])
    bits = env._system.radio.bits_per_token
    assert np.array_equal(p.up_bits, trace.prompt[r[first]] * bits + trace.media[r[first], 1])
    trace_text = dataclasses.replace(trace, media=np.zeros_like(trace.media))
    q = trace_text.prepared(r[first], items.slot[first])
    spoken = trace.media[r[first], 2] > 0     # speech answers
    sent = trace.media[r[first], 1] > 0       # photos and spoken questions
    image = trace.media[r[first], 3] > 0      # photos through the vision encoder
    assert spoken.any() and sent.any() and image.any()
    assert np.all(p.down_c[spoken] > q.down_c[spoken])
    assert np.all(p.up_bits[sent] > q.up_bits[sent])
    assert np.all(p.enc_s[image] > 0) and not q.enc_s.any()
    assert np.all(p.prefill_tokens[image] > q.prefill_tokens[image])
