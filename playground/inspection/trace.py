"""Shape trace: every step of a real forward pass, in execution order, with real shapes.

torchinfo sees module boundaries only; the reshapes that make attention
multi-headed happen *inside* ``forward``. Here every linear layer, norm,
embedding and hook point (``hook_q``, ``hook_scores``, ``hook_z``, ...)
records the shapes that actually passed through it on the user's prompt, and
each step reads its input and output shapes from those records. Nothing is
computed from the config. Only shapes are kept, never tensors.

Watching the scores forces the explicit attention path (the one that forms
the ``T x T`` scores the book writes out); the fast path fuses those steps
into one kernel with the same result.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import torch
from torch import nn

from ..config import GPTConfig
from ..model import GPTModel
from .export import dumps, rows_to_csv
from .inputs import LabelFn, TokenInput, TokenizerLike, eval_mode, prepare, this_thread_only
from .trace_text import STEPS, TIED_NOTE

Shape = tuple[int, ...]
Ref = tuple[str, str]   # (module path, "in" | "out")

# (step key, output refs, input refs, modules whose parameters the step owns); "{p}" = block prefix
_MODEL_HEAD: list[tuple[str, list[Ref], list[Ref], list[str]]] = [
    ("tok_emb", [("tok_emb", "out")], [("tok_emb", "in")], ["tok_emb"]),
    ("pos_emb", [("pos_emb", "out")], [("pos_emb", "in")], ["pos_emb"]),
    ("embed", [("hook_embed", "out")], [("hook_tok_emb", "out"), ("hook_pos_emb", "out")], []),
]
_BLOCK: list[tuple[str, list[Ref], list[Ref], list[str]]] = [
    ("norm1", [("{p}norm1", "out")], [("{p}norm1", "in")], ["{p}norm1"]),
    ("query", [("{p}att.W_query", "out")], [("{p}att.W_query", "in")], ["{p}att.W_query"]),
    ("key", [("{p}att.W_key", "out")], [("{p}att.W_key", "in")], ["{p}att.W_key"]),
    ("value", [("{p}att.W_value", "out")], [("{p}att.W_value", "in")], ["{p}att.W_value"]),
    ("split_heads", [("{p}att.hook_q", "out"), ("{p}att.hook_k", "out"), ("{p}att.hook_v", "out")],
     [("{p}att.W_query", "out"), ("{p}att.W_key", "out"), ("{p}att.W_value", "out")], []),
    ("scores", [("{p}att.hook_scores", "out")], [("{p}att.hook_q", "out"), ("{p}att.hook_k", "out")], []),
    ("mask", [("{p}att.hook_masked_scores", "out")], [("{p}att.hook_scores", "out")], []),
    ("softmax", [("{p}att.hook_pattern", "out")], [("{p}att.hook_masked_scores", "out")], []),
    ("context", [("{p}att.hook_z", "out")], [("{p}att.hook_pattern", "out"), ("{p}att.hook_v", "out")], []),
    ("out_proj", [("{p}att.out_proj", "out")], [("{p}att.out_proj", "in")], ["{p}att.out_proj"]),
    ("resid_mid", [("{p}hook_resid_mid", "out")], [("{p}hook_attn_out", "out"), ("{p}hook_resid_pre", "out")], []),
    ("norm2", [("{p}norm2", "out")], [("{p}norm2", "in")], ["{p}norm2"]),
    ("ff_hidden", [("{p}ff.layers.0", "out")], [("{p}ff.layers.0", "in")], ["{p}ff.layers.0"]),
    ("gelu", [("{p}ff.layers.1", "out")], [("{p}ff.layers.1", "in")], ["{p}ff.layers.1"]),
    ("ff_out", [("{p}ff.layers.2", "out")], [("{p}ff.layers.2", "in")], ["{p}ff.layers.2"]),
    ("resid_post", [("{p}hook_resid_post", "out")], [("{p}hook_ff_out", "out"), ("{p}hook_resid_mid", "out")], []),
]
_MODEL_TAIL: list[tuple[str, list[Ref], list[Ref], list[str]]] = [
    ("final_norm", [("final_norm", "out")], [("final_norm", "in")], ["final_norm"]),
    ("logits", [("out_head", "out")], [("out_head", "in")], ["out_head"]),
]


def fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class TraceRow:
    """One step. ``inputs``/``outputs`` are real shapes from the run; ``shape`` the symbolic change.

    A collapsed group of identical blocks is one row with ``repeat`` > 1 and
    its steps in ``children``.
    """

    order: int
    key: str
    block: int | None
    title: str
    title_zh: str
    module: str
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]
    params: int
    shape: str
    en: str
    zh: str
    join: str = ", "
    note: str = ""
    note_zh: str = ""
    repeat: int = 1
    children: tuple["TraceRow", ...] = ()

    def input_text(self) -> str:
        """The inputs' shapes; several of one shape read "3 × (1, 4, 128)" (q, k and v into the head split)."""
        shapes = [fmt_shape(s) for s in self.inputs]
        if "{" in self.join:
            return self.join.format(*shapes)
        if len(shapes) > 1 and len(set(shapes)) == 1:
            return f"{len(shapes)} × {shapes[0]}"
        return self.join.join(shapes)

    def output_text(self) -> str:
        return ", ".join(fmt_shape(s) for s in self.outputs)

    def as_dict(self, lang: str = "en") -> dict:
        zh = lang == "zh"
        return {
            "order": self.order, "block": "" if self.block is None else self.block,
            "step": self.title_zh if zh else self.title, "module": self.module,
            "input": self.input_text(),
            "output": self.output_text(),
            "symbolic": self.shape, "params": self.params, "repeat": self.repeat,
            "explanation": (self.zh + self.note_zh) if zh else " ".join(x for x in (self.en, self.note) if x),
            "key": self.key,
        }


