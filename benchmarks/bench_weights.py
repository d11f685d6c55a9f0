"""Weight bytes of the catalog: revised W against version 0.1, and against real tensors.

Part 1: for every catalog model and quantization, the cost model's W (16-bit embeddings,
group metadata) against the version-0.1 W = n_params * weight_bits / 8, and the P of the
FLOP terms against n_params. Part 2: ``edgellm profile``'s weight check on the scaled
``transformers`` models (default profile size: 8 layers x d 1024, vocabulary 4096): the
cost model's W against the bytes of the really quantized and packed tensors.

    .venv/bin/python benchmarks/bench_weights.py
"""

from __future__ import annotations

import time


def main() -> None:
    from edgellm.system import catalog, cost

    t0 = time.perf_counter()
    print("## full-size catalog models: W revised vs version 0.1")
    print(f"{'model':>12} {'quant':>6} {'W GB':>8} {'W 0.1 GB':>9} {'change':>7} "
          f"{'P / n_params':>12}")
    for m in catalog.models():
        mm = catalog.model(m)
        for q in catalog.quantizations():
            try:
                qq = catalog.quant(q, m)
            except Exception:
                continue
            P, W = cost.model_costs(mm, qq)
            W0 = cost.weight_bytes(mm.n_params, qq.weight_bits)
            print(f"{m:>12} {q:>6} {W / 1e9:8.3f} {W0 / 1e9:9.3f} {100 * (W / W0 - 1):+6.1f}% "
                  f"{P / mm.n_params:12.4f}")
    try:
        import torch

        from edgellm.profiling import build_model, scaled_arch
        from edgellm.profiling.weights import weight_check
    except ImportError:
        print("part 2 needs torch and transformers")
        return
    print("\n## scaled transformers models (8 x 1024, vocab 4096): cost model W vs real tensors")
    print(f"{'model':>12} {'quant':>6} {'W model B':>13} {'real B':>13} {'diff':>7} "
          f"{'16-bit others':>13}")
    for m in catalog.models():
        net = build_model(scaled_arch(m, 8, 1024, 4096), torch.float32)
        for r in weight_check(net, m):
            print(f"{m:>12} {r['scheme']:>6} {r['model_bytes']:13,.0f} {r['real_bytes']:13,} "
                  f"{100 * r['rel_diff']:+6.2f}% {r['other_16bit_params']:13,}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
