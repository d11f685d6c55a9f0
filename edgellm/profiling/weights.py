"""Weight-bytes check of ``edgellm profile``: the cost model's W (SPEC 2.2) against the real
tensors of a ``transformers`` decoder stored in each catalog format.

For every catalog quantization the model's weights are really quantized and packed the
way the format's checkpoints hold them: FP16 keeps every tensor at 2 bytes; W8A8
(SmoothQuant) stores each block linear weight as INT8 with one FP16 scale per tensor; W4A16
(AWQ / GPTQ, g128) stores each block linear weight as 4-bit integers packed eight to an
int32 (``qweight``), one FP16 scale and one 4-bit zero point (``qzeros``, packed eight to an
int32) per group of 128 input weights of each output row. Embeddings, the output layer and
the tensors outside the linear layers (norms, biases, learned position tables) stay FP16.
The real bytes are the sum of ``nbytes`` of those tensors.

The cost model counts the non-embedding parameters at the format's bits plus group
metadata, so it differs from the real bytes by the small 16-bit "other" tensors (exactly
others x (2 - bits per weight / 8) bytes when the group size divides every input width)
and by the per-tensor W8A8 scales; the check prints both figures and the difference.
"""

from __future__ import annotations

import math

from edgellm.system import catalog, cost
from edgellm.system.instance import Model


def _tensors(net):
    """(block linear modules, embedding/output weights, other parameters) of ``net``."""
    import torch.nn as nn

    emb_ids = {id(net.get_input_embeddings().weight)}
    out = net.get_output_embeddings()
    head = out.weight if out is not None else None
    if head is not None:
        emb_ids.add(id(head))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear) and m is not out]
    lin_ids = {id(m.weight) for m in linears}
    params = list(net.parameters())  # unique tensors
    emb = [p for p in params if id(p) in emb_ids]
    other = [p for p in params if id(p) not in emb_ids and id(p) not in lin_ids]
    tied = head is not None and head is net.get_input_embeddings().weight
    return linears, emb, other, tied


def _pack(q, bits: int):
    """Pack unsigned ``bits``-bit integers (last dim a multiple of 32 / bits) into int32."""
    import torch

    per = 32 // bits
    q = q.to(torch.int64).reshape(*q.shape[:-1], q.shape[-1] // per, per)
    shifts = torch.arange(0, 32, bits, dtype=torch.int64)
    return ((q << shifts).sum(-1) & 0xFFFFFFFF).to(torch.int32)


def quantized_linear(weight, scheme: dict) -> list:
    """The tensors a checkpoint of ``scheme`` stores for one linear ``weight`` (out, in)."""
    import torch

    w = weight.detach().float()
    bits, g = int(scheme["weight_bits"]), int(scheme.get("group_size") or 0)
    if bits >= 16:
        return [w.half()]
    if not g:  # per-tensor symmetric INT8 (SmoothQuant O1-O3)
        scale = w.abs().max().clamp_min(1e-12) / 127.0
        return [torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale.half()[None]]
    out_f, in_f = w.shape
    n_groups = math.ceil(in_f / g)
    pad = n_groups * g - in_f
    wg = torch.nn.functional.pad(w, (0, pad)).reshape(out_f, n_groups, g)
    lo, hi = wg.amin(-1), wg.amax(-1)
    levels = 2 ** bits - 1
    scale = ((hi - lo) / levels).clamp_min(1e-12)
    zero = torch.round(-lo / scale).clamp(0, levels)
    q = (torch.round(wg / scale[..., None]) + zero[..., None]).clamp(0, levels)
    qweight = _pack(q.reshape(out_f, n_groups * g), bits)  # input padded to whole groups
    zbits = int(scheme.get("zero_bits") or bits)
    zeros_t = zero.t().contiguous()  # (groups, out): packed along the output dimension
    zpad = (-zeros_t.shape[-1]) % (32 // zbits)
    qzeros = _pack(torch.nn.functional.pad(zeros_t, (0, zpad)), zbits)
    return [qweight, scale.t().contiguous().half(), qzeros]


def weight_check(net, model_name: str) -> list[dict]:
    """Per catalog format of ``model_name``: the cost model's W of the built ``net`` and the
    bytes of its real quantized tensors (see the module docstring)."""
    linears, emb, other, tied = _tensors(net)
    n_total = sum(p.numel() for p in net.parameters())
    vocab, d = net.get_input_embeddings().weight.shape
    cfg = net.config
    n_heads = cfg.num_attention_heads
    m = Model(model_name + "-scaled", n_layers=cfg.num_hidden_layers, d_model=d,
              n_heads=n_heads, n_kv_heads=getattr(cfg, "num_key_value_heads", None) or n_heads,
              n_params=float(n_total), vocab_size=int(vocab), tied_embeddings=tied)
    rows = []
    for scheme in catalog.quantizations():
        try:
            q = catalog.quant(scheme, model_name)
        except Exception:  # no published perplexity for this pair: not in the catalog
            continue
        spec = q.to_dict()
        _, W = cost.model_costs(m, q)
        blocks_only = q.covers == "blocks"
        real = 0
        for lin in linears:
            tensors = quantized_linear(lin.weight, spec if blocks_only else {"weight_bits": 16})
            real += sum(t.numel() * t.element_size() for t in tensors)
        real += sum(p.numel() * 2 for p in emb + other)  # biases are among the others
        rows.append({"scheme": scheme, "model_bytes": W, "real_bytes": real,
                     "rel_diff": (W - real) / real,
                     "other_16bit_params": sum(p.numel() for p in other)})
    return rows


def weight_check_text(rows: list[dict]) -> str:
    """One line per format, for the profile summary."""
    return "\n".join(
        f"weights {r['scheme']}: cost model W = {r['model_bytes']:,.0f} B, real tensors "
        f"{r['real_bytes']:,} B ({100 * r['rel_diff']:+.2f}%; {r['other_16bit_params']:,} "
        "norm/bias/position parameters stay 16-bit)" for r in rows)
