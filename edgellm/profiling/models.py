"""Scaled-down ``transformers`` decoders of the catalog's model families (no weights are
downloaded: the models are randomly initialised)."""

from __future__ import annotations

from dataclasses import dataclass

from edgellm.errors import EdgeLLMError

# Catalog family -> (HF config kind, FFN width / d_model of the full-size model).
FAMILIES: dict[str, tuple[str, float]] = {
    "llama-2": ("llama", 11008 / 4096),
    "llama-3": ("llama", 14336 / 4096),
    "llava-1.5": ("llama", 11008 / 4096),  # its language model (Vicuna v1.5: Llama-2 shapes)
    "mistral": ("mistral", 14336 / 4096),
    "opt": ("opt", 4.0),
    "bloom": ("bloom", 4.0),
}


@dataclass(frozen=True)
class ScaledArch:
    """A scaled-down copy of a catalog architecture (same family, head-group ratio)."""

    model: str        # catalog name it is scaled from
    kind: str         # llama | mistral | opt | bloom
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn: int          # MLP hidden width
    vocab: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def _family(model: str) -> tuple[str, float]:
    for prefix, fam in FAMILIES.items():
        if model.startswith(prefix):
            return fam
    raise EdgeLLMError(f"--model: no transformers family known for {model!r}")


def scaled_arch(model: str, n_layers: int = 8, d_model: int = 1024,
                vocab: int = 4096) -> ScaledArch:
    """Scale catalog ``model`` down to ``n_layers`` x ``d_model``.

    Keeps the family, the FFN/d_model ratio and the query-heads per KV-head ratio; heads are 64
    wide (32 below d_model 512). Raises EdgeLLMError naming the option on bad sizes.
    """
    from edgellm.system import catalog

    known = catalog.models()
    if model not in known:
        raise EdgeLLMError(f"--model: unknown model {model!r}; known: {', '.join(known)}")
    full = catalog.model(model)
    kind, ffn_ratio = _family(model)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise EdgeLLMError(f"--layers: must be an integer >= 1, got {n_layers!r}")
    if not isinstance(vocab, int) or vocab < 16:
        raise EdgeLLMError(f"--vocab: must be an integer >= 16, got {vocab!r}")
    group = full.n_heads // full.n_kv_heads
    head_dim = 64 if d_model >= 512 else 32
    if not isinstance(d_model, int) or d_model < head_dim or d_model % (head_dim * group):
        raise EdgeLLMError(f"--d-model: must be a multiple of {head_dim * group} "
                           f"({group} query heads per KV head of {head_dim}) for {model}, "
                           f"got {d_model!r}")
    n_heads = d_model // head_dim
    ffn = max(32, int(round(ffn_ratio * d_model / 32)) * 32)
    return ScaledArch(model, kind, n_layers, d_model, n_heads, n_heads // group, ffn, vocab)


def hf_config(arch: ScaledArch):
    """The ``transformers`` config of ``arch`` (dropout off, no sliding window)."""
    import transformers as tf

    if arch.kind in ("llama", "mistral"):
        cls = tf.LlamaConfig if arch.kind == "llama" else tf.MistralConfig
        extra = {} if arch.kind == "llama" else {"sliding_window": None}
        return cls(vocab_size=arch.vocab, hidden_size=arch.d_model,
                   intermediate_size=arch.ffn, num_hidden_layers=arch.n_layers,
                   num_attention_heads=arch.n_heads, num_key_value_heads=arch.n_kv_heads,
                   head_dim=arch.head_dim, max_position_embeddings=4096,
                   tie_word_embeddings=False, **extra)
    if arch.kind == "opt":
        return tf.OPTConfig(vocab_size=arch.vocab, hidden_size=arch.d_model,
                            ffn_dim=arch.ffn, num_hidden_layers=arch.n_layers,
                            num_attention_heads=arch.n_heads, word_embed_proj_dim=arch.d_model,
                            max_position_embeddings=4096, dropout=0.0, attention_dropout=0.0,
                            do_layer_norm_before=True, enable_bias=True)
    if arch.kind == "bloom":
        return tf.BloomConfig(vocab_size=arch.vocab, hidden_size=arch.d_model,
                              n_layer=arch.n_layers, n_head=arch.n_heads,
                              hidden_dropout=0.0, attention_dropout=0.0)
    raise EdgeLLMError(f"--model: no transformers config for family {arch.kind!r}")


def build_model(arch: ScaledArch, dtype, device: str = "cpu", seed: int = 0):
    """Randomly initialised causal LM of ``arch`` in ``dtype`` on ``device``, in eval mode."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(hf_config(arch))
    return model.to(device=device, dtype=dtype).eval()
