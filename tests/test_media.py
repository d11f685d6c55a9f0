"""Requests with media (images, speech): hand-computed costs, schema 2 and version-1 files,
clear errors, the media catalog, and the binding shares of the `default` preset."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import TINY_MODEL, tiny_request

from edgellm.dftsp import solve
from edgellm.system import InstanceError, SlotInstance, catalog, evaluate, media, prepare
from edgellm.system.generate import random_instance, random_requests

LOG2_11 = math.log2(11.0)  # tiny system: downlink rho = log2(1 + 1e-13 / (1e-20 * 1e6))


def test_image_request_by_hand(tiny):
    """3 text + 5 image tokens, 970 bits of photo, 300 FLOP of vision encoder, 4 output
    tokens on the tiny system (conftest: C = C_enc = 1000 FLOP/s, M = 100 B/s, kv = 16 B,
    10 bits/token), with 50 encoder parameters resident (100 B at 16 bits)."""
    req = tiny_request(media_tokens=5, uplink_media_bits=970.0, encoder_flops=300.0)
    inst = tiny([req], model=replace(TINY_MODEL, encoder_params=50))
    ev = evaluate(inst, [0])
    # prefill over S = 3 + 5 = 8: F = 2*100*8 + 2*2*4*8*9 = 2752 -> 2.752 s; Q = 228 B -> 2.28 s
    assert ev.t_prefill_s == pytest.approx(2.752)
    # decode j = 1..3 over 8 + j positions, memory-bound: (244 + 260 + 276) / 100
    assert ev.t_decode_s == pytest.approx(7.8)
    assert ev.t_encoder_s == pytest.approx(0.3)  # 300 FLOP / 1000 FLOP/s
    assert ev.t_compute_s == pytest.approx(2.752 + 7.8 + 0.3)
    # KV: padded (8 + 4) * 16; memory adds W = 100 B and the encoder's 100 B
    assert ev.kv_bytes == 12 * 16 and ev.memory_bytes == 100 + 100 + 12 * 16
    # uplink: 3 * 10 + 970 = 1000 bits over the whole 1 MHz, a = 1e10 Hz
    assert ev.t_uplink_s == pytest.approx(1000 / (1e6 * math.log2(1 + 1e4)), rel=1e-9)
    assert ev.uplink_hz[0] == pytest.approx(1e6, rel=1e-9)
    # downlink: the text answer only, 40 bits until the window closes
    window = 100 - ev.t_compute_s - ev.t_uplink_s
    assert ev.downlink_hz[0] == pytest.approx(40 / (LOG2_11 * window))


def test_voice_request_by_hand(tiny):
    """A spoken question (no typed text: 6 transcript tokens from 200 bits of speech) and
    a spoken answer (4 tokens + 960 bits of speech)."""
    req = tiny_request(prompt_tokens=0, media_tokens=6, uplink_media_bits=200.0,
                       downlink_media_bits=960.0)
    ev = evaluate(tiny([req]), [0])
    # prefill S = 6: F = 1200 + 672 = 1872 -> 1.872 s; Q = 100 + 96 = 196 B -> 1.96 s
    assert ev.t_prefill_s == pytest.approx(1.96)
    assert ev.t_decode_s == pytest.approx((212 + 228 + 244) / 100)
    assert ev.t_encoder_s == 0.0
    assert ev.kv_bytes == 10 * 16
    assert ev.t_uplink_s == pytest.approx(200 / (1e6 * math.log2(1 + 1e4)), rel=1e-9)
    window = 100 - ev.t_compute_s - ev.t_uplink_s
    assert ev.downlink_hz[0] == pytest.approx((40 + 960) / (LOG2_11 * window))


def test_media_make_batches_cost_more_and_stay_down_closed(rng):
    """Media only add demand: a request with media costs at least its text twin, and DFTSP
    agrees with brute force on random instances with media (both objectives, KV modes)."""
    mix = media.MediaMix((0.3, 0.4, 0.3), "llava-1.5-7b")
    for trial in range(12):
        kv, obj = ("padded", "exact")[trial % 2], ("requests", "tokens")[trial // 6]
        inst = random_instance(rng, 7, model="llava-1.5-7b", kv_cache=kv, objective=obj,
                               radio=dict(uplink_hz=2e6, downlink_hz=1e6), media=mix)
        a, b = solve(inst), solve(inst, method="bruteforce")
        assert a.value == b.value
        assert a.evaluation.feasible
    reqs = random_requests(np.random.default_rng(1), 30, media=mix)
    assert {r.media_tokens for r in reqs} >= {0, 576}
    text = [replace(r, media_tokens=0, uplink_media_bits=0.0, downlink_media_bits=0.0,
                    encoder_flops=0.0, prompt_tokens=max(r.prompt_tokens, 1)) for r in reqs]
    sys_ = catalog.build_instance("llava-1.5-7b", "w4a16", "rtx-4090")
    pm, pt = prepare(sys_.with_requests(reqs)), prepare(sys_.with_requests(text))
    has = np.array([r.media_tokens > 0 for r in reqs])
    assert (pm.up_bits[has] > pt.up_bits[has]).all()
    assert (pm.prefill_tokens >= pt.prefill_tokens - 1).all()


_V1_KEYS = {
    "model": ("name", "n_layers", "d_model", "n_heads", "n_kv_heads", "n_params"),
    "quant": ("name", "weight_bits", "kv_bits", "compute", "ppl_increase"),
    "radio": ("uplink_hz", "downlink_hz", "noise_psd_w_per_hz", "en_power_w", "bits_per_token"),
}


def _version_1_keys(d: dict) -> dict:
    """``d`` with only the keys of schema version 1 in its system parts (a version-1 file
    has none of version 2's optional weight-bytes and per-link noise keys)."""
    return {**d, **{part: {k: d[part][k] for k in keep} for part, keep in _V1_KEYS.items()}}


def test_version_1_files_load_and_solve_the_same(tmp_path):
    inst = random_instance(np.random.default_rng(7), 10)
    v2 = inst.to_dict()
    assert v2["schema"] == "edgellm.slot-instance/2"
    assert "media_tokens" not in v2["requests"][0]  # text requests: written as before
    v2 = _version_1_keys(v2)
    inst = SlotInstance.from_dict(v2)
    v1 = copy.deepcopy(v2)
    v1["schema"] = "edgellm.slot-instance/1"
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(v1))
    old = SlotInstance.from_json(path)
    assert old == inst
    explicit = copy.deepcopy(v2)  # the same requests with every media key spelled out at 0
    for r in explicit["requests"]:
        r.update(media_tokens=0, uplink_media_bits=0.0, downlink_media_bits=0.0,
                 encoder_flops=0.0)
    new = SlotInstance.from_dict(explicit)
    a, b = solve(old), solve(new)
    assert (a.batch, a.value, a.evaluation) == (b.batch, b.value, b.evaluation)
    pa, pb = prepare(old), prepare(new)
    for name in ("prefill_tokens", "up_bits", "down_c", "enc_s", "window"):
        assert np.array_equal(getattr(pa, name), getattr(pb, name))


