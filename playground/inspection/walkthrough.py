"""A guided tour of one forward pass: every step of the book's ch04 GPTModel on a short prompt.

Each step names the line(s) of ``playground/model.py`` that compute it (the
book's own names), the real shape of the tensor, the real numbers (batch 0,
the first 8 positions, the first 16 features) and a sentence or three on what
happened, in English and in Chinese. One block (``layer``) and one attention
head (``head``) are shown in full; the other blocks are one collapsed step.

The tour is data only, as Transformer Explainer's textbook pages are: the UI
steps through ``Walkthrough.steps`` and highlights ``lines`` in the source.

JSON conventions: the masked cells of ``masked_scores`` (-inf in the model)
are stored as ``None``; no value is ever NaN or inf. ``other_blocks`` gives,
for every block, the residual stream's L2 norm per position averaged over the
positions shown (``values``; per position in ``extra["per_position"]``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..hooks import hooks
from ..model import GPTModel
from .inputs import TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare, this_thread_only, to_id_list
from .walkthrough_code import (BOOK_LOOP_SOURCE, CODE_LINES, MODEL_SOURCE, _CODE, code_line_numbers,
                               missing_code_lines)
from .walkthrough_text import TOP_TOKENS, VIEW_FEATURES, VIEW_POSITIONS, step_contents

__all__ = [
    "STEP_IDS", "MAX_TOKENS", "VIEW_POSITIONS", "VIEW_FEATURES", "TOP_TOKENS", "MODEL_SOURCE", "BOOK_LOOP_SOURCE",
    "CODE_LINES", "code_line_numbers", "missing_code_lines", "WalkStep", "Walkthrough", "walkthrough",
]

STEP_IDS: tuple[str, ...] = (
    "token_ids", "tok_emb", "pos_emb", "input_embeddings", "norm1", "queries", "keys", "values",
    "attn_scores", "masked_scores", "attn_weights", "context_vec", "out_proj", "shortcut_1", "norm2",
    "ff_expand", "gelu", "ff_contract", "shortcut_2", "other_blocks", "final_norm", "logits", "probas",
    "next_token",
)
MAX_TOKENS = 8       # the tour's prompt length


@dataclass(frozen=True)
class WalkStep:
    """One page of the tour. ``values`` holds plain numbers (nested lists; None = -inf);
    ``extra`` what a figure needs beyond them (the stream before a shortcut, GELU's input, ...)."""

    id: str
    title: str
    title_zh: str
    code: tuple[str, ...]
    source: str
    lines: tuple[int, ...]
    shape: tuple[int, ...]
    values: Any
    view: str
    explanation: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict:
        return {"id": self.id, "title": self.title, "title_zh": self.title_zh, "code": list(self.code),
                "source": self.source, "lines": list(self.lines), "shape": list(self.shape),
                "values": self.values, "view": self.view, "explanation": dict(self.explanation),
                "extra": self.extra}


@dataclass(frozen=True)
class Walkthrough:
    tokens: tuple[str, ...]        # display labels of the prompt's tokens
    token_ids: tuple[int, ...]
    layer: int
    head: int
    n_layers: int
    n_heads: int
    note: str
    steps: tuple[WalkStep, ...]

    def step(self, step_id: str) -> WalkStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"no walkthrough step {step_id!r}; steps are {', '.join(STEP_IDS)}")

    def data(self) -> dict:
        return {"tokens": list(self.tokens), "token_ids": list(self.token_ids), "layer": self.layer,
                "head": self.head, "n_layers": self.n_layers, "n_heads": self.n_heads, "note": self.note,
                "steps": [s.data() for s in self.steps]}


# --- the run ---------------------------------------------------------------------------------

