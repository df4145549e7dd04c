"""Input saliency: how much each input token counts for one logit at the last position.

``f`` is the logit of a target token at the last position (default: the model's own top
prediction); ``x0 = tok_emb + pos_emb``, shape ``(T, E)``, the input of block 0.

- gradient x input: ``s_i = sum_d x0[i, d] * df/dx0[i, d]``;
- integrated gradients from the baseline 0 (block 0 sees all zeros: token *and* position
  embeddings scaled): ``s_i = sum_d x0[i, d] * (1/n) sum_k df/dx0[i, d] at alpha_k x0``,
  ``alpha_k = (k - 0.5) / n`` (the midpoint rule). The scores should add up to
  ``f(x0) - f(0)``; what they miss is the *completeness gap*, which shrinks as ``n`` grows.

The model is run with its embedding output replaced (hook ``hook_embed``) by the scaled
inputs, all ``n`` of them in one batch (``steps_per_batch`` bounds it), and stopped at the
final LayerNorm: only the target's row of the head is needed. Nothing in the model changes:
gradients are taken with respect to the inputs only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..hooks import hooks
from ..model import GPTModel
from .attribution import single_token_id
from .export import dumps, rows_to_csv
from .inputs import (LabelFn, StopForward, TokenInput, TokenizerLike, check_token_id, eval_mode, make_label_fn,
                     prepare, this_thread_only)

DEFAULT_STEPS = 32


@dataclass(frozen=True)
class Saliency:
    """One score per input token; for integrated gradients, the completeness check too."""

    method: str                      # "gradient_x_input" | "integrated_gradients"
    scores: torch.Tensor             # (T,)
    target: dict                     # {token_id, token}
    f_input: float                   # f(x0)
    f_baseline: float | None         # f(0) (integrated gradients only)
    n_steps: int
    labels: tuple[str, ...]
    token_ids: tuple[int, ...]
    offset: int = 0
    note: str = ""

    @property
    def completeness_gap(self) -> float | None:
        """``sum_i s_i - (f(x0) - f(0))``: 0 for exact integrated gradients."""
        if self.f_baseline is None:
            return None
        return float(self.scores.sum()) - (self.f_input - self.f_baseline)

    def rows(self) -> list[dict]:
        return [{"position": i, "token": lab, "token_id": tid, "score": float(s)}
                for i, (lab, tid, s) in enumerate(zip(self.labels, self.token_ids, self.scores))]

    def to_json(self) -> str:
        return dumps({"method": self.method, "target": self.target, "f_input": self.f_input,
                      "f_baseline": self.f_baseline, "completeness_gap": self.completeness_gap,
                      "n_steps": self.n_steps, "labels": self.labels, "token_ids": self.token_ids,
                      "scores": self.scores, "offset": self.offset, "note": self.note})

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


def resolve_target(model: GPTModel, target: "int | str | None", tokenizer: TokenizerLike | None) -> int | None:
    """An id from an id or a one-token text (ValueError otherwise); None means "the top prediction"."""
    if target is None:
        return None
    if isinstance(target, str):
        if tokenizer is None:
            raise ValueError("a target given as text needs a tokenizer; pass tokenizer= or a token id")
        return check_token_id(model, single_token_id(tokenizer, target), "target")
    return check_token_id(model, int(target), "target")


def input_embedding(model: GPTModel, ids: torch.Tensor) -> torch.Tensor:
    """``(T, E)`` x0 = tok_emb + pos_emb of ``ids`` ``(1, T)``, detached."""
    with torch.no_grad():
        pos = torch.arange(ids.shape[1], device=ids.device)
        return (model.tok_emb(ids[0]) + model.pos_emb(pos)).detach()


def last_logit(model: GPTModel, ids: torch.Tensor, x: torch.Tensor, target: int | None) -> tuple[torch.Tensor, int]:
    """``(B,)`` logit of ``target`` at the last position with block 0's input replaced by ``x`` ``(B, T, E)``
    (differentiable in ``x``); ``target`` None: the top prediction of the first row."""
    final: dict[str, torch.Tensor] = {}

    def feed(t: torch.Tensor, name: str) -> torch.Tensor:
        return x

    def stop(t: torch.Tensor, name: str) -> None:                             # t: (B, T, E)
        final["x"] = t[:, -1]
        raise StopForward

    batch_ids = ids.clone().expand(x.shape[0], -1)   # (B, T); a clone: ids made under inference_mode cannot be saved for backward
    with hooks(model, {"hook_embed": this_thread_only(feed), "hook_final_norm": this_thread_only(stop)}):
        try:
            model(batch_ids)
        except StopForward:
            pass
    W_U = model.out_head.weight                                               # (V, E)
    if target is None:
        with torch.no_grad():
            target = int((final["x"][0] @ W_U.t()).argmax())
    return final["x"] @ W_U[target], target                                   # (B,)


def _prepare(model: GPTModel, tokens: TokenInput, target: "int | str | None", tokenizer, label_fn):
    target_id = resolve_target(model, target, tokenizer)
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    return prep, target_id, make_label_fn(model, tokenizer, label_fn)


def gradient_x_input(model: GPTModel, tokens: TokenInput, target: "int | str | None" = None, *,
                     tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None) -> Saliency:
    """``s_i = sum_d x0[i, d] * df/dx0[i, d]`` for ``f`` = the target's logit at the last position."""
    prep, target_id, label = _prepare(model, tokens, target, tokenizer, label_fn)
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        x0 = input_embedding(model, prep.ids)                                 # (T, E)
        x = x0.clone().unsqueeze(0).requires_grad_(True)                      # (1, T, E)
        f, target_id = last_logit(model, prep.ids, x, target_id)
        (grad,) = torch.autograd.grad(f.sum(), x)
    scores = (x0 * grad[0]).sum(-1).detach().float().cpu()                    # (T,)
    return Saliency("gradient_x_input", scores, {"token_id": target_id, "token": label(target_id)},
                    float(f[0].detach()), None, 1, prep.labels, tuple(prep.token_ids), prep.offset, prep.note)


def integrated_gradients(model: GPTModel, tokens: TokenInput, target: "int | str | None" = None, *,
                         n_steps: int = DEFAULT_STEPS, steps_per_batch: int = 64,
                         tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None) -> Saliency:
    """Integrated gradients from the all-zero input of block 0, ``n_steps`` midpoints, batched."""
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    n = int(n_steps)
    prep, target_id, label = _prepare(model, tokens, target, tokenizer, label_fn)
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        x0 = input_embedding(model, prep.ids)                                 # (T, E)
        alphas = (torch.arange(1, n + 1, dtype=x0.dtype, device=x0.device) - 0.5) / n   # (n,)
        grad_sum = torch.zeros_like(x0)                                       # (T, E)
        ends = torch.stack([x0, torch.zeros_like(x0)])                        # (2, T, E): f(x0), f(0)
        with torch.no_grad():
            f_ends, target_id = last_logit(model, prep.ids, ends, target_id)
        for a in alphas.split(max(1, int(steps_per_batch))):
            x = (a[:, None, None] * x0).requires_grad_(True)                  # (b, T, E)
            f, _ = last_logit(model, prep.ids, x, target_id)
            (grad,) = torch.autograd.grad(f.sum(), x)                         # (b, T, E)
            grad_sum += grad.detach().sum(0)
    scores = (x0 * grad_sum / n).sum(-1).float().cpu()                        # (T,)
    return Saliency("integrated_gradients", scores, {"token_id": target_id, "token": label(target_id)},
                    float(f_ends[0]), float(f_ends[1]), n, prep.labels, tuple(prep.token_ids),
                    prep.offset, prep.note)
