"""Hand-computed values of the roofline cost model (SPEC 2.2)."""

from __future__ import annotations

import numpy as np
import pytest

from edgellm.system import cost

# tiny system (see conftest): P=100, L=2, d=4, W=100 B, kv=16 B/token, C=1000, M=100
P, L, D, W, KV, C, M = 100.0, 2, 4, 100.0, 16.0, 1000.0, 100.0


def test_kv_and_weight_bytes_gqa():
    # 2 * L * d_kv * kv_bits/8 with d_kv = 4 * 1 / 2 = 2
    assert cost.kv_bytes_per_token(2, 4, 2, 1, 16) == 16.0
    # Llama-3-8B: 32 layers, d 4096, 32 heads, 8 KV heads, fp16 -> 131072 B/token
    assert cost.kv_bytes_per_token(32, 4096, 32, 8, 16) == 131072.0
    assert cost.weight_bytes(100, 8) == 100.0
    assert cost.weight_bytes(7e9, 4) == 3.5e9


def test_prefill_memory_bound_by_hand():
    # b=2, S=3: F = 2 (2*100*3 + 2*2*4*3*4) = 1584 -> 1.584 s; Q = 100 + 2*3*16 = 196 -> 1.96 s
    assert cost.prefill_time(2, 3, P, L, D, W, KV, C, M) == pytest.approx(1.96)


def test_prefill_compute_bound_by_hand():
    # b=10, S=3: F = 10 * 792 = 7920 -> 7.92 s; Q = 100 + 10*3*16 = 580 -> 5.8 s
    assert cost.prefill_time(10, 3, P, L, D, W, KV, C, M) == pytest.approx(7.92)


def test_decode_memory_bound_by_hand():
    # b=2, S=3, N=4: steps j=1..3; Q_j = 100 + 2 (3 + j) 16 -> 228, 260, 292 B -> 7.8 s
    # (F_j = 2 (200 + 32 (3 + j)) -> 656, 720, 784 FLOP: below the memory term)
    assert cost.decode_time(2, 3, 4, P, L, D, W, KV, C, M) == pytest.approx(7.8)


def test_decode_compute_bound_by_hand():
    # With M = 1e6 B/s memory is negligible: F_j/C = 2 (200 + 32 (3 + j)) / 1000
    assert cost.decode_time(2, 3, 4, P, L, D, W, KV, C, 1e6) == pytest.approx(0.656 + 0.72 + 0.784)


def test_single_output_token_has_no_decode_step():
    assert cost.decode_time(4, 10, 1, P, L, D, W, KV, C, M) == 0.0
    assert cost.compute_time(4, 10, 1, P, L, D, W, KV, C, M) == cost.prefill_time(
        4, 10, P, L, D, W, KV, C, M)


def _decode_loop(b, S, N, P, L, d, W, kv, C, M):
    total = 0.0
    for j in range(1, N):
        F = b * (2 * P + 4 * L * d * (S + j))
        Q = W + b * (S + j) * kv
        total += max(F / C, Q / M)
    return total


def test_closed_form_equals_step_loop_in_all_regimes(rng):
    """Random parameters cover memory-bound, compute-bound and crossing decodes."""
    regimes = set()
    for _ in range(400):
        b = int(rng.integers(1, 64))
        S = int(rng.integers(1, 3000))
        N = int(rng.integers(1, 400))
        L, d = int(rng.integers(1, 80)), int(rng.integers(64, 8192))
        P = float(rng.uniform(1e6, 7e10))
        W = P * rng.choice([0.5, 1.0, 2.0])
        kv = 2 * L * d * rng.choice([0.125, 0.5, 1.0]) * rng.choice([1.0, 2.0])
        C = float(10 ** rng.uniform(10, 15))
        M = float(10 ** rng.uniform(9, 13))
        want = _decode_loop(b, S, N, P, L, d, W, kv, C, M)
        got = float(cost.decode_time(b, S, N, P, L, d, W, kv, C, M))
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
        f1 = b * (2 * P + 4 * L * d * (S + 1)) / C
        q1 = (W + b * (S + 1) * kv) / M
        fN = b * (2 * P + 4 * L * d * (S + N - 1)) / C
        qN = (W + b * (S + N - 1) * kv) / M
        if N > 1:
            regimes.add((f1 >= q1, fN >= qN))
    assert len(regimes) >= 3  # memory-bound, compute-bound and at least one crossing


def test_nearly_equal_slopes_do_not_overflow():
    """Compute and memory slopes that nearly cancel put the crossing at ~1e19 steps."""
    P, L, d, W, kv = 1e8, 8, 1024, 2e8, 16384.0
    C = 5035701647.176666
    M = C / 2
    want = _decode_loop(4, 64, 32, P, L, d, W, kv, C, M)
    assert cost.decode_time(4, 64, 32, P, L, d, W, kv, C, M) == pytest.approx(want, rel=1e-12)


def test_vectorised_equals_scalar():
    bs = np.array([1, 4, 16, 64])
    got = cost.compute_time(bs, 512, 128, 7e9, 32, 4096, 3.5e9, 524288.0, 8e13, 8e11)
    for b, g in zip(bs, got):
        assert g == cost.compute_time(int(b), 512, 128, 7e9, 32, 4096, 3.5e9, 524288.0, 8e13,
                                      8e11)


