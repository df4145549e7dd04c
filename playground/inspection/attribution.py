"""Direct logit attribution: which parts of the model wrote the prediction, additively.

The residual stream at the last position is a sum of what every part wrote
into it (the book's shortcut connections make this exact):

    resid_final = embed + sum_l ( sum_h head_lh + out_proj.bias_l + MLP_l )

where ``head_lh = z[hD:(h+1)D] @ W_out[:, hD:(h+1)D].T`` is head h's share of
``out_proj`` (no bias). The logit of a token is ``final_norm(resid_final) @
out_head.weight[token]``. LayerNorm is not linear, but with its divisor
``sigma = sqrt(var(resid_final) + eps)`` taken from the actual final stream it
is linear in each part: centre the part, divide by that one sigma, times
``scale``; the ``shift`` adds one more term. So every part gets a number, and
the numbers sum to the logit (difference) exactly. That is the "direct"
effect only: what a part writes that later parts read and transform counts
for those later parts, not for it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps
from .inputs import check_token_id, LabelFn, TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare, this_thread_only


def single_token_id(tokenizer: TokenizerLike, text: str, what: str = "Target") -> int:
    """The id of ``text`` if it is exactly one token, else a ``ValueError`` showing how it splits."""
    if not text:
        raise ValueError(f'{what} is empty: give one token, e.g. " Paris" (with its leading space).')
    ids = list(tokenizer.encode(text))
    if len(ids) != 1:
        pieces = json.dumps([tokenizer.token_text(i) for i in ids], ensure_ascii=False)
        raise ValueError(f'{what} {json.dumps(text, ensure_ascii=False)} is {len(ids)} tokens: {pieces} '
                         f'— give one token (a leading space matters: " mat" and "mat" differ).')
    return int(ids[0])


@dataclass(frozen=True)
class Attribution:
    """Each component's direct contribution to ``logit(target) - logit(distractor)``
    (or ``logit(target)`` alone) at the last position. ``total`` is their sum, ``actual``
    the model's own value; the two agree up to float rounding."""

    components: tuple[dict, ...]        # [{name, value}]: embed, per layer heads/bias/MLP, final_norm shift
    total: float
    actual: float
    target: dict                        # {token, token_id}
    distractor: dict | None
    n_layers: int
    n_heads: int
    tokens: tuple[str, ...] = ()
    note: str = ""

    def value(self, name: str) -> float:
        for c in self.components:
            if c["name"] == name:
                return c["value"]
        raise KeyError(f"no component named {name!r}")

    def head_grid(self) -> list[list[float]]:
        """``[layer][head]`` values, for a layer x head heatmap."""
        return [[self.value(f"L{l}H{h}") for h in range(self.n_heads)] for l in range(self.n_layers)]

    def other_components(self) -> list[dict]:
        """Everything that is not a head: embed, out_proj biases, MLPs, final_norm shift."""
        return [dict(c) for c in self.components if not _is_head(c["name"])]

    @property
    def metric(self) -> str:
        t = self.target["token"]
        return f"logit('{t}')" if self.distractor is None else f"logit('{t}') - logit('{self.distractor['token']}')"

    def data(self) -> dict:
        return {"components": [dict(c) for c in self.components], "total": self.total, "actual": self.actual,
                "target": dict(self.target), "distractor": None if self.distractor is None else dict(self.distractor),
                "metric": self.metric, "head_grid": self.head_grid(), "tokens": list(self.tokens),
                "note": self.note}

    def to_json(self) -> str:
        return dumps(self.data())


def _is_head(name: str) -> bool:
    return re.fullmatch(r"L\d+H\d+", name) is not None


def component_names(n_layers: int, n_heads: int) -> list[str]:
    names = ["embed"]
    for l in range(n_layers):
        names += [f"L{l}H{h}" for h in range(n_heads)] + [f"L{l} out_proj bias", f"L{l} MLP"]
    return names + ["final_norm shift"]


@torch.inference_mode()
def direct_logit_attribution(model: GPTModel, tokens: TokenInput, target_id: int,
                             distractor_id: int | None = None, *, tokenizer: TokenizerLike | None = None,
                             label_fn: LabelFn | None = None) -> Attribution:
    """Split the last position's ``logit(target) [- logit(distractor)]`` into per-component parts.

    One forward pass records the embeddings, every layer's merged head outputs
    ``z`` and MLP output, and the final residual stream, at the last position.
    """
    target_id = check_token_id(model, target_id, "target")
    if distractor_id is not None:
        distractor_id = check_token_id(model, distractor_id, "distractor")
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    cfg = model.cfg
    n, H, D = cfg.n_layers, cfg.n_heads, cfg.head_dim
    last: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, name: str) -> None:                            # x: (1, T, E)
        last[name] = x[0, -1].detach().double().clone()                      # (E,)

    names = (["hook_embed", f"trf_blocks.{n - 1}.hook_resid_post"]
             + [f"trf_blocks.{l}.att.hook_z" for l in range(n)] + [f"trf_blocks.{l}.hook_ff_out" for l in range(n)])
    with eval_mode(model), hooks(model, {k: this_thread_only(keep) for k in names}):
        logits = model(prep.ids, last_only=True)[0, -1].double()               # (V,)

    W_U = model.out_head.weight                                              # (V, E): only two rows in float64
    direction = (W_U[target_id].double() if distractor_id is None
                 else W_U[target_id].double() - W_U[distractor_id].double())  # (E,)
    actual = float(logits[target_id] - (logits[distractor_id] if distractor_id is not None else 0.0))

    parts = [last["hook_embed"]]
    for l in range(n):
        att = model.trf_blocks[l].att
        W_out = att.out_proj.weight.double().view(cfg.emb_dim, H, D)         # (E, H, D): head h's columns
        z = last[f"trf_blocks.{l}.att.hook_z"].view(H, D)                    # (H, D)
        per_head = torch.einsum("hd,ehd->he", z, W_out)                      # (H, E)
        parts += list(per_head) + [att.out_proj.bias.double(), last[f"trf_blocks.{l}.hook_ff_out"]]
    stack = torch.stack(parts)                                               # (C, E)

    norm = model.final_norm
    resid = last[f"trf_blocks.{n - 1}.hook_resid_post"]                      # (E,), the input of final_norm
    sigma = torch.sqrt(resid.var(unbiased=False) + norm.eps)
    centred = stack - stack.mean(dim=-1, keepdim=True)                       # (C, E)
    values = (centred / sigma * norm.scale.double()) @ direction             # (C,)
    values = values.tolist() + [float(norm.shift.double() @ direction)]
    components = tuple({"name": k, "value": v} for k, v in zip(component_names(n, H), values))

    label = make_label_fn(model, tokenizer, label_fn)
    return Attribution(
        components=components, total=float(sum(values)), actual=actual,
        target={"token": label(target_id), "token_id": target_id},
        distractor=None if distractor_id is None else {"token": label(distractor_id), "token_id": distractor_id},
        n_layers=n, n_heads=H, tokens=prep.labels, note=prep.note)
