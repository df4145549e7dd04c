"""Two prompts side by side: what changes in the prediction when the prompt changes a little.

For each prompt: the next-token top-k, and the logit lens's top-1 at the last
position after every layer (where in the stack the two answers part ways).
Between them: which token positions differ (when the lengths match), the KL
divergence between the two next-token distributions, and the tokens whose
probability moved most.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..model import GPTModel
from .export import dumps
from .inputs import LabelFn, Prepared, TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare
from .logit_lens import logit_lens

LN2 = math.log(2.0)


@dataclass(frozen=True)
class PromptSide:
    """One prompt's view: its tokens, next-token top-k, and the last position's lens, layer by layer."""

    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    top: tuple[dict, ...]               # [{token, token_id, prob}]
    lens: tuple[dict, ...]              # [{layer, token, token_id, prob}], embeddings first
    note: str = ""

    def data(self) -> dict:
        return {"tokens": list(self.tokens), "token_ids": list(self.token_ids), "top": [dict(r) for r in self.top],
                "lens": [dict(r) for r in self.lens], "note": self.note}


@dataclass(frozen=True)
class Comparison:
    """Prompt A and prompt B side by side, and what moved between their next-token distributions."""

    a: PromptSide
    b: PromptSide
    kl_bits: float                      # KL(A || B) between the next-token distributions
    moved: tuple[dict, ...]             # [{token, token_id, prob_a, prob_b, delta}], largest |delta| first
    diff: tuple[dict, ...] | None       # [{position, a, b}] where the tokens differ; None if lengths differ
    common_prefix: int                  # tokens the two prompts share from the start
    note: str = ""

    def data(self) -> dict:
        return {"a": self.a.data(), "b": self.b.data(), "kl_bits": self.kl_bits,
                "moved": [dict(m) for m in self.moved],
                "diff": None if self.diff is None else [dict(d) for d in self.diff],
                "common_prefix": self.common_prefix, "note": self.note}

    def to_json(self) -> str:
        return dumps(self.data())


def _side(model: GPTModel, prep: Prepared, probs: torch.Tensor, top_k: int, label: LabelFn) -> PromptSide:
    p, i = torch.topk(probs, min(top_k, probs.numel()))
    lens = logit_lens(model, prep.ids, top_k=1, label_fn=label)
    rows = tuple({"layer": name, "token": lens.top_labels[s][-1][0], "token_id": int(lens.top_ids[s, -1, 0]),
                  "prob": float(lens.top_probs[s, -1, 0])} for s, name in enumerate(lens.layer_names))
    return PromptSide(tokens=prep.labels, token_ids=tuple(prep.token_ids),
                      top=tuple({"token": label(t), "token_id": t, "prob": v} for t, v in zip(i.tolist(), p.tolist())),
                      lens=rows, note=prep.note)


@torch.inference_mode()
def compare_prompts(model: GPTModel, prompt_a: TokenInput, prompt_b: TokenInput, *,
                    tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None,
                    top_k: int = 10, moved_k: int = 10) -> Comparison:
    """Next-token predictions of two prompts and how they differ."""
    label = make_label_fn(model, tokenizer, label_fn)
    preps = [prepare(model, p, tokenizer=tokenizer, label_fn=label) for p in (prompt_a, prompt_b)]
    with eval_mode(model):
        logp = [torch.log_softmax(model(p.ids, last_only=True)[0, -1].double(), dim=-1) for p in preps]   # 2 x (V,)
    probs = [lp.exp() for lp in logp]
    kl = max(0.0, float((probs[0] * (logp[0] - logp[1])).sum()) / LN2)
    delta = probs[1] - probs[0]                                               # (V,)
    order = torch.topk(delta.abs(), min(moved_k, delta.numel())).indices.tolist()
    moved = tuple({"token": label(i), "token_id": i, "prob_a": float(probs[0][i]), "prob_b": float(probs[1][i]),
                   "delta": float(delta[i])} for i in order)
    ids_a, ids_b = preps[0].token_ids, preps[1].token_ids
    prefix = next((k for k, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b)))
    note = ""
    if len(ids_a) == len(ids_b):
        diff = tuple({"position": k, "a": preps[0].labels[k], "b": preps[1].labels[k]}
                     for k, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y)
        if not diff:
            note = "The two prompts are the same tokens."
    else:
        diff = None
        note = (f"The prompts have different lengths ({len(ids_a)} and {len(ids_b)} tokens): "
                f"no position-by-position diff; they share the first {prefix}.")
    return Comparison(a=_side(model, preps[0], probs[0].float(), top_k, label),
                      b=_side(model, preps[1], probs[1].float(), top_k, label),
                      kl_bits=kl, moved=moved, diff=diff, common_prefix=prefix, note=note)
