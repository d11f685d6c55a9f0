"""Media payloads of multimodal requests: images for a vision-language model, spoken
questions and spoken answers (docs/model.md, "Media").

The cited figures live in ``data/media.yaml``; this module derives what the slot problem
needs from them (vision-encoder FLOPs per image, bits and tokens per second of speech)
and draws the media of a request mix. A request's media enter the slot problem through
four :class:`~edgellm.system.instance.Request` fields: ``media_tokens`` (prefill tokens),
``uplink_media_bits``, ``downlink_media_bits`` and ``encoder_flops``.

Units: FLOP, bit, bit/s, token/s, s.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numba.np.random.distributions import random_lognormal, random_uniform
from numba.np.random.generator_core import next_double

from edgellm.system import catalog
from edgellm.system._rng import bitgen, draw_lengths, pointers
from edgellm.system.instance import InstanceError
from edgellm.system.workloads import length_params

KINDS = ("text", "image", "voice")
TEXT, IMAGE, VOICE = range(len(KINDS))
# columns of a media draw: the Request fields, in this order
COLUMNS = ("media_tokens", "uplink_media_bits", "downlink_media_bits", "encoder_flops")
_Z90 = 1.2815515655446004  # standard normal 90% quantile


def _table(section: str) -> dict:
    return catalog._load("media")[section]


def _named(section: str, name: str) -> dict:
    entries = _table(section)
    if name not in entries:
        raise InstanceError(f"media.yaml: unknown {section} entry {name!r}; "
                            f"known: {', '.join(sorted(entries))}")
    return entries[name]


def vision_models() -> list[str]:
    """Catalog models with a vision encoder (vision-language models)."""
    return sorted(_table("vision_language_models"))


def image_tokens(model: str) -> int:
    """Prefill tokens per image of vision-language model ``model`` (576 for LLaVA-1.5)."""
    return int(_named("vision_language_models", model)["image_tokens"])


@functools.cache
def vision_flops_per_image(model: str) -> float:
    """FLOPs of one image through ``model``'s vision tower and projector.

    ViT over n = (image / patch)^2 + 1 tokens (patches + class token) with P_vit
    parameters, L layers of width w: 2 n P_vit (every weight once per token) +
    4 L n^2 w (attention scores and weighted sum); projector: 2 t P_proj over the t image
    tokens handed to the LLM.
    """
    vlm = _named("vision_language_models", model)
    enc = _named("vision_encoders", vlm["vision_encoder"])
    n = (enc["image_size"] // enc["patch_size"]) ** 2 + 1
    vit = 2.0 * n * enc["n_params"] + 4.0 * enc["n_layers"] * n * n * enc["width"]
    return vit + 2.0 * vlm["image_tokens"] * vlm["projector_params"]


def image_size_lognormal(source: str) -> tuple[float, float]:
    """(mu, sigma) of the log-normal image size in bits, from its median and 90% point."""
    img = _named("images", source)
    mu = math.log(8.0 * img["bytes_median"])
    return mu, math.log(img["bytes_p90"] / img["bytes_median"]) / _Z90


def speech_bps(codec: str) -> float:
    """Bit rate [bit/s] of speech codec ``codec``."""
    return float(_named("speech", codec)["bitrate_bps"])


def speech_tokens_per_s() -> float:
    """Tokens per second of speech: words per minute / 60 * tokens per word."""
    sp = catalog._load("media")["speaking"]
    return sp["words_per_minute"] / 60.0 * sp["tokens_per_word"]


@dataclass(frozen=True)
class MediaMix:
    """Draws the media of a mix of text, image and voice requests.

    Per request, a kind is drawn with probabilities ``shares`` (text, image, voice):

    * text: no media.
    * image: one photo of log-normal size (``image_source``) on the uplink, which becomes
      ``image_tokens`` prefill tokens after the vision encoder (``encoder_flops``), with a
      typed question of ``question_trace`` prompt length (single turn, no history).
    * voice: a spoken question of ``question_s`` seconds (uniform) on the uplink at the
      codec rate and no typed text, transcribed into question seconds x tokens/s prefill
      tokens; the answer is spoken back: its n output tokens take n / (tokens/s) seconds
      of speech at the codec rate on the downlink.

    Every call draws the same number of values whatever the kinds (common random numbers).
    """

    shares: tuple[float, float, float]
    model: str
    image_source: str = "phone-photo-messaging"
    speech_codec: str = "opus-wideband"
    question_s: tuple[float, float] = (2.0, 10.0)
    question_trace: str = "lmsys-chat-1m"
    max_question: int = 1024

    @functools.cached_property
    def constants(self):
        """(image tokens, encoder FLOPs per image, image size log-normal (mu, sigma),
        speech codec bit/s, speech tokens/s)."""
        img = self.shares[IMAGE] > 0
        return (image_tokens(self.model) if img else 0,
                vision_flops_per_image(self.model) if img else 0.0,
                image_size_lognormal(self.image_source), speech_bps(self.speech_codec),
                speech_tokens_per_s())

    @functools.cached_property
    def cumulative_shares(self) -> np.ndarray:
        """Cumulative shares of text, image and voice (normalised): a uniform draw u is
        of the first kind whose cumulative share exceeds u."""
        return np.cumsum(self.shares) / np.sum(self.shares)

    @functools.cached_property
    def kernel_constants(self) -> tuple[np.ndarray, np.ndarray]:
        """What :func:`draw_media` needs: (image tokens, encoder FLOPs, image size mu and
        sigma, question seconds low and span, codec bit/s, speech tokens/s, typed question
        length mu, sigma and cap) and :attr:`cumulative_shares`."""
        tokens, flops, (mu, sigma), bps, tps = self.constants
        lo, hi = self.question_s
        c = np.array([tokens, flops, mu, sigma, lo, hi - lo, bps, tps,
                      *length_params(self.question_trace, "prompt", self.max_question)])
        return c, np.asarray(self.cumulative_shares, dtype=float)

    def draw(self, rng: np.random.Generator, prompt_tokens: np.ndarray,
             output_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Text prompt tokens and (K, 4) media columns (:data:`COLUMNS`) for K requests
        whose text-request lengths are ``prompt_tokens`` and ``output_tokens``; the draws
        from ``rng`` are :func:`draw_media`'s."""
        output = np.ascontiguousarray(output_tokens, dtype=np.int64)
        prompt = np.array(prompt_tokens, dtype=np.int64)
        if prompt.ndim != 1 or prompt.shape != output.shape:
            # the compiled draw writes prompt[k] for every output[k] without bounds checks
            raise InstanceError(f"MediaMix.draw: prompt_tokens (shape {prompt.shape}) and "
                                f"output_tokens (shape {output.shape}) must be 1-D arrays "
                                f"of the same length")
        out = np.zeros((output.size, len(COLUMNS)))
        _draw_media_at(pointers(rng), *self.kernel_constants, output, prompt, out)
        return prompt, out


