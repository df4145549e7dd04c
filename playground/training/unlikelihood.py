"""Sequence-level unlikelihood training against greedy loops (Welleck et al., 2019,
"Neural Text Generation with Unlikelihood Training", section 5.2).

A small language model decoded greedily falls into loops ("the United States,
and the United States, and ..."): maximum likelihood alone never tells it that
its *own* continuations repeat. This objective does: continue some training
prefixes greedily with the model itself, mark every token that belongs to an
n-gram already seen earlier in that sequence, and push the probability of
those tokens down with ``-log(1 - p)``. Mixed with the usual next-token loss
(``python -m playground.train --unlikelihood ALPHA``), it is a fine-tuning step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..inspection.inputs import eval_mode
from ..model import GPTModel


@torch.no_grad()
def greedy_continue(model: GPTModel, prefixes: torch.Tensor, n_new: int) -> torch.Tensor:
    """``prefixes`` ``(B, P)`` followed by ``n_new`` greedy tokens: ``(B, P + n_new)``.

    With the model's KV cache, so each new token costs one position (the
    ``V``-wide output head dominates a small model's forward pass).
    """
    batch, p_len = prefixes.shape
    if p_len + n_new > model.cfg.context_length:
        raise ValueError(f"{p_len} + {n_new} tokens exceed the context length {model.cfg.context_length}")
    cache = model.new_cache(batch, p_len + n_new)
    logits = model(prefixes, cache)[:, -1]                                   # (B, V)
    out = [prefixes]
    for i in range(n_new):
        nxt = logits.argmax(-1, keepdim=True)                                # (B, 1)
        out.append(nxt)
        if i + 1 < n_new:
            logits = model(nxt, cache)[:, -1]
    return torch.cat(out, dim=1)


def repeated_ngram_mask(ids: torch.Tensor, n: int = 4, start: int = 0, own_only: bool = False) -> torch.Tensor:
    """``(B, T)`` bool: True at every token of an ``n``-gram that ends at or after
    ``start`` and already occurred (ending) earlier in the same row.

    ``own_only``: count only earlier n-grams that also end at or after ``start``, so
    repeating the model's *own* continuation is marked but copying from the prefix is
    not. That keeps the penalty off in-context copying (which copying rows teach) and
    on loops."""
    batch, length = ids.shape
    mask = torch.zeros(batch, length, dtype=torch.bool)
    rows = ids.tolist()
    for b, row in enumerate(rows):
        seen: set[tuple[int, ...]] = set()
        for end in range(n, length + 1):                  # n-gram row[end-n:end]
            gram = tuple(row[end - n:end])
            if gram in seen and end - 1 >= start:
                mask[b, max(end - n, start):end] = True
            if not own_only or end - 1 >= start:
                seen.add(gram)
    return mask.to(ids.device)


def unlikelihood_loss(model: GPTModel, prefixes: torch.Tensor, n_new: int, n: int = 4,
                      amp: bool = False, own_only: bool = False) -> tuple[torch.Tensor, float]:
    """Mean ``-log(1 - p(token))`` over the continuation tokens that repeat an ``n``-gram,
    and the share of continuation tokens so marked (0 when the model did not loop).

    The mean is over *all* continuation tokens, so a batch with few repeats
    contributes little; the loss is a zero with a gradient path when none repeat.
    """
    with eval_mode(model):
        ids = greedy_continue(model, prefixes, n_new)                          # (B, P + N)
    p_len = prefixes.shape[1]
    x = ids[:, :-1]
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x)[:, p_len - 1:]                                       # (B, N, V) continuation only
    y = ids[:, p_len:]                                                         # (B, N)
    mask = repeated_ngram_mask(ids, n, start=p_len, own_only=own_only)[:, p_len:]   # (B, N)
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    # log(1 - p) computed stably from log p; clamp keeps p == 1 finite.
    one_minus = torch.log1p(-logp.exp().clamp(max=1 - 1e-5))                  # (B, N)
    loss = -(one_minus * mask).sum() / y.numel()
    return loss, float(mask.sum()) / y.numel()