def test_version_1_file_with_a_media_key_names_the_schema():
    d = _version_1_keys(random_instance(np.random.default_rng(0), 2).to_dict())
    d["schema"] = "edgellm.slot-instance/1"
    d["requests"][1]["media_tokens"] = 576
    with pytest.raises(InstanceError, match=r"requests\[1\]\.media_tokens: unknown key .*"
                                            r"slot-instance/2"):
        SlotInstance.from_dict(d)


@pytest.mark.parametrize("key,value,message", [
    ("media_tokens", -3, r"requests\[0\]\.media_tokens: must be an integer >= 0, got -3"),
    ("media_tokens", 2.5, r"requests\[0\]\.media_tokens: must be an integer >= 0, got 2\.5"),
    ("uplink_media_bits", "200kB",
     r"requests\[0\]\.uplink_media_bits: must be a finite number >= 0, got '200kB'"),
    ("downlink_media_bits", math.inf,
     r"requests\[0\]\.downlink_media_bits: must be a finite number >= 0, got inf"),
    ("encoder_flops", -1.0, r"requests\[0\]\.encoder_flops: must be a finite number >= 0"),
    ("prompt_tokens", 0, r"requests\[0\]\.prompt_tokens: must be >= 1 when media_tokens is 0"),
])
def test_malformed_media_field_gives_one_clear_error(key, value, message):
    d = random_instance(np.random.default_rng(0), 2).to_dict()
    d["requests"][0][key] = value
    with pytest.raises(InstanceError, match=f"^{message}"):
        SlotInstance.from_dict(d)


