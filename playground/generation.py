"""Text generation: a KV-cached streaming loop, and the book's reference loop.

``stream_ids`` is the engine: ids in, ids and distributions out, no
tokenizer. ``stream_generate`` / ``generate`` add text on top.

When no hook is attached (and the model is in eval mode) the forward passes
run on :mod:`playground.fast_decode`'s prepared weights in the chosen
``precision``; otherwise on the model itself, so hooks see every step.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Iterator, Protocol

import torch

from .fast_decode import fast_weights, precision_for
from .model import GPTModel
from .sampling import IdStep, SamplingParams, pick_next
from .tokenizer import Tokenizer, get_tokenizer



class SharedBatch(Protocol):
    """What :func:`stream_generate` needs of a shared batch (:class:`playground.batching.Batcher`), named
    here so that the engine's loop does not import the batcher (which would close an import cycle)."""

    def stream(self, model: GPTModel, idx: torch.Tensor, max_new_tokens: int, params: SamplingParams,
               generator: torch.Generator | None = None, stop_id: int | None = None,
               precision: str | None = None) -> Iterator[IdStep]: ...


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A private RNG for one request: nothing is seeded globally (users share a server)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


@torch.inference_mode()
def stream_ids(model: GPTModel, idx: torch.Tensor, max_new_tokens: int, params: SamplingParams,
               generator: torch.Generator | None = None, stop_id: int | None = None,
               precision: str | None = None) -> Iterator[IdStep]:
    """Yield one :class:`IdStep` per new token for a batch of equal-length prompts ``(B, T)``.

    The prompt is prefilled once; each later step feeds one token through the
    KV cache. Once prompt + output exceed the context length, each step runs on
    the last ``context_length`` tokens only, as the book's ``idx[:, -context_size:]``
    does (positions restart at 0, so the cache is rebuilt for that window).
    Stops early when every row has produced ``stop_id``.

    ``precision`` ("fp32", "bf16", "int8"; None: the model's own dtype) picks
    the fast path's weights; with hooks attached the model's forward runs instead.
    """
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError("the prompt must contain at least one token")
    ctx = model.cfg.context_length
    idx = idx.to(model.device)
    cache_len = min(ctx, idx.shape[1] + max_new_tokens)
    fast = precision_for(model, precision)
    if fast is not None:
        weights = fast_weights(model, fast)
        cache = weights.new_cache(idx.shape[0], cache_len)
        forward = weights.forward                                            # -> (B, V)
    else:
        cache = model.new_cache(idx.shape[0], cache_len)

        def forward(ids: torch.Tensor, cache) -> torch.Tensor:
            return model(ids, cache)[:, -1]
    cropped = idx.shape[1] > ctx
    logits = forward(idx[:, -ctx:], cache)                                   # (B, V)
    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    seq = torch.empty(idx.shape[0], idx.shape[1] + max_new_tokens, dtype=idx.dtype, device=idx.device)
    seq[:, :idx.shape[1]] = idx                   # (B, T + new): filled in place, never concatenated
    n = idx.shape[1]
    for step in range(max_new_tokens):
        next_ids, probs = pick_next(logits, params, generator)                # (B,), (B, V)
        yield IdStep(next_ids, probs, cropped)
        if stop_id is not None:
            finished |= next_ids == stop_id
            if bool(finished.all()):
                return
        if step == max_new_tokens - 1:
            return
        seq[:, n] = next_ids
        n += 1
        if cache.length < ctx:
            logits = forward(next_ids[:, None], cache)
        else:
            cropped = True
            cache.reset()
            logits = forward(seq[:, max(0, n - ctx):n], cache)                # (B, ctx) the last window


def generate_text_simple(model: GPTModel, idx: torch.Tensor, max_new_tokens: int,
                         context_size: int) -> torch.Tensor:
    """The book's greedy loop, verbatim: recompute the whole window every step."""
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        logits = logits[:, -1, :]
        probas = torch.softmax(logits, dim=-1)
        idx_next = torch.argmax(probas, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


@dataclass
class TokenStep:
    """One generated token, as the UI shows it."""

    step: int
    id: int
    text: str
    prob: float                               # in the distribution it was drawn from
    top: list[tuple[int, str, float]]         # the k most likely alternatives (id, text, prob)
    cropped: bool                             # the context window was exceeded


@dataclass
class GenerationResult:
    prompt_ids: list[int]
    ids: list[int]
    text: str
    steps: list[TokenStep] = field(default_factory=list)
    cropped: bool = False
    crop_started_at: int | None = None        # index of the first step computed on a cropped window
    stopped_at_eot: bool = False
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else 0.0


def stream_generate(model: GPTModel, prompt: "str | list[int]", max_new_tokens: int = 50, *,
                    temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
                    seed: int | None = None, n_alternatives: int = 5, stop_at_eot: bool = True,
                    tokenizer: Tokenizer | None = None, precision: str | None = None,
                    batcher: SharedBatch | None = None) -> Iterator[TokenStep]:
    """Stream a continuation of ``prompt`` token by token (batch 1).

    ``precision``: see :func:`stream_ids` (None: the model's own dtype). With a ``batcher``
    (:class:`playground.batching.Batcher`) the tokens are decoded in its shared batch, with the
    same ids as alone.
    """
    tok = tokenizer or get_tokenizer()
    prompt_ids = tok.encode(prompt) if isinstance(prompt, str) else list(prompt)
    if not prompt_ids:
        raise ValueError("the prompt is empty: type some text to continue")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
    params = SamplingParams(temperature=temperature, top_k=top_k or None, top_p=top_p)
    generator = make_generator(seed, model.device)
    idx = torch.tensor([prompt_ids], dtype=torch.long)
    stop_id = tok.eot_id if stop_at_eot else None
    k = max(1, min(n_alternatives, model.cfg.vocab_size))
    source = functools.partial(batcher.stream if batcher is not None else stream_ids, model)
    for step, out in enumerate(source(idx, max_new_tokens, params, generator, stop_id, precision=precision)):
        token_id = int(out.ids[0])
        probs = out.probs[0]                                                    # (V,)
        top_p_vals, top_ids = torch.topk(probs, k)                              # (k,), (k,)
        top = [(i, tok.token_text(i), p) for p, i in zip(top_p_vals.tolist(), top_ids.tolist())]
        yield TokenStep(step, token_id, tok.token_text(token_id), probs[token_id].item(), top, out.cropped)


def generate(model: GPTModel, prompt: "str | list[int]", max_new_tokens: int = 50,
             tokenizer: Tokenizer | None = None, **kwargs) -> GenerationResult:
    """Non-streaming wrapper around :func:`stream_generate`."""
    tok = tokenizer or get_tokenizer()
    prompt_ids = tok.encode(prompt) if isinstance(prompt, str) else list(prompt)
    start = time.perf_counter()
    steps = list(stream_generate(model, prompt_ids, max_new_tokens, tokenizer=tok, **kwargs))
    ids = [s.id for s in steps]
    crop_at = next((s.step for s in steps if s.cropped), None)
    return GenerationResult(
        prompt_ids=prompt_ids, ids=ids, text=tok.decode(ids), steps=steps,
        cropped=crop_at is not None, crop_started_at=crop_at,
        stopped_at_eot=bool(ids) and ids[-1] == tok.eot_id and kwargs.get("stop_at_eot", True),
        seconds=time.perf_counter() - start,
    )
