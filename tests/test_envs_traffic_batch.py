"""Compiled traffic draws (TrafficBatch) against Traffic.draw, value for value."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from edgellm.envs import SCENARIOS, get_scenario
from edgellm.envs.traffic import Traffic, TrafficBatch


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("n_users", [5, 16])
def test_compiled_draws_equal_traffic_draws(scenario, n_users):
    """Odd K exercises the generators' buffered 32-bit draws; every preset covers the
    workloads, arrival processes and media mixes; the generators end in the same state."""
    cfg = get_scenario(scenario, n_users=n_users)
    seeds = [3, 11, 12]
    batch = TrafficBatch(cfg, len(seeds))
    singles = [Traffic(cfg, np.random.SeedSequence(s)) for s in seeds]
    for e, s in enumerate(seeds):
        batch.seed(e, np.random.SeedSequence(s))
    envs = np.arange(len(seeds))
    for t in range(30):
        part = envs if t % 3 else envs[[0, 2]]  # some envs skip slots
        arrive, prompt, output, deadline, tol, gains, media, over = batch.draw(part, t == 0)
        for j, e in enumerate(part.tolist()):
            d = singles[e].draw(advance_fading=t > 0)
            assert np.array_equal(arrive[j], d.arrive)
            assert np.array_equal(prompt[j], d.prompt_tokens)
            assert np.array_equal(output[j], d.output_tokens)
            assert np.array_equal(deadline[j], d.deadline_s)
            assert np.array_equal(tol[j], d.ppl_tolerance)
            assert np.array_equal(gains[j], [d.uplink_gain, d.downlink_gain])
            assert over[j] == d.overlength
            if d.media is None:
                assert not media[j].any()
            else:
                assert np.array_equal(media[j], d.media)
    for e, t in enumerate(singles):
        for name, rng in t.rng.items():
            assert rng.bit_generator.state == batch.traffic[e].rng[name].bit_generator.state


def test_a_copy_draws_from_its_own_generators():
    cfg = get_scenario("default", n_users=4)
    batch = TrafficBatch(cfg, 2)
    for e in range(2):
        batch.seed(e, np.random.SeedSequence(e))
    envs = np.arange(2)
    batch.draw(envs, True)
    twin = copy.deepcopy(batch)
    a, b = batch.draw(envs), twin.draw(envs)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    c = batch.draw(envs)  # the copy's draw did not advance the original's generators
    d = twin.draw(envs)
    for x, y in zip(c, d):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[3], c[3])