def test_media_round_trip_and_model_encoder():
    mix = media.MediaMix((0.0, 0.5, 0.5), "llava-1.5-13b")
    inst = random_instance(np.random.default_rng(3), 6, model="llava-1.5-13b", quant="w8a8",
                           media=mix)
    d = inst.to_dict()
    assert d["model"]["encoder_params"] == 334974976
    assert SlotInstance.from_dict(json.loads(json.dumps(d))) == inst


def test_media_catalog_is_cited_and_consistent():
    table = catalog._load("media")
    for section in ("vision_encoders", "vision_language_models", "images", "speech"):
        for name, entry in table[section].items():
            for k, v in entry.items():
                if isinstance(v, (int, float)) and k != "sources":
                    assert len(entry["sources"][k]) > 20, (section, name, k)
    for k in ("words_per_minute", "tokens_per_word"):
        assert len(table["speaking"]["sources"][k]) > 20
    enc = table["vision_encoders"]["clip-vit-l-14-336"]
    for vlm in media.vision_models():
        # the model's resident encoder = vision tower + projector
        proj = table["vision_language_models"][vlm]["projector_params"]
        assert catalog.model(vlm).encoder_params == enc["n_params"] + proj
        assert media.image_tokens(vlm) == (336 // 14) ** 2 == 576
    # 577 tokens through 24 layers of width 1024 plus the 13B projector: ~0.42 TFLOP/image
    n = 577
    expect = (2 * n * 303507456 + 4 * 24 * n * n * 1024 + 2 * 576 * 31467520)
    assert media.vision_flops_per_image("llava-1.5-13b") == pytest.approx(expect)
    assert media.speech_tokens_per_s() == pytest.approx(150 / 60 * 1.333)


def test_text_only_scenario_draws_no_media():
    from edgellm.envs import get_scenario

    assert not get_scenario("text-only").has_media and get_scenario("default").has_media
    assert not get_scenario("thin-slice").has_media
    # text-only is default's system and carrier with the media shares set to text
    assert get_scenario("text-only") == get_scenario("default", media_mix=(1.0, 0.0, 0.0))
    from edgellm.errors import EdgeLLMError

    with pytest.raises(EdgeLLMError, match="scenario.media_mix: must be text and voice only"):
        get_scenario("thin-slice", media_mix=(0.5, 0.5, 0.0))  # Llama-2-13B has no vision
    with pytest.raises(EdgeLLMError, match="scenario.media_mix"):
        get_scenario("default", media_mix=(1.0, -1.0, 0.0))


def test_default_scenario_binding_shares():
    """`edgellm scenario stats default` on seed 0: memory, deadline, uplink and downlink
    each bind in >= 5% of the oracle's slots; on text-only the radio almost never does."""
    from edgellm.envs.cli import oracle_stats

    st = oracle_stats("default", slots=300, seed=0)
    for c in ("memory", "deadline", "uplink", "downlink"):
        assert st.binding.get(c, 0) >= 0.05 * st.slots, (c, st.binding)
    txt = oracle_stats("text-only", slots=300, seed=0)
    radio = txt.binding.get("uplink", 0) + txt.binding.get("downlink", 0)
    assert radio < 0.05 * txt.slots


def test_default_env_with_media_uses_the_one_cost_model():
    """The env's prepared arrays, the instance they describe and the queues' compute time
    of each head agree; the observation stays in its box."""
    from gymnasium.utils.env_checker import check_env

    from edgellm.envs import EdgeLLMEnv
    from edgellm.envs.queues import COMPUTE_S

    env = EdgeLLMEnv("default", action_mode="subset", max_slots=30)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=4)
    K = env.n_users
    assert obs.shape == (12 * K + 4,)  # two media columns per user
    assert EdgeLLMEnv("text-only").observation_space.shape == (10 * K + 4,)
    seen_media = 0
    for _ in range(20):
        view = env.slot_view()
        p = view.prepared
        seen_media += int((p.columns["media_tokens"] > 0).sum())
        for i, u in enumerate(view.users):
            ev = evaluate(view.instance, [i])
            assert ev.t_compute_s == pytest.approx(env._queues.data[u, 0, COMPUTE_S], rel=1e-12)
            assert ev.to_dict() == evaluate(p, [i]).to_dict()
        rows = obs[:12 * K].reshape(K, 12)
        users = list(view.users)
        assert np.allclose(rows[users, 10], np.minimum(p.up_bits / 4e6, 1.0), rtol=1e-6)
        obs, *_ = env.step(env.action_for(view.users))
        assert env.observation_space.contains(obs)
    assert seen_media > 0
