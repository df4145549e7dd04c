"""The KV cache filling up during a greedy generation, read from the cache object itself.

``model.new_cache(1, n)`` preallocates, per layer, keys and values of shape
``(1, H, n, D)``; each forward pass writes its tokens' keys and values after the
cached ones and advances ``cache.length``. After the prefill and after each new
token this view records the cache's length, the shape of what is filled
(``(layers, 2, heads, T, head_dim)``), the bytes used and allocated, and the
work of that step — multiply-accumulates (MACs) counted from the tensors that
really passed (the query and key shapes at ``hook_q``/``hook_k``, the weight
and input shapes of every ``nn.Linear``) — next to the work the book's
``generate_text_simple`` would do for the same token by re-running the whole
sequence. Embedding look-ups, LayerNorm, GELU, softmax and additions are not
counted (a few operations per number, not per weight).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..hooks import hooks
from ..kv_cache import KVCache
from ..model import GPTModel
from .inputs import TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare, this_thread_only

CONTEXT_NOTE = (
    "The book's generate_text_simple re-runs the whole sequence for every new token and, once it is "
    "longer than the context, keeps only the last context_length tokens (idx[:, -context_size:]). "
    "A KV cache cannot simply grow past that: pos_emb has only context_length rows, and cropping "
    "shifts every token to a new position, so every cached key and value would be stale; the cache "
    "would have to be emptied and refilled with the cropped window. This view stops at the context.")
CONTEXT_NOTE_ZH = (
    "书中的 generate_text_simple 每生成一个词元都重新计算整个序列，序列超过上下文长度后只保留最后 "
    "context_length 个词元（idx[:, -context_size:]）。KV 缓存不能简单地继续增长：pos_emb 只有 "
    "context_length 行，而截断会让每个词元的位置都变化，缓存的键和值全部失效，只能清空后用截断后的窗口重新填充。"
    "本视图在上下文长度处停止。")


@dataclass(frozen=True)
class Work:
    """MACs of one forward pass, counted from the shapes seen, and what a full re-run would cost.

    ``attention``: q·kᵀ plus weights @ v, ``2 * B * H * Tq * Tk * D`` per layer;
    ``linear``: ``rows * in_features * out_features`` per nn.Linear call (the head included).
    The ``*_recompute`` twins are the same layers on all ``Tk`` positions with ``Tk`` queries.
    """

    n_query: int                 # Tq: tokens fed in this pass
    n_key: int                   # Tk: keys each query saw (cached + new)
    n_layers: int                # layers whose attention ran
    n_heads: int
    attention: int
    linear: int
    attention_recompute: int
    linear_recompute: int

    @property
    def total(self) -> int:
        return self.attention + self.linear

    @property
    def attention_per_head(self) -> int:
        """One head of one layer: ``2 * Tq * Tk * D`` (batch 1)."""
        return self.attention // max(1, self.n_layers * self.n_heads)

    @property
    def attention_per_head_recompute(self) -> int:
        return self.attention_recompute // max(1, self.n_layers * self.n_heads)

    @property
    def total_recompute(self) -> int:
        return self.attention_recompute + self.linear_recompute


@contextmanager
def count_work(model: GPTModel) -> Iterator[dict[str, list]]:
    """Record, during the block, every layer's q/k/v shapes and every Linear call's (rows, in, out).

    Hooks are removed afterwards and act only in this thread.
    """
    seen: dict[str, list] = {"q": [], "k": [], "v": [], "linear": []}

    def shape_of(kind: str):
        return this_thread_only(lambda t, name: seen[kind].append(tuple(t.shape)))

    points = {}
    for i in range(model.cfg.n_layers):
        for kind in ("q", "k", "v"):
            points[f"trf_blocks.{i}.att.hook_{kind}"] = shape_of(kind)
    owner = threading.get_ident()

    def on_linear(module: nn.Linear, args: tuple, output: torch.Tensor) -> None:
        if threading.get_ident() == owner:
            rows = args[0].numel() // args[0].shape[-1]
            seen["linear"].append((rows, module.in_features, module.out_features))

    handles = []
    try:
        for m in model.modules():
            if isinstance(m, nn.Linear):
                handles.append(m.register_forward_hook(on_linear))
        with hooks(model, points):
            yield seen
    finally:
        for h in handles:
            h.remove()


def work_from_shapes(seen: dict[str, list]) -> Work:
    """MACs of the recorded pass and of re-running all ``Tk`` positions without a cache."""
    attention = attention_re = 0
    n_query = n_key = n_heads = 0
    for (b, h, tq, d), (_, _, tk, _), (_, _, tv, _) in zip(seen["q"], seen["k"], seen["v"]):
        attention += b * h * tq * tk * d + b * h * tq * tv * d      # q @ kᵀ, then weights @ v
        attention_re += b * h * tk * tk * d + b * h * tv * tv * d   # every position again
        n_query, n_key, n_heads = tq, tk, h
    linear = sum(rows * i * o for rows, i, o in seen["linear"])
    linear_re = sum(rows // max(n_query, 1) * n_key * i * o for rows, i, o in seen["linear"])
    return Work(n_query=n_query, n_key=n_key, n_layers=len(seen["q"]), n_heads=n_heads,
                attention=attention, linear=linear,
                attention_recompute=attention_re, linear_recompute=linear_re)


@dataclass(frozen=True)
class KVStep:
    """The cache after one forward pass (step 0: the prefill, then one per new token)."""

    step: int
    kind: str                    # "prefill" | "decode"
    fed_ids: tuple[int, ...]     # tokens this pass wrote into the cache
    fed_tokens: tuple[str, ...]
    next_id: int                 # greedy prediction after this pass
    next_token: str
    cache_length: int            # cache.length after the pass
    kv_shape: tuple[int, int, int, int, int]   # (layers, 2, heads, T, head_dim), filled part
    bytes_used: int
    bytes_allocated: int
    work: Work

    def data(self) -> dict:
        w = self.work
        return {"step": self.step, "kind": self.kind, "fed_ids": list(self.fed_ids),
                "fed_tokens": list(self.fed_tokens), "next_id": self.next_id, "next_token": self.next_token,
                "cache_length": self.cache_length, "kv_shape": list(self.kv_shape),
                "bytes_used": self.bytes_used, "bytes_allocated": self.bytes_allocated,
                "work": {"n_query": w.n_query, "n_key": w.n_key, "n_layers": w.n_layers, "n_heads": w.n_heads,
                         "attention_per_head_cached": w.attention_per_head,
                         "attention_per_head_recompute": w.attention_per_head_recompute,
                         "attention_cached": w.attention,
                         "linear_cached": w.linear, "total_cached": w.total,
                         "attention_recompute": w.attention_recompute, "linear_recompute": w.linear_recompute,
                         "total_recompute": w.total_recompute}}


@dataclass(frozen=True)
class KVTrace:
    prompt_ids: tuple[int, ...]          # as run (cropped to the context if it was longer)
    prompt_tokens: tuple[str, ...]
    generated_ids: tuple[int, ...]       # the new tokens fed through the cache
    generated_tokens: tuple[str, ...]
    n_new_requested: int
    context_length: int
    max_len: int                         # positions allocated
    dtype: str
    element_size: int
    stopped_at_context: bool
    note: str
    note_zh: str
    steps: tuple[KVStep, ...]

    def data(self) -> dict:
        return {"prompt_ids": list(self.prompt_ids), "prompt_tokens": list(self.prompt_tokens),
                "generated_ids": list(self.generated_ids), "generated_tokens": list(self.generated_tokens),
                "n_new_requested": self.n_new_requested, "context_length": self.context_length,
                "max_len": self.max_len, "dtype": self.dtype, "element_size": self.element_size,
                "stopped_at_context": self.stopped_at_context, "note": self.note, "note_zh": self.note_zh,
                "steps": [s.data() for s in self.steps]}


def cache_state(cache: KVCache) -> tuple[tuple[int, int, int, int, int], int, int]:
    """(filled shape (layers, 2, heads, T, head_dim), bytes filled, bytes allocated) of a KVCache."""
    n = cache.length
    first = cache.layers[0].keys                                              # (B, H, max_len, D)
    used = sum(t[:, :, :n].numel() * t.element_size()
               for layer in cache.layers for t in (layer.keys, layer.values))
    allocated = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return (len(cache.layers), 2, int(first.shape[1]), n, int(first.shape[3])), used, allocated


@torch.inference_mode()
def kv_cache_trace(model: GPTModel, prompt_ids: TokenInput, n_new: int, *,
                   tokenizer: TokenizerLike | None = None) -> KVTrace:
    """Greedy generation of ``n_new`` tokens through ``model.new_cache``, recorded step by step.

    Each new token is fed back through the cache (so the cache ends holding
    prompt + new tokens). When prompt + ``n_new`` exceeds the context length, the
    run stops once the cache holds ``context_length`` positions, and says so.
    """
    if isinstance(n_new, bool) or not isinstance(n_new, int) or n_new < 0:
        raise ValueError(f"n_new must be a whole number >= 0, got {n_new!r}")
    ctx = model.cfg.context_length
    prep = prepare(model, prompt_ids, tokenizer=tokenizer)
    label = make_label_fn(model, tokenizer)
    n_prompt = prep.n_tokens
    max_len = min(n_prompt + n_new, ctx)
    cache = model.new_cache(1, max_len)
    steps: list[KVStep] = []
    fed = prep.ids                                                            # (1, T)
    generated: list[int] = []
    with eval_mode(model):
        while True:
            with count_work(model) as seen:
                logits = model(fed, cache)                                    # (1, Tq, V)
            next_id = int(torch.argmax(logits[0, -1]))
            shape, used, allocated = cache_state(cache)
            ids = tuple(fed[0].tolist())
            steps.append(KVStep(
                step=len(steps), kind="prefill" if not steps else "decode", fed_ids=ids,
                fed_tokens=tuple(label(i) for i in ids), next_id=next_id, next_token=label(next_id),
                cache_length=cache.length, kv_shape=shape, bytes_used=used, bytes_allocated=allocated,
                work=work_from_shapes(seen)))
            if len(generated) == n_new or cache.length >= max_len:
                break
            generated.append(next_id)
            fed = torch.tensor([[next_id]], dtype=torch.long, device=model.device)
    stopped = len(generated) < n_new
    notes = [prep.note] if prep.note else []
    notes_zh = [f"提示有 {prep.original_length} 个词元，只保留最后 {ctx} 个。"] if prep.cropped else []
    if stopped:
        notes.append(f"Stopped at the context length ({ctx} positions): {len(generated)} of the {n_new} "
                     f"new tokens fit after the {n_prompt}-token prompt.")
        notes_zh.append(f"在上下文长度（{ctx} 个位置）处停止：{n_prompt} 个词元的提示之后只放得下 "
                        f"{n_new} 个新词元中的 {len(generated)} 个。")
    notes.append(CONTEXT_NOTE)
    notes_zh.append(CONTEXT_NOTE_ZH)
    p = model.tok_emb.weight
    return KVTrace(
        prompt_ids=tuple(prep.token_ids), prompt_tokens=prep.labels, generated_ids=tuple(generated),
        generated_tokens=tuple(label(i) for i in generated), n_new_requested=n_new, context_length=ctx,
        max_len=max_len, dtype=str(p.dtype).replace("torch.", ""), element_size=p.element_size(),
        stopped_at_context=stopped, note=" ".join(notes), note_zh="".join(notes_zh), steps=tuple(steps))
