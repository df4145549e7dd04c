"""What a run measures as it goes: held-out loss, in-context copying, the best heads."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..inspection.head_scores import head_scores
from ..inspection.inputs import eval_mode
from ..model import GPTModel
from .data import SourceTokens


def batch_loss(model: GPTModel, x: torch.Tensor, y: torch.Tensor, amp: bool) -> torch.Tensor:
    """Mean next-token cross-entropy of ``x`` -> ``y``, both ``(B, T)``."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x)                                             # (B, T, V)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


@torch.no_grad()
def evaluate(model: GPTModel, windows: dict[str, torch.Tensor], amp: bool, batch_size: int = 16,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean loss per source and over all tokens (``"all"``) on fixed ``(N, T+1)`` windows."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    with eval_mode(model):
        for name, rows in windows.items():
            total, n = 0.0, 0
            for i in range(0, rows.shape[0], batch_size):
                chunk = rows[i:i + batch_size].to(device)
                x, y = chunk[:, :-1], chunk[:, 1:]
                with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = model(x)
                total += float(F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum"))
                n += y.numel()
            sums[name], counts[name] = total, n
    out = {name: sums[name] / counts[name] for name in sums}
    out["all"] = sum(sums.values()) / max(1, sum(counts.values()))
    return out


def held_out_passages(sources: Sequence[SourceTokens], length: int = 48,
                      per_source: int = 8) -> torch.Tensor:
    """``(N, length)`` int64: evenly spaced, non-overlapping passages of each held-out stream."""
    rows = []
    for s in sources:
        count = s.val.size // length
        if count == 0:
            continue
        pick = np.linspace(0, count - 1, min(per_source, count)).round().astype(int)
        for k in pick:
            rows.append(np.asarray(s.val[k * length:(k + 1) * length], dtype=np.int64))
    if not rows:
        return torch.empty(0, length, dtype=torch.int64)
    return torch.from_numpy(np.stack(rows))


@torch.no_grad()
def copy_score(model: GPTModel, passages: torch.Tensor, batch_size: int = 16,
               device: torch.device | str = "cpu") -> dict[str, float]:
    """In-context copying on natural text: each passage ``P`` is shown twice (``P P``)
    and the model predicts the second copy.

    ``mean_p``: mean probability of the right next token at the positions of the
    second copy after its first token (``P[1:]`` given ``P`` and ``P[:k]``);
    ``top1``: how often that token is the model's top prediction. A model that
    copies scores near 1; one that only knows the language scores what its
    prior gives the text (about 0.1-0.2 for a small model).
    """
    n, length = passages.shape
    if n == 0 or 2 * length > model.cfg.context_length:
        return {"mean_p": float("nan"), "top1": float("nan"), "passages": n, "length": length}
    p_sum, top_sum, count = 0.0, 0.0, 0
    with eval_mode(model):
        for i in range(0, n, batch_size):
            rows = passages[i:i + batch_size].to(device)                            # (B, L)
            x = torch.cat([rows, rows], dim=1)                                       # (B, 2L)
            logits = model(x[:, :-1]).float()                                        # (B, 2L-1, V)
            pred = logits[:, length:]                                                # predicts x[:, L+1:]
            target = x[:, length + 1:]                                               # (B, L-1)
            probs = pred.softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)    # (B, L-1)
            p_sum += float(probs.sum())
            top_sum += float((pred.argmax(-1) == target).sum())
            count += target.numel()
    return {"mean_p": p_sum / count, "top1": top_sum / count, "passages": n, "length": length}


@torch.no_grad()
def head_summary(model: GPTModel, text_ids: torch.Tensor | None, window: int | None = None) -> dict[str, Any]:
    """Best previous-token head (on ``text_ids``, else on random ids) and best induction head (on random ids
    repeated twice, as in the attention tab), to watch heads form during training.

    The random sequence is at most 100 tokens and fits twice in ``window`` (the
    training window; default the context), so a head that works within the
    windows trained so far shows up.
    """
    seq_len = min(100, (window or model.cfg.context_length) // 2)
    tokens = None if text_ids is None else text_ids.tolist()
    with eval_mode(model):
        scores = head_scores(model, tokens, seq_len=seq_len, batch=4, seed=0)
    out: dict[str, Any] = {}
    for kind in ("previous_token", "induction"):
        layer, head, value = scores.top(kind, k=1)[0]
        out[kind] = round(value, 4)
        out[kind + "_head"] = f"L{layer}H{head}"
    return out
