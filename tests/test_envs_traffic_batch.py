"""Compiled draws against NumPy's Generator methods, value for value: Traffic.draw (in the
order of its docstring), MediaMix.draw, the Workload's requests; and TrafficBatch against
Traffic.draw."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from edgellm.envs import SCENARIOS, get_scenario
from edgellm.envs.traffic import Traffic, TrafficBatch, media_mix
from edgellm.system import catalog, channel, traces
from edgellm.system.media import COLUMNS, IMAGE, VOICE, MediaMix
from edgellm.system.workloads import Workload, length_params, length_sampler

VARIANTS = [(s, {}) for s in SCENARIOS] + [
    ("azure-conv", {"workload": "empirical"}),
    ("azure-code", {"workload": "empirical", "overlength": "reject"}),
    ("azure-code", {"overlength": "reject"}),
    ("azure-conv", {"arrival": "bursty"}),
    ("text-only", {"fading_rho": 0.0}),
]


@pytest.mark.parametrize("rho", [0.0, 0.9, 0.999])
def test_gauss_markov_equals_numpy_draws(rho):
    rng, ref = np.random.default_rng(2), np.random.default_rng(2)
    for shape in ((2, 1), (2, 7), (2, 3, 4)):
        h = ref.standard_normal(shape)
        rng.standard_normal(shape)
        w = ref.standard_normal(shape) * (1.0 / np.sqrt(2.0))
        got = channel.gauss_markov(rng, h, rho)
        assert np.array_equal(got, rho * h + np.sqrt(1.0 - rho * rho) * w)
        assert got.shape == shape and got is not h
    assert rng.bit_generator.state == ref.bit_generator.state


def np_lengths(rng, trace, which, cap, size):
    mu, sigma, cap = length_params(trace, which, cap)
    x = np.rint(rng.lognormal(mu, sigma, size))
    return np.minimum(np.maximum(x, 1.0), cap).astype(np.int64)


def np_deadlines_and_tolerances(rng, w: Workload, n):
    tau = rng.uniform(w.deadline_s[0], w.deadline_s[1], n)
    return tau, np.asarray(w.ppl_tolerance, dtype=float)[rng.integers(0, len(w.ppl_tolerance), n)]


def np_requests(rng, w: Workload, n):
    prompt = np_lengths(rng, w.trace, "prompt", w.max_prompt, n)
    output = np_lengths(rng, w.trace, "output", w.max_output, n)
    return (prompt, output, *np_deadlines_and_tolerances(rng, w, n))


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.Philox,
                                           np.random.MT19937])
def test_workload_draws_equal_numpy_draws(bit_generator):
    rng, ref = np.random.Generator(bit_generator(8)), np.random.Generator(bit_generator(8))
    for w in (Workload(), Workload("lmsys-chat-1m", 512, 64, (1.0, 3.5), (0.5,))):
        for n in (0, 1, 5, 16):
            for a, b in zip(w.requests(rng, n), np_requests(ref, w, n), strict=True):
                assert np.array_equal(a, b) and a.dtype == b.dtype
        draw = length_sampler(w.trace, "output", w.max_output)
        for size in (None, 3, (2, 5)):
            a, b = draw(rng, size), np_lengths(ref, w.trace, "output", w.max_output, size)
            assert np.array_equal(a, b) and a.dtype == b.dtype and np.shape(a) == np.shape(b)
    np.testing.assert_equal(rng.bit_generator.state, ref.bit_generator.state)


def reference_media(mix: MediaMix, rng: np.random.Generator, prompt_tokens, output_tokens):
    """:meth:`MediaMix.draw` with NumPy's Generator methods."""
    tokens, flops, (mu, sigma), bps, tps = mix.constants
    K = output_tokens.size
    u = rng.random(K)
    size = rng.lognormal(mu, sigma, K)
    question = rng.uniform(mix.question_s[0], mix.question_s[1], K)
    typed = np_lengths(rng, mix.question_trace, "prompt", mix.max_question, K)
    kind = np.searchsorted(mix.cumulative_shares, u, side="right")
    image, voice = kind == IMAGE, kind == VOICE
    out = np.zeros((K, len(COLUMNS)))
    out[image, 0] = tokens
    out[image, 1] = np.rint(size[image])
    out[image, 3] = flops
    out[voice, 0] = np.maximum(np.rint(question[voice] * tps), 1.0)
    out[voice, 1] = np.rint(question[voice] * bps)
    out[voice, 2] = np.rint(output_tokens[voice] / tps * bps)
    return np.where(image, typed, np.where(voice, 0, prompt_tokens)), out


@pytest.mark.parametrize("shares", [(0.3, 0.3, 0.4), (0.0, 1.0, 0.0), (0.5, 0.0, 0.5),
                                    (1.0, 0.0, 0.0)])
@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.Philox,
                                           np.random.MT19937])
def test_media_draws_equal_numpy_draws(shares, bit_generator):
    mix = MediaMix(shares, "llava-1.5-7b", question_s=(1.0, 7.0))
    rng, ref = bit_generator(4), bit_generator(4)
    rng, ref = np.random.Generator(rng), np.random.Generator(ref)
    for K in (1, 5, 16):
        prompt = rng.integers(1, 900, K)
        output = ref.integers(1, 900, K)
        assert np.array_equal(prompt, output)
        output = (prompt + 3)[::-1]  # not contiguous
        assert K == 1 or not output.flags.c_contiguous
        p, m = mix.draw(rng, prompt, output)
        q, n = reference_media(mix, ref, prompt, output)
        assert np.array_equal(p, q) and p.dtype == np.int64
        assert np.array_equal(m, n)
        assert np.array_equal(prompt, output[::-1] - 3)  # the input is not written
    np.testing.assert_equal(rng.bit_generator.state, ref.bit_generator.state)


