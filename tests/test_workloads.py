"""The one workload generator: distributions, and its use by the env and the random instances."""

from __future__ import annotations

import numpy as np
import pytest

from edgellm.envs import get_scenario
from edgellm.envs.traffic import Traffic
from edgellm.errors import EdgeLLMError
from edgellm.system import catalog, channel, traces
from edgellm.system.generate import random_requests
from edgellm.system.media import MediaMix
from edgellm.system.workloads import Workload, lognormal_params


def test_lognormal_fit_hits_the_published_median_and_mean():
    mu, sigma = lognormal_params(mean=300.0, median=200.0)
    assert np.isclose(np.exp(mu), 200.0) and np.isclose(np.exp(mu + sigma**2 / 2), 300.0)
    assert lognormal_params(median=50.0) == (np.log(50.0), 1.0)


def test_requests_follow_the_trace_caps_and_tolerances():
    w = Workload(trace="sharegpt", max_prompt=100_000, max_output=64, deadline_s=(3.0, 5.0),
                 ppl_tolerance=(0.1, 0.7))
    r = w.requests(np.random.default_rng(0), 20_000)
    stats = catalog.traces()["sharegpt"]
    median = stats.get("prompt_tokens_median") or stats["prompt_tokens_mean"] * np.exp(-0.5)
    assert abs(np.median(r.prompt_tokens) / median - 1) < 0.05
    assert r.output_tokens.min() >= 1 and r.output_tokens.max() == 64
    assert 3.0 <= r.deadline_s.min() and r.deadline_s.max() < 5.0
    assert set(np.unique(r.ppl_tolerance)) == {0.1, 0.7}


def test_env_and_random_instances_draw_through_the_same_workload():
    cfg = get_scenario("narrowband")
    traffic = Traffic(cfg, 0)
    traffic.rng["requests"] = np.random.default_rng(7)
    draw = traffic.draw()
    ref = cfg.distributions.requests(np.random.default_rng(7), cfg.n_users)
    assert np.array_equal(draw.prompt_tokens, ref.prompt_tokens)
    assert np.array_equal(draw.ppl_tolerance, ref.ppl_tolerance)
    kw = {k: getattr(cfg, k) for k in ("trace", "max_prompt", "max_output", "deadline_s",
                                       "ppl_tolerance", "distance_m", "shadowing_db",
                                       "tx_power_w", "path_loss")}
    reqs = random_requests(np.random.default_rng(7), cfg.n_users, **kw)
    assert [r.prompt_tokens for r in reqs] == ref.prompt_tokens.tolist()
    assert [r.deadline_s for r in reqs] == ref.deadline_s.tolist()


def test_layout_uses_the_workloads_path_loss_model():
    legacy = Workload().layout(np.random.default_rng(3), 50)
    pico = Workload(path_loss="3gpp-pico").layout(np.random.default_rng(3), 50)
    assert np.array_equal(pico.distance_m, legacy.distance_m)  # same draws, other model
    assert np.array_equal(pico.large_gain, channel.large_scale_gain(
        pico.distance_m, pico.shadowing_db, "3gpp-pico"))
    assert (pico.large_gain < legacy.large_gain).all()  # pico: >= 12.6 dB more loss below 1 km
    assert np.array_equal(legacy.large_gain, channel.large_scale_gain(
        legacy.distance_m, legacy.shadowing_db, "legacy"))


def test_trace_workloads_draw_deadlines_and_tolerances_from_the_workload():
    cfg = get_scenario("azure-conv")
    traffic = Traffic(cfg, 0)
    traffic.rng["requests"] = np.random.default_rng(5)
    d = traffic.draw()
    rng = np.random.default_rng(5)
    if cfg.workload == "empirical":
        rng.integers(0, traces.load_trace(cfg.trace).n, cfg.n_users)
    tau, tol = cfg.distributions.deadlines_and_tolerances(rng, cfg.n_users)
    assert np.array_equal(d.deadline_s, tau) and np.array_equal(d.ppl_tolerance, tol)


def test_bad_sampler_input_is_one_clear_error_not_a_crash():
    # the compiled draws index without bounds checks: the Python side must refuse first
    rng = np.random.default_rng(0)
    with pytest.raises(EdgeLLMError, match="ppl_tolerance"):
        Workload(ppl_tolerance=()).deadlines_and_tolerances(rng, 5)
    with pytest.raises(EdgeLLMError, match="ppl_tolerance"):
        Workload(ppl_tolerance=()).requests(rng, 3)
    with pytest.raises(EdgeLLMError, match="same length"):
        MediaMix((0.3, 0.4, 0.3), "llava-1.5-7b").draw(rng, np.array([5, 6]), np.array([1, 2, 3]))