@dataclass(frozen=True)
class ShapeTrace:
    """All steps of one forward pass (``rows``, flat, execution order) and the prompt they ran on."""

    rows: tuple[TraceRow, ...]
    n_layers: int
    token_ids: tuple[int, ...]
    labels: tuple[str, ...]
    offset: int = 0
    note: str = ""

    @property
    def cropped(self) -> bool:
        return self.offset > 0

    @property
    def total_params(self) -> int:
        """Parameters of every step, shared storage once: equals the model's count."""
        return sum(r.params for r in self.rows)

    def block_rows(self, block: int) -> list[TraceRow]:
        return [r for r in self.rows if r.block == block]

    def collapsed(self) -> tuple[TraceRow, ...]:
        """Block 0 in full; blocks 1..n-1 as one ``x (n_layers-1)`` row when identical to it.

        The group row's ``children`` hold their steps (the "expand" the app offers);
        blocks that differ from block 0 in any shape or count stay expanded.
        """
        if self.n_layers < 2:
            return self.rows
        first = self.block_rows(0)

        def signature(rows: list[TraceRow]) -> list:
            return [(r.key, r.inputs, r.outputs, r.params) for r in rows]

        rest = list(range(1, self.n_layers))
        if any(signature(self.block_rows(b)) != signature(first) for b in rest):
            return self.rows
        children = tuple(r for r in self.rows if r.block is not None and r.block >= 1)
        n = len(rest)
        text = STEPS["blocks"]
        span = f"1-{self.n_layers - 1}" if n > 1 else "1"
        group = TraceRow(
            order=children[0].order, key="blocks", block=None,
            title=f"blocks {span} (x {n})", title_zh=f"第 {span} 块（x {n}）",
            module=f"trf_blocks.{span.replace('-', '..')}", inputs=children[0].inputs,
            outputs=children[-1].outputs, params=sum(r.params for r in children), shape=text.shape,
            en=text.en, zh=text.zh, note=f"{first_params(first):,} parameters per block.",
            note_zh=f"每块 {first_params(first):,} 个参数。", repeat=n, children=children)
        before = [r for r in self.rows if (r.block is None and r.order < group.order) or r.block == 0]
        after = [r for r in self.rows if r.block is None and r.order > group.order]
        return tuple(before) + (group,) + tuple(after)

    def table(self, expand: bool = False, lang: str = "en") -> list[dict]:
        """Plain rows for a table: collapsed by default; ``expand=True`` lists every block."""
        return [r.as_dict(lang) for r in (self.rows if expand else self.collapsed())]

    def to_dataframe(self, expand: bool = False, lang: str = "en"):
        import pandas as pd
        return pd.DataFrame(self.table(expand, lang))

    def to_json(self, expand: bool = True) -> str:
        return dumps({"token_ids": self.token_ids, "labels": self.labels, "offset": self.offset,
                      "note": self.note, "n_layers": self.n_layers, "total_params": self.total_params,
                      "rows_en": self.table(expand, "en"), "rows_zh": self.table(expand, "zh")})

    def to_csv(self, expand: bool = False, lang: str = "en") -> str:
        return rows_to_csv(self.table(expand, lang))


def first_params(rows: list[TraceRow]) -> int:
    return sum(r.params for r in rows)


