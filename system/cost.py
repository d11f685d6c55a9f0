"""Roofline cost model of one batched LLM inference (SPEC section 2.2).

Pure functions of plain numbers. Every function broadcasts over NumPy arrays, so the
solver can cost many candidate batches in one call; on Python scalars it returns NumPy
float64 scalars. The time formulas are compiled (``_kernel``), the same code the
feasibility kernel runs.

Units: bytes, FLOP, seconds, FLOP/s, bytes/s.
"""

from __future__ import annotations

from numba import vectorize

from edgellm.system import _kernel


def kv_bytes_per_token(n_layers: int, d_model: int, n_heads: int, n_kv_heads: int,
                       kv_bits: float) -> float:
    """KV-cache bytes one token occupies: 2 (K and V) * L * d_kv * kv_bits / 8."""
    d_kv = d_model * n_kv_heads / n_heads
    return 2.0 * n_layers * d_kv * kv_bits / 8.0


def weight_bytes(n_params: float, weight_bits: float, *, embedding_params: float = 0.0,
                 group_size: int = 0, metadata_bits: float = 0.0) -> float:
    """Bytes of the deployed weights [B] (SPEC 2.2).

    W = (P - E) * (weight_bits + metadata_bits / group_size) / 8 + E * 16 / 8: the
    ``embedding_params`` E (input embedding plus output layer, once if tied) stay 16-bit
    and the other P - E parameters are quantized, each group of ``group_size`` weights
    carrying ``metadata_bits`` (its scale plus zero point). With the defaults (E = 0, no
    groups) this is the version-0.1 formula W = P * weight_bits / 8.
    """
    per_weight = weight_bits + (metadata_bits / group_size if group_size else 0.0)
    return (n_params - embedding_params) * per_weight / 8.0 + embedding_params * 2.0


def matmul_params(n_params: float, vocab_size: int | None, d_model: int,
                  tied_embeddings: bool = False) -> float:
    """Parameters that do matmul FLOPs per token, the P of the FLOP terms of SPEC 2.2.

    The input embedding is a table lookup (no FLOPs), so its V * d parameters are left
    out when the output layer has its own matrix; the output layer is a V x d matmul and
    counts. A tied model holds one V x d matrix, used as a lookup and as the output
    matmul, so all of its ``n_params`` count. Without a ``vocab_size`` the whole
    ``n_params`` counts (version 0.1).
    """
    if vocab_size is None or tied_embeddings:
        return n_params
    return n_params - float(vocab_size) * d_model


def model_costs(model, quant) -> tuple[float, float]:
    """(P for the FLOP terms, W [B]) of a :class:`~edgellm.system.instance.Model` under a
    :class:`~edgellm.system.instance.Quant`.

    A quantization that ``covers`` only the transformer ``"blocks"`` leaves the embedding
    and output layer at 16 bits, which needs the model's ``vocab_size``; one that covers
    ``"all"`` (or says nothing: files of version 0.1) quantizes every parameter.
    """
    blocks_only = quant.covers == "blocks"
    if blocks_only and model.vocab_size is None:
        raise ValueError("model.vocab_size: needed when quant.covers is 'blocks'")
    W = weight_bytes(model.n_params, quant.weight_bits,
                     embedding_params=model.embedding_params() if blocks_only else 0.0,
                     group_size=quant.group_size or 0,
                     metadata_bits=(quant.scale_bits or 0.0) + (quant.zero_bits or 0.0))
    return matmul_params(model.n_params, model.vocab_size, model.d_model,
                         bool(model.tied_embeddings)), W


def encoder_bytes(encoder_params: float) -> float:
    """Bytes of resident media-encoder weights (vision tower + projector) at 16 bits."""
    return encoder_params * 2.0


def encoder_time(encoder_flops, C: float):
    """Media-encoder seconds, compute-bound: sum of the batch's encoder FLOPs / C.

    A ViT pass over one image does hundreds of FLOPs per weight byte read, far right of
    any GPU's ridge point, so reading the encoder weights is not the limit."""
    return encoder_flops / C


_F9 = ["float64(" + ", ".join(["float64"] * 9) + ")"]
_F10 = ["float64(" + ", ".join(["float64"] * 10) + ")"]
_prefill = vectorize(_F9, cache=True)(_kernel.prefill_s)
_decode = vectorize(_F10, cache=True)(_kernel.decode_s)
_compute = vectorize(_F10, cache=True)(_kernel.compute_s)
_kv_cache = vectorize(["float64(float64, float64, float64, float64, float64, boolean)"],
                      cache=True)(_kernel.kv_cache_bytes)


def kv_cache_bytes(b, S, N, sum_sn, kv: float, padded: bool):
    """KV-cache bytes of a batch.

    ``padded``: every sequence holds S + N positions, b * (S + N) * kv.
    ``exact`` (paged cache): request k holds s_k + n_k positions, sum_sn * kv.
    """
    return _kv_cache(b, S, N, sum_sn, kv, padded)


def prefill_time(b, S, P: float, L: int, d: int, W: float, kv: float, C: float, M: float):
    """Seconds of the prefill pass that produces the first output token.

    F = b (2 P S + 2 L d S (S + 1)) FLOP, Q = W + b S kv bytes, T = max(F / C, Q / M).
    """
    return _prefill(b, S, P, L, d, W, kv, C, M)


def decode_time(b, S, N, P: float, L: int, d: int, W: float, kv: float, C: float, M: float):
    """Seconds of the N - 1 decode steps, in closed form.

    Step j = 1 .. N - 1 attends over S + j positions:
    F_j = b (2 P + 4 L d (S + j)), Q_j = W + b (S + j) kv, T_j = max(F_j / C, Q_j / M).
    Both terms are linear in j, so their maximum changes side at most once; the sum is
    arithmetic series (see ``_kernel.decode_s``).
    """
    return _decode(b, S, N, P, L, d, W, kv, C, M)


def compute_time(b, S, N, P: float, L: int, d: int, W: float, kv: float, C: float, M: float):
    """T_C = prefill + all decode steps [s]."""
    return _compute(b, S, N, P, L, d, W, kv, C, M)