def _block_hooks(layer: int) -> dict[str, str]:
    p = f"trf_blocks.{layer}."
    return {
        "resid_pre": p + "hook_resid_pre", "norm1": p + "hook_norm1", "q": p + "att.hook_q",
        "k": p + "att.hook_k", "v": p + "att.hook_v", "scores": p + "att.hook_scores",
        "masked": p + "att.hook_masked_scores", "pattern": p + "att.hook_pattern", "z": p + "att.hook_z",
        "attn_out": p + "hook_attn_out", "resid_mid": p + "hook_resid_mid", "norm2": p + "hook_norm2",
        "ff_pre": p + "ff.hook_pre", "ff_post": p + "ff.hook_post", "ff_out": p + "hook_ff_out",
        "resid_post": p + "hook_resid_post",
    }


def _run(model: GPTModel, ids: torch.Tensor, layer: int) -> dict[str, torch.Tensor]:
    """One forward pass recording the hook points the tour reads (plus every block's output)."""
    names = {"tok_emb": "hook_tok_emb", "pos_emb": "hook_pos_emb", "embed": "hook_embed",
             "final_norm": "hook_final_norm", "logits": "hook_logits", **_block_hooks(layer)}
    names.update({f"block_out_{b}": f"trf_blocks.{b}.hook_resid_post" for b in range(model.cfg.n_layers)})
    by_point: dict[str, list[str]] = {}
    for key, point in names.items():
        by_point.setdefault(point, []).append(key)
    store: dict[str, torch.Tensor] = {}

    def record(t: torch.Tensor, name: str) -> None:
        for key in by_point[name]:
            store[key] = t.detach()

    fn = this_thread_only(record)
    with eval_mode(model), hooks(model, {p: fn for p in by_point}):
        model(ids)
    return store


@torch.inference_mode()
def walkthrough(model: GPTModel, tokens: TokenInput, layer: int = 0, head: int = 0, *,
                tokenizer: TokenizerLike | None = None, max_tokens: int = MAX_TOKENS) -> Walkthrough:
    """Run the first ``max_tokens`` tokens of the prompt once and describe every step.

    Block ``layer`` and head ``head`` are shown in full (the per-head steps show that
    head's slice); the other blocks are the collapsed ``other_blocks`` step.
    """
    cfg = model.cfg
    if not 0 <= layer < cfg.n_layers:
        raise ValueError(f"layer must be in 0..{cfg.n_layers - 1}, got {layer}")
    if not 0 <= head < cfg.n_heads:
        raise ValueError(f"head must be in 0..{cfg.n_heads - 1}, got {head}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    ids = to_id_list(tokens, tokenizer)
    keep = min(max_tokens, cfg.context_length)
    note = ""
    if len(ids) > keep:   # the tour reads from the start: cut the end, not the beginning
        note = f"The walkthrough uses the first {keep} tokens of your prompt (it has {len(ids)})."
        ids = ids[:keep]
    prep = prepare(model, ids, tokenizer=tokenizer)
    rec = _run(model, prep.ids, layer)
    label = make_label_fn(model, tokenizer)
    raw_text = ((lambda i: tokenizer.token_text(i))
                if tokenizer is not None and getattr(tokenizer, "n_vocab", None) == cfg.vocab_size else label)
    steps = _steps(model, prep.ids, prep.labels, rec, layer, head, label, raw_text)
    return Walkthrough(tokens=prep.labels, token_ids=tuple(prep.token_ids), layer=layer, head=head,
                       n_layers=cfg.n_layers, n_heads=cfg.n_heads, note=note, steps=tuple(steps))


def _steps(model: GPTModel, ids: torch.Tensor, labels: tuple[str, ...], rec: dict[str, torch.Tensor],
           layer: int, head: int, label, raw_text) -> list[WalkStep]:
    per_step = step_contents(model.cfg, ids, labels, rec, layer, head, label, raw_text)
    out = []
    for sid in STEP_IDS:
        s = per_step[sid]
        source, _, code = _CODE[sid]
        out.append(WalkStep(
            id=sid, title=s["title"][0], title_zh=s["title"][1], code=code, source=source,
            lines=tuple(code_line_numbers(sid)), shape=tuple(int(x) for x in s["shape"]), values=s["values"],
            view=s["view"], explanation={"en": s["en"], "zh": s["zh"]}, extra=s.get("extra", {})))
    return out
