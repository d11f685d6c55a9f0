"""Byte and parameter accounting of a built model and its KV cache, against the cost model.

:func:`model_stats` counts P (matmul parameters) and W (weight bytes a pass reads) of a built
model; :func:`cache_nbytes` measures a real KV cache and :func:`kv_per_token` is the cost
model's figure for it. Checks of other byte counts of SPEC 2.2 (e.g. the quantized weight
bytes of a scheme) belong here, next to these.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgellm.profiling.models import ScaledArch
from edgellm.system import cost


@dataclass(frozen=True)
class ModelStats:
    """What the cost model needs to know about a built model."""

    n_params_total: int    # every parameter (unique tensors)
    n_params_matmul: int   # P: parameters of nn.Linear modules (LM head included)
    weight_bytes_read: int  # W: bytes a forward pass reads in full (untied embeddings excluded)
    weight_bytes_total: int  # bytes of every parameter (memory footprint)
    element_bytes: int     # bytes per weight / KV element of the dtype that ran


def model_stats(model) -> ModelStats:
    """Count P and W of a built ``transformers`` model (see the module docstring)."""
    import torch.nn as nn

    linear_ids: set[int] = set()
    p_matmul = 0
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            for prm in (mod.weight, mod.bias):
                if prm is not None:
                    p_matmul += prm.numel()
                    linear_ids.add(id(prm))
    embed_only: set[int] = set()
    for mod in model.modules():
        if isinstance(mod, nn.Embedding) and id(mod.weight) not in linear_ids:
            embed_only.add(id(mod.weight))
    total = read = 0
    total_n = 0
    elem = 0
    for prm in model.parameters():  # unique tensors
        nbytes = prm.numel() * prm.element_size()
        elem = prm.element_size()
        total += nbytes
        total_n += prm.numel()
        if id(prm) not in embed_only:
            read += nbytes
    return ModelStats(total_n, p_matmul, read, total, elem)


def cache_nbytes(cache) -> int:
    """Bytes of every key and value tensor a ``transformers`` cache holds."""
    import torch

    if cache is None:
        return 0
    layers = getattr(cache, "layers", None)
    if layers is not None:
        tensors = [t for layer in layers for t in (getattr(layer, "keys", None),
                                                   getattr(layer, "values", None))]
    else:  # legacy tuple-of-tuples
        tensors = [t for layer in cache for t in layer]
    return int(sum(t.numel() * t.element_size() for t in tensors
                   if isinstance(t, torch.Tensor)))


def kv_per_token(arch: ScaledArch, element_bytes: int) -> float:
    """Cost-model KV bytes per token position of ``arch`` at ``element_bytes`` per element."""
    return cost.kv_bytes_per_token(arch.n_layers, arch.d_model, arch.n_heads, arch.n_kv_heads,
                                   8 * element_bytes)