def reference_draw(t: Traffic, advance: bool):
    """One slot of ``t``'s streams drawn with NumPy's Generator methods (the state is
    moved on in ``t``'s attributes; ``t.draw`` is not called)."""
    cfg, K = t.cfg, t.cfg.n_users
    if advance:
        w = t.rng["fading"].standard_normal(t._h.shape) * (1.0 / np.sqrt(2.0))
        t._h = cfg.fading_rho * t._h + np.sqrt(1.0 - cfg.fading_rho ** 2) * w
    gain = t.large_gain * np.maximum(channel.power_gain(t._h), 1e-300).reshape(2, K)
    a = t.rng["arrivals"]
    u_state, u_arr = a.random(K), a.random(K)
    rate = cfg.arrival_rate
    if cfg.arrival == "bursty":
        t.burst = np.where(t.burst, u_state >= cfg.p_leave_burst,
                           u_state < cfg.p_enter_burst)
        rate = np.where(t.burst, cfg.burst_rate, cfg.arrival_rate)
    arrive = u_arr < rate
    r, w, over = t.rng["requests"], cfg.distributions, 0
    if cfg.workload == "lognormal":
        prompt, output, deadline, tol = np_requests(r, w, K)
    else:
        tr = traces.load_trace(cfg.trace)
        if cfg.workload == "empirical":
            rows = r.integers(0, tr.n, K)
        else:
            users, idx = t._replay.next_slot()
            rows = np.zeros(K, dtype=np.int64)
            rows[users] = idx
            arrive = np.zeros(K, dtype=bool)
            arrive[users] = True
        prompt, output = tr.prompt[rows], np.minimum(tr.output[rows], cfg.max_output)
        deadline, tol = np_deadlines_and_tolerances(r, w, K)
        context = catalog.max_context(cfg.model)
        long = arrive & (prompt + output > context)
        over = int(long.sum())
        if cfg.overlength == "truncate":
            prompt = np.where(long, context - output, prompt)
        else:
            arrive = arrive & ~long
    media = None
    if cfg.has_media:
        prompt, media = reference_media(media_mix(cfg), t.rng["media"], prompt, output)
    return arrive, prompt, output, deadline, tol, gain, over, media


@pytest.mark.parametrize(("scenario", "overrides"), VARIANTS)
@pytest.mark.parametrize("n_users", [5, 16])
def test_traffic_draws_equal_numpy_draws(scenario, overrides, n_users):
    """Every preset and workload, arrival process and media mix; odd K exercises the
    generators' buffered 32-bit draws; the generators end in the same state."""
    cfg = get_scenario(scenario, n_users=n_users, **overrides)
    for seed in (3, 12):
        t = Traffic(cfg, np.random.SeedSequence(seed))
        ref = Traffic(cfg, np.random.SeedSequence(seed))
        assert np.array_equal(t.gain, ref.gain)
        for s in range(40):
            d = t.draw(advance_fading=s > 0)
            arrive, prompt, output, deadline, tol, gain, over, media = reference_draw(ref, s > 0)
            assert np.array_equal(d.arrive, arrive)
            assert np.array_equal(d.prompt_tokens, prompt)
            assert np.array_equal(d.output_tokens, output)
            assert np.array_equal(d.deadline_s, deadline)
            assert np.array_equal(d.ppl_tolerance, tol)
            assert np.array_equal(t.gain, gain) and not t.gain.flags.writeable
            assert np.array_equal(d.uplink_gain, gain[0])
            assert np.array_equal(d.downlink_gain, gain[1])
            assert d.overlength == over
            assert (d.media is None) == (media is None)
            assert media is None or np.array_equal(d.media, media)
        assert np.array_equal(t.burst, ref.burst)
        for name, rng in t.rng.items():
            assert rng.bit_generator.state == ref.rng[name].bit_generator.state


def test_a_traffic_copy_or_swapped_generator_draws_from_its_own_generators():
    t = Traffic(get_scenario("default", n_users=4), 1)
    t.draw(False)
    for dup in (copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))):
        twin = dup(t)
        a, b = t.draw(), twin.draw()
        assert np.array_equal(a.deadline_s, b.deadline_s)
        assert np.array_equal(a.media, b.media)
        assert np.array_equal(t.gain, twin.gain)
        assert not np.array_equal(t.draw().deadline_s, a.deadline_s)
        t = twin
    t.rng["requests"] = np.random.default_rng(7)
    d = t.draw()
    assert np.array_equal(d.deadline_s, t.cfg.distributions.requests(
        np.random.default_rng(7), 4).deadline_s)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("n_users", [5, 16])
def test_batch_draws_equal_traffic_draws(scenario, n_users):
    """The batch's states (fading, bursts, replays) of envs that skip slots."""
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


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.Philox,
                                           np.random.MT19937, np.random.SFC64])
def test_pointers_are_the_bit_generators_ctypes_addresses(bit_generator):
    """_rng.pointers reads the bitgen_t struct: the addresses NumPy's ctypes interface
    names, and a compiled draw through them equals NumPy's own."""
    import ctypes

    from edgellm.system._rng import pointers

    g = np.random.Generator(bit_generator(7))
    c = g.bit_generator.ctypes
    want = [c.state_address] + [ctypes.cast(f, ctypes.c_void_p).value
                                for f in (c.next_uint64, c.next_uint32, c.next_double)]
    assert pointers(g).tolist() == want + [c.bit_generator.value]
    ref = np.random.Generator(bit_generator(7)).standard_normal(6)
    h = channel.gauss_markov(g, np.zeros((2, 3)), 0.0)  # 6 normals through the addresses
    assert np.array_equal(h.ravel(), ref.ravel() * (1.0 / np.sqrt(2.0)))