@contextmanager
def _record_shapes(modules: dict[str, nn.Module]) -> Iterator[dict[str, tuple[int, Shape | None, Shape]]]:
    """``{path: (order, input shape, output shape)}`` for each module's (first) call; hooks always removed."""
    seen: dict[str, tuple[int, Shape | None, Shape]] = {}
    handles = []

    def make(path: str):
        @this_thread_only
        def fn(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if path not in seen:
                first = args[0] if args and isinstance(args[0], torch.Tensor) else None
                seen[path] = (len(seen), None if first is None else tuple(first.shape), tuple(output.shape))
        return fn

    try:
        for path, module in modules.items():
            handles.append(module.register_forward_hook(make(path)))
        yield seen
    finally:
        for h in handles:
            h.remove()


@functools.lru_cache(maxsize=4)
def _meta_model(cls: type, cfg: GPTConfig) -> GPTModel | None:
    try:
        with torch.device("meta"):
            return cls(cfg).eval()
    except Exception:                                   # a subclass with another constructor
        return None


def _shape_twin(model: GPTModel) -> GPTModel | None:
    """A model of the same class and config on the meta device (no memory, no arithmetic; built once per
    config), or None when ``model``'s modules are not its class's own (then only the real pass shows what it
    does)."""
    twin = _meta_model(type(model), model.cfg)
    if twin is None:
        return None
    ours = [(name, type(m)) for name, m in model.named_modules()]
    return twin if ours == [(name, type(m)) for name, m in twin.named_modules()] else None


def _steps(n_layers: int) -> list[tuple[str, int | None, list[Ref], list[Ref], list[str]]]:
    out = [(k, None, o, i, m) for k, o, i, m in _MODEL_HEAD]
    for b in range(n_layers):
        p = f"trf_blocks.{b}."
        out += [(k, b, [(r.format(p=p), s) for r, s in o], [(r.format(p=p), s) for r, s in i],
                 [m.format(p=p) for m in mods]) for k, o, i, mods in _BLOCK]
    out += [(k, None, o, i, m) for k, o, i, m in _MODEL_TAIL]
    return out


@torch.inference_mode()
def shape_trace(model: GPTModel, tokens: TokenInput, *,
                tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None,
                max_tokens: int | None = None) -> ShapeTrace:
    """Run the prompt once and return every step with the shapes that passed.

    The pass runs the model's own code on PyTorch's meta device (:func:`_shape_twin`): every module and
    every reshape sees the real shapes, and no number is computed, so a 1,024-token prompt costs what a
    short one does. A model whose modules differ from its class's own runs the real pass instead.
    The prompt is cropped to the last ``context_length`` (or ``max_tokens``) tokens, with a ``note``.
    """
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn, max_tokens=max_tokens)
    steps = _steps(model.cfg.n_layers)
    paths = sorted({path for _, _, outs, ins, _ in steps for path, _ in outs + ins})
    named = dict(model.named_modules())
    twin = _shape_twin(model)
    runner, ids = (twin, prep.ids.to("meta")) if twin is not None else (model, prep.ids)
    run_named = dict(runner.named_modules())
    with eval_mode(runner), _record_shapes({p: run_named[p] for p in paths if p in run_named}) as seen:
        runner(ids)

    def shape(ref: Ref) -> Shape:
        path, side = ref
        if path not in seen:
            raise RuntimeError(f"the forward pass never reached {path}; the model differs from the book's")
        _, shape_in, shape_out = seen[path]
        return shape_out if side == "out" else shape_in

    ids_shape = tuple(prep.ids.shape)
    text = STEPS["token_ids"]
    rows = [TraceRow(-1, "token_ids", None, text.title_en, text.title_zh, "input", (), (ids_shape,), 0,
                     text.shape, text.en, text.zh)]
    counted: set[int] = set()
    for key, block, outs, ins, mods in steps:
        text = STEPS[key]
        n_params, shared = 0, False
        for m in mods:
            for p in named[m].parameters():
                if id(p) in counted:
                    shared = True
                else:
                    counted.add(id(p))
                    n_params += p.numel()
        rows.append(TraceRow(
            order=seen[outs[0][0]][0], key=key, block=block, title=text.title_en, title_zh=text.title_zh,
            module=mods[0] if mods else outs[0][0], inputs=tuple(shape(r) for r in ins),
            outputs=tuple(dict.fromkeys(shape(r) for r in outs)), params=n_params, shape=text.shape,
            en=text.en, zh=text.zh, join=text.join,
            note=TIED_NOTE.en if shared else "", note_zh=TIED_NOTE.zh if shared else ""))
    rows.sort(key=lambda r: r.order)
    rows = [replace(r, order=i) for i, r in enumerate(rows)]
    return ShapeTrace(tuple(rows), model.cfg.n_layers, tuple(prep.token_ids), prep.labels,
                      offset=prep.offset, note=prep.note)