@njit(cache=True, nogil=True)
def draw_media(bg, c, cum, output, prompt, media):
    """The media of K requests from bit generator ``bg`` (:meth:`MediaMix.draw`; ``c``,
    ``cum``: its :attr:`~MediaMix.kernel_constants`): ``prompt`` (the K text prompt lengths)
    is overwritten with the typed text and ``media`` (K, 4, zeros) filled, given the output
    lengths ``output``. Drawn in this order, as NumPy's Generator methods would: K
    ``random()`` (the kind: the first whose cumulative share exceeds it), K
    ``lognormal(mu, sigma)`` image sizes [bit], K ``uniform(*question_s)`` spoken question
    seconds, K typed question lengths (:func:`~edgellm.system.workloads.length_sampler`
    of ``question_trace``)."""
    K = output.size
    u = np.empty(K)
    size = np.empty(K)
    question = np.empty(K)
    typed = np.empty(K, np.int64)
    for k in range(K):
        u[k] = next_double(bg)
    for k in range(K):
        size[k] = random_lognormal(bg, c[2], c[3])
    for k in range(K):
        question[k] = random_uniform(bg, c[4], c[5])
    draw_lengths(bg, c[8], c[9], c[10], typed)
    for k in range(K):
        kind = 0
        for i in range(cum.size):
            kind += cum[i] <= u[k]
        if kind == IMAGE:
            media[k, 0] = c[0]
            media[k, 1] = np.rint(size[k])
            media[k, 3] = c[1]
            prompt[k] = typed[k]
        elif kind == VOICE:
            media[k, 0] = max(np.rint(question[k] * c[7]), 1.0)
            media[k, 1] = np.rint(question[k] * c[6])
            media[k, 2] = np.rint(output[k] / c[7] * c[6])
            prompt[k] = 0


@njit(cache=True, nogil=True)
def _draw_media_at(ptrs, c, cum, output, prompt, media):
    draw_media(bitgen(ptrs), c, cum, output, prompt, media)