def test_kv_cache_padded_and_exact():
    # padded: b (S + N) kv ; exact: sum (s_k + n_k) kv
    assert cost.kv_cache_bytes(3, 10, 5, 30, 16.0, padded=True) == 3 * 15 * 16
    assert cost.kv_cache_bytes(3, 10, 5, 30, 16.0, padded=False) == 30 * 16


def test_time_grows_with_batch_and_lengths():
    base = cost.compute_time(4, 256, 64, 7e9, 32, 4096, 3.5e9, 524288.0, 8e13, 8e11)
    assert cost.compute_time(5, 256, 64, 7e9, 32, 4096, 3.5e9, 524288.0, 8e13, 8e11) > base
    assert cost.compute_time(4, 257, 64, 7e9, 32, 4096, 3.5e9, 524288.0, 8e13, 8e11) > base
    assert cost.compute_time(4, 256, 65, 7e9, 32, 4096, 3.5e9, 524288.0, 8e13, 8e11) > base


# --------------------------------------------------------------------------- weight bytes
# Hand computations of W = (P - E) (bits + meta / g) / 8 + 2 E (SPEC 2.2, revised) for one
# untied model (Llama-2-7B: V = 32000, d = 4096, E = 2 V d) and one tied model (OPT-6.7B:
# V = 50272, E = V d) in every catalog format.
LLAMA_E = 2 * 32000 * 4096          # 262,144,000 embedding + LM-head parameters
LLAMA_BLOCKS = 6738415616 - LLAMA_E  # 6,476,271,616
OPT_E = 50272 * 4096                # 205,914,112 (shared by input and output)
OPT_BLOCKS = 6.7e9 - OPT_E           # 6,494,085,888


@pytest.mark.parametrize("model, scheme, expected", [
    # fp16 covers everything at 16 bits: 2 bytes per parameter
    ("llama-2-7b", "fp16", 2 * 6738415616),
    ("opt-6.7b", "fp16", 2 * 6.7e9),
    # w8a8: blocks at 1 byte, per-tensor scales not counted, embeddings 2 bytes
    ("llama-2-7b", "w8a8", LLAMA_BLOCKS + 2 * LLAMA_E),        # 7,000,559,616
    # w4a16 g128 with FP16 scale + 4-bit zero: 4 + 20 / 128 = 4.15625 bits per weight
    ("llama-2-7b", "w4a16", LLAMA_BLOCKS * 4.15625 / 8 + 2 * LLAMA_E),
    ("opt-6.7b", "w4a16", OPT_BLOCKS * 4.15625 / 8 + 2 * OPT_E),
    # OPT has no published W8A8 perplexity; the scheme's fields alone fix W
    ("opt-6.7b", "w8a8", OPT_BLOCKS + 2 * OPT_E),
])
def test_weight_bytes_by_hand(model, scheme, expected):
    from edgellm.system import catalog
    from edgellm.system.instance import Quant

    spec = catalog._entry("quantization", "schemes", scheme)
    m, q = catalog.model(model), Quant(name=scheme, ppl_increase=0.0, **spec)
    _, W = cost.model_costs(m, q)
    assert W == pytest.approx(expected, rel=1e-12)


def test_weight_bytes_llama2_7b_w4a16_digits():
    # 6,476,271,616 * 4.15625 / 8 = 3,364,625,488 (exact: 6,476,271,616 / 128 = 50,595,872
    # groups; 50,595,872 * (128 * 4 + 20) / 8 = 3,364,625,488); plus 524,288,000
    from edgellm.system import catalog

    _, W = cost.model_costs(catalog.model("llama-2-7b"), catalog.quant("w4a16", "llama-2-7b"))
    assert W == 3_888_913_488


def test_matmul_params_leave_out_the_lookup_only():
    # untied: the input embedding (V d) is a lookup, the LM head (V d) a matmul
    assert cost.matmul_params(6738415616, 32000, 4096) == 6738415616 - 32000 * 4096
    assert cost.matmul_params(1000.0, 10, 4) == 960.0
    # tied: the one V x d matrix counted in P is also the LM head's matmul, so all of P
    assert cost.matmul_params(1000.0, 10, 4, tied_embeddings=True) == 1000.0
    assert cost.matmul_params(1000.0, None, 4) == 1000.0  # version-0.1 files


def test_legacy_quant_and_model_keep_version_01_weight_bytes():
    # a file without the optional keys: W = P * weight_bits / 8, P unchanged
    from edgellm.system.instance import Model, Quant

    m = Model("m", n_layers=2, d_model=4, n_heads=2, n_kv_heads=1, n_params=100)
    q = Quant("w8", weight_bits=8, kv_bits=16, compute="fp16", ppl_increase=0.5)
    assert cost.model_costs(m, q) == (100, 100.0)
    # with vocab but a quant that says nothing: every weight at 8 bits, lookup left out of P
    m2 = Model("m", 2, 4, 2, 1, 100, vocab_size=5, tied_embeddings=False)
    assert cost.model_costs(m2, q) == (80.0, 100.0)
    # blocks only, groups of 4 with 8 + 8 metadata bits: (100 - 40) * (8 + 4) / 8 + 2 * 40
    q2 = Quant("w8g", 8, 16, "fp16", 0.5, covers="blocks", group_size=4, scale_bits=8,
               zero_bits=8)
    assert cost.model_costs(m2, q2) == (80.0, 90.0 + 80.0)
