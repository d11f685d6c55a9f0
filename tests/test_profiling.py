"""``edgellm profile``: the cost model against a real ``transformers`` decoder (issue 6)."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

from edgellm.cli import main
from edgellm.errors import EdgeLLMError
from edgellm.profiling import (
    CostParams,
    Point,
    apply_fit,
    build_model,
    device_profile,
    error_summary,
    fit_rates,
    kv_per_token,
    load_device_profile,
    model_stats,
    padded_prompts,
    predict,
    run_batch,
    scaled_arch,
)
from edgellm.system import Device, Request, catalog, cost, evaluate

TINY = {"n_layers": 2, "d_model": 128, "vocab": 256}


@pytest.fixture(scope="module")
def tiny_models():
    """One tiny model per family, built once (fp32)."""
    out = {}
    for name in ("llama-3-8b", "llama-2-7b", "mistral-7b", "opt-6.7b", "bloom-7b1"):
        arch = scaled_arch(name, **TINY)
        out[name] = (arch, build_model(arch, torch.float32, seed=1))
    return out


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("name", ["llama-3-8b", "llama-2-7b", "mistral-7b", "opt-6.7b",
                                  "bloom-7b1"])
@pytest.mark.parametrize("b", [1, 2, 4])
def test_kv_cache_bytes_equal_real_cache(tiny_models, name, b):
    """Real cache bytes == b * positions * kv_bytes_per_token after every pass, and after N
    decode steps (S + N positions) == kv_cache_bytes(b, S, N, padded)."""
    arch, model = tiny_models[name]
    S, N = 9, 5
    ids, mask = padded_prompts(b, S, arch.vocab, seed=b, ragged=True)
    if b > 1:
        assert (mask == 0).any(), "the batch must really be padded"
    stats = model_stats(model)
    kv = kv_per_token(arch, stats.element_bytes)
    run = run_batch(model, ids, mask, N)  # N decode steps: cache ends at S + N positions
    assert run.cache_positions == [S + j for j in range(N + 1)]
    for j, real in enumerate(run.kv_bytes):
        assert real == b * (S + j) * kv
    assert run.kv_bytes[-1] == cost.kv_cache_bytes(b, S, N, 0, kv, padded=True)
    # generating N tokens needs only N - 1 decode steps: one position short of the reservation
    assert run.kv_bytes[N - 1] == cost.kv_cache_bytes(b, S, N, 0, kv, padded=True) - b * kv


def test_gqa_cache_is_smaller_by_the_group_ratio(tiny_models):
    gqa, mha = tiny_models["llama-3-8b"], tiny_models["llama-2-7b"]
    assert gqa[0].n_heads // gqa[0].n_kv_heads == 4  # llama-3-8b: 32 / 8
    assert mha[0].n_kv_heads == mha[0].n_heads
    ids, mask = padded_prompts(2, 8, 256)
    kv_g = run_batch(gqa[1], ids, mask, 1).kv_bytes[-1]
    kv_m = run_batch(mha[1], ids, mask, 1).kv_bytes[-1]
    assert kv_m == 4 * kv_g


def test_kv_bytes_follow_the_dtype():
    arch = scaled_arch("llama-3-8b", **TINY)
    model = build_model(arch, torch.bfloat16)
    stats = model_stats(model)
    assert stats.element_bytes == 2
    ids, mask = padded_prompts(3, 6, arch.vocab)
    run = run_batch(model, ids, mask, 2)
    assert run.kv_bytes[-1] == cost.kv_cache_bytes(3, 6, 2, 0, kv_per_token(arch, 2), True)


# ----------------------------------------------------------------------------- architectures
def test_scaled_arch_keeps_family_ratios():
    for name in catalog.models():
        full = catalog.model(name)
        a = scaled_arch(name, 4, 512)
        assert a.n_heads * a.head_dim == 512
        assert a.n_heads // a.n_kv_heads == full.n_heads // full.n_kv_heads


def test_model_stats_counts_matmul_params(tiny_models):
    arch, model = tiny_models["llama-3-8b"]
    s = model_stats(model)
    emb = arch.vocab * arch.d_model
    # untied: the LM head is a matmul, the input embedding is a lookup
    assert s.n_params_total - s.n_params_matmul == emb + (2 * arch.n_layers + 1) * arch.d_model
    assert s.weight_bytes_read == (s.n_params_total - emb) * 4
    arch, model = tiny_models["opt-6.7b"]
    s = model_stats(model)  # tied LM head: the shared matrix is read (and multiplied) once
    assert s.n_params_matmul > arch.vocab * arch.d_model
    assert s.weight_bytes_read < s.weight_bytes_total


# ----------------------------------------------------------------------------- fitting
CP = CostParams(P=1.0e8, L=8, d=1024, W=2.0e8, kv=16384.0)
GRID = np.array([(b, S) for b in (1, 2, 4, 8) for S in (64, 256)], float)


def test_fit_recovers_known_rates():
    C, M = 4.0e11, 2.0e10
    b, S = GRID[:, 0], GRID[:, 1]
    N = np.full_like(b, 32.0)
    tp, td = predict(CP, b, S, N, C, M)
    C_fit, M_fit = fit_rates(CP, b, S, N, tp, td)
    assert C_fit == pytest.approx(C, rel=1e-3)
    assert M_fit == pytest.approx(M, rel=1e-3)


def test_fit_is_robust_to_noise():
    C, M = 1.0e11, 5.0e9
    rng = np.random.default_rng(0)
    b, S = GRID[:, 0], GRID[:, 1]
    N = np.full_like(b, 32.0)
    tp, td = predict(CP, b, S, N, C, M)
    noise = np.exp(rng.normal(0, 0.05, (2, b.size)))
    C_fit, M_fit = fit_rates(CP, b, S, N, tp * noise[0], td * noise[1])
    assert C_fit == pytest.approx(C, rel=0.1)
    assert M_fit == pytest.approx(M, rel=0.1)


def test_apply_fit_and_errors():
    C, M = 4.0e11, 2.0e10
    pts = [Point(int(b), int(S), 32, 0.0, 0.0, 0, 0.0) for b, S in GRID]
    apply_fit(pts, CP, C, M)
    for p in pts:  # measured = predicted x 1.1
        p.prefill_s, p.decode_s = 1.1 * p.pred_prefill_s, 1.1 * p.pred_decode_s
    e = error_summary(pts)
    assert e["median"] == pytest.approx(0.1 / 1.1)
    assert e["worst"] == pytest.approx(0.1 / 1.1)
    total = cost.compute_time(1, 64, 32, CP.P, CP.L, CP.d, CP.W, CP.kv, C, M)
    assert pts[0].pred_total_s == pytest.approx(float(total))


# ----------------------------------------------------------------------------- device profile
HW = {"name": "Test CPU", "label": "Test CPU, 2 cores", "memory_bytes": 16 * 2**30,
      "slug": "cpu-test"}


def _write(tmp_path, prof):
    import yaml

    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(prof))
    return path


def test_profile_round_trips_into_a_device(tmp_path):
    prof = device_profile("cpu-test", HW, "bf16", "fp16", 3.0e11, 2.5e10, "edgellm profile")
    dev = load_device_profile(_write(tmp_path, prof))
    assert isinstance(dev, Device)
    assert dev.name == "cpu-test"
    assert dev.peak_flops == {"bf16": 3.0e11, "fp16": 3.0e11}
    assert dev.mem_bandwidth == 2.5e10
    assert dev.compute_efficiency == dev.memory_efficiency == 1.0
    assert dev.reserved_bytes < dev.memory_bytes
    srcs = prof["devices"]["cpu-test"]["sources"]
    assert "bf16 ran instead" in srcs["peak_flops.fp16"]
    # a scenario on the measured device: fp16 quant finds its rate (bf16 ran), and the
    # compute time is the roofline's at the profile's rates: doubling both halves it
    req = Request(prompt_tokens=200, output_tokens=50, deadline_s=1e6, ppl_tolerance=10.0,
                  uplink_gain=1e-9, downlink_gain=1e-9, tx_power_w=0.2)
    inst = catalog.build_instance("llama-2-7b", "fp16", "l4", [req], slot_s=1e6)
    t = evaluate(dataclasses.replace(inst, device=dev), [0]).t_compute_s
    fast = dataclasses.replace(dev, peak_flops={k: 2 * v for k, v in dev.peak_flops.items()},
                               mem_bandwidth=2 * dev.mem_bandwidth)
    assert t > 0
    assert evaluate(dataclasses.replace(inst, device=fast), [0]).t_compute_s == \
        pytest.approx(t / 2, rel=1e-12)


def test_profile_against_a_catalog_gpu_keeps_datasheet_peaks(tmp_path):
    ref = catalog.device("l4")
    C, M = 0.4 * ref.peak_flops["fp16"], 0.7 * ref.mem_bandwidth
    prof = device_profile("l4-measured", HW, "fp16", "fp16", C, M, "cmd", catalog_device="l4")
    dev = load_device_profile(_write(tmp_path, prof))
    assert dev.peak_flops["fp16"] == ref.peak_flops["fp16"]
    assert dev.compute_efficiency == pytest.approx(0.4)
    assert dev.memory_efficiency == pytest.approx(0.7)


def test_load_device_profile_errors(tmp_path):
    with pytest.raises(EdgeLLMError, match="cannot read"):
        load_device_profile(tmp_path / "missing.yaml")
    prof = device_profile("x", HW, "fp32", "fp32", 1e11, 1e10, "cmd")
    prof["devices"]["x"]["memory_efficiency"] = 1.5
    with pytest.raises(EdgeLLMError, match="memory_efficiency"):
        load_device_profile(_write(tmp_path, prof))
    with pytest.raises(EdgeLLMError, match="devices"):
        load_device_profile(_write(tmp_path, {"something": 1}))


# ----------------------------------------------------------------------------- the command
def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "prof"
    rc = main(["profile", "--model", "llama-3-8b", "--batch", "1,2", "--prompt", "16",
               "--output", "4", "--layers", "2", "--d-model", "128", "--vocab", "256",
               "--repeats", "1", "--quiet", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "precision run: bf16 on cpu (requested fp16)" in text
    assert "KV cache: real bytes equal" in text
    for f in ("profile.yaml", "points.csv", "profile.json", "profile.png"):
        assert (out / f).stat().st_size > 0
    rows = list(csv.DictReader((out / "points.csv").open()))
    assert [(r["batch"], r["prompt"]) for r in rows] == [("1", "16"), ("2", "16")]
    assert all(r["kv_bytes_real"] == r["kv_bytes_model"].removesuffix(".0") for r in rows)
    dev = load_device_profile(out / "profile.yaml")
    assert set(dev.peak_flops) == {"bf16", "fp16"}
    assert (out / "profile.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, option", [
    (["--model", "gpt-5"], "--model"),
    (["--batch", "1,x"], "--batch"),
    (["--batch", "0"], "--batch"),
    (["--prompt", ""], "--prompt"),
    (["--output", "1"], "--output"),
    (["--d-model", "100"], "--d-model"),
    (["--quant", "int3"], "--quant"),
])
def test_cli_bad_input_names_the_option(tmp_path, capsys, argv, option):
    rc = main(["profile", "--layers", "1", "--d-model", "128", "--out", str(tmp_path), *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("edgellm: error: ") and option in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "profile.yaml").exists()


# ----------------------------------------------------------------------------- weight bytes
@pytest.mark.parametrize("name", ["llama-3-8b", "opt-6.7b", "bloom-7b1"])
def test_weight_bytes_equal_real_quantized_tensors(name):
    """W of the cost model against the bytes of the really quantized and packed tensors:
    equal for fp16; for the grouped / INT8 formats the only difference is the 16-bit
    norm / bias / position parameters, others x (2 - bits per weight / 8) bytes (plus one
    FP16 per-tensor scale per linear layer for W8A8). Sizes chosen so 128 divides every
    input width (d 256, FFN 896 or 1024)."""
    from edgellm.profiling.weights import quantized_linear, weight_check

    arch = scaled_arch(name, n_layers=2, d_model=256, vocab=256)
    net = build_model(arch, torch.float32, seed=2)
    rows = {r["scheme"]: r for r in weight_check(net, name)}
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in net.modules()) - 1  # less LM head
    assert rows["fp16"]["model_bytes"] == rows["fp16"]["real_bytes"]
    others = rows["w4a16"]["other_16bit_params"]
    gap = rows["w4a16"]["real_bytes"] - rows["w4a16"]["model_bytes"]
    assert gap == pytest.approx(others * (2 - (4 + 20 / 128) / 8), abs=1e-6)
    if "w8a8" in rows:
        gap = rows["w8a8"]["real_bytes"] - rows["w8a8"]["model_bytes"]
        assert gap == pytest.approx(others * 1 + 2 * n_linear, abs=1e-6)
    # the packed AWQ tensors of one 256 x 256 weight: 256*256/8 int32 + 256*2 scales + zeros
    w = torch.randn(256, 256)
    spec = {"weight_bits": 4, "group_size": 128, "scale_bits": 16, "zero_bits": 4}
    qweight, scales, qzeros = quantized_linear(w, spec)
    assert qweight.dtype == torch.int32 and qweight.numel() == 256 * 256 // 8
    assert scales.dtype == torch.float16 and scales.numel() == 256 * 2
    assert qzeros.numel() == 2 * 256 // 8
