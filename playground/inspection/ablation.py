"""Ablation: switch attention heads or MLPs off and see what the prediction does.

"Off" is zero ablation. A head is switched off by zeroing its slice of the
merged context vectors (``trf_blocks.{l}.att.hook_z``, columns ``h*D:(h+1)*D``)
at every position, *before* ``out_proj``: the head then adds nothing to the
residual stream, while ``out_proj``'s bias (shared by all heads) still does.
An MLP is switched off by zeroing its output (``trf_blocks.{l}.hook_ff_out``).

Zero is not the only choice (TransformerLens also offers mean ablation:
replace with the head's average output). It is the simplest to explain and
to check by hand, which is why this module uses it.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps
from .fast_ablation import fast_pair_forward
from .inputs import (LabelFn, TokenInput, TokenizerLike, eval_mode, join_notes, make_label_fn, prepare,
                     this_thread_only)

Head = tuple[int, int]
LN2 = math.log(2.0)

_HEAD = re.compile(r"^L(\d+)H(\d+)$", re.IGNORECASE)
_MLP = re.compile(r"^(?:L|MLP)?(\d+)$", re.IGNORECASE)
_SPACED_HEAD = re.compile(r"\bL\s*(\d+)\s*H\s*(\d+)\b", re.IGNORECASE)   # "L4 H1" -> "L4H1"


def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def _items(text: str) -> list[str]:
    return [t for t in re.split(r"[,;\s]+", text.strip()) if t]


def _layer_error(what: str, n_layers: int) -> ValueError:
    return ValueError(f"{what}: this model has {n_layers} layers, numbered 0 to {n_layers - 1}.")


def parse_heads(text: str, n_layers: int, n_heads: int) -> list[Head]:
    """``"L4H1, L3H2"`` -> ``[(4, 1), (3, 2)]``; case-insensitive, commas or spaces; empty -> ``[]``.

    Duplicates are dropped (first occurrence kept). Anything malformed or out
    of range raises ``ValueError`` with a sentence the UI can show as is.
    """
    out: list[Head] = []
    for item in _items(_SPACED_HEAD.sub(r"L\1H\2", text or "")):
        m = _HEAD.match(item)
        if not m:
            raise ValueError(f"{item!r} is not a head: write heads as L{{layer}}H{{head}}, e.g. L4H1.")
        layer, head = int(m.group(1)), int(m.group(2))
        check_head(layer, head, n_layers, n_heads)
        if (layer, head) not in out:
            out.append((layer, head))
    return out


def parse_mlps(text: str, n_layers: int) -> list[int]:
    """``"2, 5"`` -> ``[2, 5]`` (``"L2"`` and ``"MLP2"`` are read as 2 too); empty -> ``[]``."""
    out: list[int] = []
    for item in _items(text or ""):
        m = _MLP.match(item)
        if not m:
            raise ValueError(f"{item!r} is not a layer number: write MLPs as layer numbers, e.g. 2, 5.")
        layer = int(m.group(1))
        check_mlp(layer, n_layers)
        if layer not in out:
            out.append(layer)
    return out


def check_head(layer: int, head: int, n_layers: int, n_heads: int) -> None:
    name = head_name(layer, head)
    if not 0 <= layer < n_layers:
        raise _layer_error(name, n_layers)
    if not 0 <= head < n_heads:
        raise ValueError(f"{name}: each layer has {n_heads} heads, numbered 0 to {n_heads - 1}.")


def check_mlp(layer: int, n_layers: int) -> None:
    if not 0 <= layer < n_layers:
        raise _layer_error(f"MLP {layer}", n_layers)


@contextmanager
def ablated(model: GPTModel, heads: Sequence[Head] = (), mlps: Sequence[int] = (), *,
            rows: slice = slice(None)) -> Iterator[None]:
    """Inside the block, every forward pass of ``model`` (in this thread) runs with
    ``heads`` and ``mlps`` zero-ablated, at every position and every decoding step,
    in the batch rows ``rows`` (default: all).

    The hooks edit the tensor passing through in place: ``this_thread_only``
    drops a hook's return value, and both tensors are fresh results
    (a reshape of the attention output, a Linear's output) that nothing else holds.
    """
    cfg = model.cfg
    for layer, head in heads:
        check_head(layer, head, cfg.n_layers, cfg.n_heads)
    for layer in mlps:
        check_mlp(layer, cfg.n_layers)
    d = cfg.head_dim
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)

    def zero_heads(hs: list[int]):
        cols = torch.cat([torch.arange(h * d, (h + 1) * d) for h in hs])

        def fn(z: torch.Tensor, name: str) -> None:                     # z: (B, T, E), heads merged
            z[rows, :, cols.to(z.device)] = 0
        return this_thread_only(fn)

    def zero(t: torch.Tensor, name: str) -> None:                        # (B, T, E)
        t[rows].zero_()

    fns = {f"trf_blocks.{l}.att.hook_z": zero_heads(hs) for l, hs in by_layer.items()}
    fns.update({f"trf_blocks.{l}.hook_ff_out": this_thread_only(zero) for l in mlps})
    with hooks(model, fns):
        yield


# --------------------------------------------------------------------------- before / after


@dataclass(frozen=True)
class Ablation:
    """The next-token distribution at the last position with and without the ablation."""

    before: tuple[dict, ...]            # top-k [{token, token_id, prob}] of the intact model
    after: tuple[dict, ...]             # top-k of the ablated model
    kl_bits: float                      # KL(before || after) over the whole vocabulary
    heads: tuple[Head, ...]
    mlps: tuple[int, ...]
    tokens: tuple[str, ...]             # the prompt (after cropping)
    greedy_before: dict | None = None   # {text, token_ids, tokens}
    greedy_after: dict | None = None
    note: str = ""

    @property
    def head_names(self) -> list[str]:
        return [head_name(l, h) for l, h in self.heads]

    def data(self) -> dict:
        return {"before": [dict(r) for r in self.before], "after": [dict(r) for r in self.after],
                "kl_bits": self.kl_bits, "heads": self.head_names, "mlps": list(self.mlps),
                "greedy_before": self.greedy_before, "greedy_after": self.greedy_after, "note": self.note}

    def to_json(self) -> str:
        return dumps(self.data())


def kl_bits(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """KL(P || Q) in bits between the softmaxes of two ``(V,)`` logit vectors (float64, >= 0)."""
    logp = torch.log_softmax(p_logits.double(), dim=-1)
    logq = torch.log_softmax(q_logits.double(), dim=-1)
    return max(0.0, float((logp.exp() * (logp - logq)).sum()) / LN2)


def top_tokens(logits: torch.Tensor, k: int, label: LabelFn) -> tuple[dict, ...]:
    """``(V,)`` logits -> the ``k`` most likely ``{token, token_id, prob}``."""
    probs = torch.softmax(logits.float(), dim=-1)
    p, i = torch.topk(probs, min(k, probs.numel()))
    return tuple({"token": label(t), "token_id": t, "prob": v} for t, v in zip(i.tolist(), p.tolist()))


def greedy(model: GPTModel, ids: torch.Tensor, n: int) -> tuple[torch.Tensor, list[list[int]]]:
    """Last-position logits ``(B, V)`` of ``ids (B, T)`` and each row's ``n`` greedy tokens after it.

    Prefill once, then one token per row and step through the KV cache; any hooks
    attached fire on every step. ``T + n`` must fit the context.
    """
    cache = model.new_cache(ids.shape[0], ids.shape[1] + n)
    return greedy_with(lambda x: model(x, cache, last_only=True)[:, -1].float(), ids, n)


def greedy_with(forward: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, n: int
                ) -> tuple[torch.Tensor, list[list[int]]]:
    """:func:`greedy` with any ``forward``: ``(B, T)`` ids continuing its own cache -> ``(B, V)`` logits."""
    logits = forward(ids)                                                     # (B, V)
    first, out = logits, []
    for step in range(n):
        nxt = torch.argmax(logits, dim=-1)                                    # (B,)
        out.append(nxt.tolist())
        if step < n - 1:
            logits = forward(nxt.unsqueeze(1))
    return first, [list(row) for row in zip(*out)] if out else [[] for _ in range(ids.shape[0])]


@torch.inference_mode()
def ablate(model: GPTModel, tokens: TokenInput, heads: Sequence[Head] = (), mlps: Sequence[int] = (), *,
           tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None, top_k: int = 10,
           continue_tokens: int = 0) -> Ablation:
    """Next-token prediction after the prompt, intact and with ``heads``/``mlps`` ablated.

    ``continue_tokens > 0`` also continues the prompt greedily that many
    tokens both ways (capped so prompt + continuation fit the context).
    """
    if continue_tokens < 0:
        raise ValueError(f"continue_tokens must be >= 0, got {continue_tokens}")
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    heads, mlps = tuple((int(l), int(h)) for l, h in heads), tuple(int(l) for l in mlps)
    for layer, head in heads:
        check_head(layer, head, model.cfg.n_layers, model.cfg.n_heads)
    for layer in mlps:
        check_mlp(layer, model.cfg.n_layers)
    room = model.cfg.context_length - prep.n_tokens
    n = min(continue_tokens, room)
    note = prep.note
    if n < continue_tokens:
        note = join_notes(note, f"Continued {n} token(s), not {continue_tokens}: the prompt ({prep.n_tokens} "
                                f"tokens) and its continuation must fit the context ({model.cfg.context_length}).")
    if not heads and not mlps:
        note = join_notes(note, "Nothing ablated: before and after are the same model.")
    # Intact and ablated side by side, one batch of two rows (row 1 ablated): one pass over the weights per
    # step for both continuations; on the fast decoder's weights when they are ready.
    pair = prep.ids.expand(2, -1)
    with eval_mode(model):
        fast = fast_pair_forward(model, prep.n_tokens + n, heads, mlps)
        if fast is not None:
            logits, (ids_before, ids_after) = greedy_with(fast, pair, n)
        else:
            with ablated(model, heads, mlps, rows=slice(1, 2)):
                logits, (ids_before, ids_after) = greedy(model, pair, n)
    logits_before, logits_after = logits[0], logits[1]
    label = make_label_fn(model, tokenizer, label_fn)

    def text(ids: list[int]) -> dict | None:
        if not continue_tokens:
            return None
        fits = tokenizer is not None and getattr(tokenizer, "n_vocab", None) == model.cfg.vocab_size
        return {"text": tokenizer.decode(ids) if fits else " ".join(label(i) for i in ids),
                "token_ids": ids, "tokens": [label(i) for i in ids]}

    return Ablation(
        before=top_tokens(logits_before, top_k, label), after=top_tokens(logits_after, top_k, label),
        kl_bits=kl_bits(logits_before, logits_after), heads=heads, mlps=mlps, tokens=prep.labels,
        greedy_before=text(ids_before), greedy_after=text(ids_after), note=note)
