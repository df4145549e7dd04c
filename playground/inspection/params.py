"""Where the parameters are: derived from a config alone, checked against a loaded model.

The analytic count is the book's step-by-step derivation (ch04: "163,009,536
parameters ... 124,412,160 considering weight tying"), one line per weight
with its formula and the numbers filled in. It needs no model, so gpt2-xl is
as instant as a toy. :func:`check_parameters` counts a real model (shared
storage once) and reports every line where the two disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

from ..config import GPTConfig, as_config
from .export import dumps, rows_to_csv

BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "int8": 1}
GROUPS = ("embeddings", "transformer blocks", "final norm", "output head")


@dataclass(frozen=True)
class ParamLine:
    """One weight (or weight + bias) of the model.

    ``count`` is per instance; block lines repeat ``repeat = n_layers`` times.
    ``params`` are the parameter names it covers (``{i}``: the block index).
    """

    group: str
    part: str
    name: str
    params: tuple[str, ...]
    formula: str
    filled: str
    count: int
    repeat: int = 1
    note: str = ""

    @property
    def total(self) -> int:
        return self.count * self.repeat

    def names(self) -> list[str]:
        return [p.format(i=i) for i in range(self.repeat) for p in self.params]


def fmt_int(x: int) -> str:
    """Thousands separators, as the book prints counts."""
    return f"{x:,}"


@dataclass(frozen=True)
class ParamBreakdown:
    """All lines for one config, with totals tied/untied and memory footprints."""

    config: GPTConfig
    lines: tuple[ParamLine, ...]

    @property
    def total(self) -> int:
        """As configured: the head counted once if ``tie_embeddings`` (it is the token embedding)."""
        return sum(line.total for line in self.lines)

    @property
    def head_size(self) -> int:
        return self.config.emb_dim * self.config.vocab_size

    @property
    def total_untied(self) -> int:
        return self.total + (self.head_size if self.config.tie_embeddings else 0)

    @property
    def total_tied(self) -> int:
        return self.total_untied - self.head_size

    @property
    def per_block(self) -> int:
        return sum(line.count for line in self.lines if line.group == "transformer blocks")

    def group_totals(self) -> dict[str, int]:
        return {g: sum(l.total for l in self.lines if l.group == g) for g in GROUPS}

    def memory(self, total: int | None = None) -> dict[str, int]:
        """Bytes to store ``total`` parameters (default: as configured) in fp32 / bf16 / int8."""
        total = self.total if total is None else total
        return {k: total * b for k, b in BYTES_PER_PARAM.items()}

    def rows(self) -> list[dict]:
        return [{"group": l.group, "part": l.part, "name": l.name, "formula": l.formula,
                 "filled": l.filled, "count": l.count, "repeat": l.repeat, "total": l.total,
                 "share": l.total / self.total, "note": l.note} for l in self.lines]

    def summary(self) -> dict[str, Any]:
        mib = {k: v / 2**20 for k, v in self.memory().items()}
        return {"total": self.total, "total_tied": self.total_tied, "total_untied": self.total_untied,
                "per_block": self.per_block, "n_layers": self.config.n_layers,
                "tie_embeddings": self.config.tie_embeddings,
                "memory_bytes": self.memory(), "memory_mib": mib,
                "groups": self.group_totals()}

    def derivation(self) -> list[str]:
        """The book-style derivation, one sentence a line, numbers filled in."""
        c = self.config
        out = [f"{l.name}: 0 — {l.note}" if l.count == 0 else
               f"{l.name}: {l.formula} = {l.filled} = {fmt_int(l.count)}"
               + (f" (x {l.repeat} blocks = {fmt_int(l.total)})" if l.repeat > 1 else "")
               + (f" — {l.note}" if l.note else "") for l in self.lines]
        out.append(f"one transformer block: {fmt_int(self.per_block)}; x {c.n_layers} = "
                   f"{fmt_int(self.per_block * c.n_layers)}")
        out.append(f"total without weight tying: {fmt_int(self.total_untied)}")
        out.append(f"total with weight tying (head = token embedding): {fmt_int(self.total_tied)}")
        mem = ", ".join(f"{k} {v / 2**20:,.2f} MiB" for k, v in self.memory().items())
        out.append(f"as configured ({'tied' if c.tie_embeddings else 'untied'}): {fmt_int(self.total)} "
                   f"parameters; {mem}")
        return out

    def to_json(self) -> str:
        return dumps({"config": self.config.to_dict(), "lines": self.rows(), "summary": self.summary()})

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


def param_breakdown(cfg: "GPTConfig | Mapping[str, Any]") -> ParamBreakdown:
    """The analytic breakdown of a config (a GPTConfig or the book's dict)."""
    c = as_config(cfg)
    v, e, t, n = c.vocab_size, c.emb_dim, c.context_length, c.n_layers
    b = "transformer blocks"
    lines = [
        ParamLine("embeddings", "token embedding", "token embedding (tok_emb)", ("tok_emb.weight",),
                  "vocab_size x emb_dim", f"{fmt_int(v)} x {fmt_int(e)}", v * e),
        ParamLine("embeddings", "position embedding", "position embedding (pos_emb)", ("pos_emb.weight",),
                  "context_length x emb_dim", f"{fmt_int(t)} x {fmt_int(e)}", t * e),
    ]
    for short, full in (("query", "W_query"), ("key", "W_key"), ("value", "W_value")):
        lines.append(ParamLine(b, "attention", f"{short} weights (att.{full})",
                               (f"trf_blocks.{{i}}.att.{full}.weight",),
                               "emb_dim x emb_dim", f"{fmt_int(e)} x {fmt_int(e)}", e * e, n))
        lines.append(ParamLine(b, "attention", f"{short} bias (att.{full})",
                               (f"trf_blocks.{{i}}.att.{full}.bias",) if c.qkv_bias else (),
                               "emb_dim" if c.qkv_bias else "0", fmt_int(e) if c.qkv_bias else "0",
                               e if c.qkv_bias else 0, n, "" if c.qkv_bias else "qkv_bias=False: none"))
    lines += [
        ParamLine(b, "attention", "output projection (att.out_proj)",
                  ("trf_blocks.{i}.att.out_proj.weight", "trf_blocks.{i}.att.out_proj.bias"),
                  "emb_dim x emb_dim + emb_dim", f"{fmt_int(e)} x {fmt_int(e)} + {fmt_int(e)}", e * e + e, n),
        ParamLine(b, "feed-forward", "feed-forward first layer (ff.layers[0])",
                  ("trf_blocks.{i}.ff.layers.0.weight", "trf_blocks.{i}.ff.layers.0.bias"),
                  "emb_dim x 4 emb_dim + 4 emb_dim", f"{fmt_int(e)} x {fmt_int(4 * e)} + {fmt_int(4 * e)}",
                  e * 4 * e + 4 * e, n),
        ParamLine(b, "feed-forward", "feed-forward second layer (ff.layers[2])",
                  ("trf_blocks.{i}.ff.layers.2.weight", "trf_blocks.{i}.ff.layers.2.bias"),
                  "4 emb_dim x emb_dim + emb_dim", f"{fmt_int(4 * e)} x {fmt_int(e)} + {fmt_int(e)}", 4 * e * e + e, n),
        ParamLine(b, "layer norms", "first LayerNorm (norm1: scale, shift)",
                  ("trf_blocks.{i}.norm1.scale", "trf_blocks.{i}.norm1.shift"),
                  "2 x emb_dim", f"2 x {fmt_int(e)}", 2 * e, n),
        ParamLine(b, "layer norms", "second LayerNorm (norm2: scale, shift)",
                  ("trf_blocks.{i}.norm2.scale", "trf_blocks.{i}.norm2.shift"),
                  "2 x emb_dim", f"2 x {fmt_int(e)}", 2 * e, n),
        ParamLine("final norm", "final norm", "final LayerNorm (final_norm: scale, shift)",
                  ("final_norm.scale", "final_norm.shift"), "2 x emb_dim", f"2 x {fmt_int(e)}", 2 * e),
    ]
    if c.tie_embeddings:
        lines.append(ParamLine("output head", "output head", "output head (out_head)", (),
                               "0 (shares tok_emb.weight)", "0", 0,
                               note=f"tied: the token embedding's {fmt_int(v * e)} serve again"))
    else:
        lines.append(ParamLine("output head", "output head", "output head (out_head, no bias)",
                               ("out_head.weight",), "emb_dim x vocab_size", f"{fmt_int(e)} x {fmt_int(v)}", e * v))
    return ParamBreakdown(c, tuple(lines))


# --------------------------------------------------------------------------- a real model


@dataclass(frozen=True)
class ParamCheck:
    """Analytic vs counted, line by line. ``ok`` only if every line and the total agree."""

    analytic: int
    counted: int
    lines: tuple[dict, ...]          # name, analytic, counted, ok
    unexpected: tuple[str, ...]      # parameters no line accounts for
    shared: tuple[tuple[str, ...], ...]  # groups of names with one storage

    @property
    def ok(self) -> bool:
        return self.analytic == self.counted and not self.unexpected and all(l["ok"] for l in self.lines)

    @property
    def mismatches(self) -> list[str]:
        out = [f"{l['name']}: analytic {fmt_int(l['analytic'])}, counted {fmt_int(l['counted'])}"
               for l in self.lines if not l["ok"]]
        out += [f"{name}: not in the analytic breakdown" for name in self.unexpected]
        if self.analytic != self.counted:
            out.append(f"total: analytic {fmt_int(self.analytic)}, counted {fmt_int(self.counted)}")
        return out

    def to_json(self) -> str:
        return dumps({"ok": self.ok, "analytic": self.analytic, "counted": self.counted,
                           "lines": list(self.lines), "unexpected": list(self.unexpected),
                           "shared": [list(s) for s in self.shared], "mismatches": self.mismatches})


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{name: numel}``, a parameter shared by several modules listed once (first name).

    Works on a model built on the ``meta`` device (no memory, instant).
    """
    return {name: p.numel() for name, p in model.named_parameters()}


def shared_parameters(model: nn.Module) -> list[tuple[str, ...]]:
    """Groups of parameter names backed by the same tensor (e.g. a tied head)."""
    by_id: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    return [tuple(names) for names in by_id.values() if len(names) > 1]


def check_parameters(model: nn.Module, cfg: "GPTConfig | Mapping[str, Any] | None" = None) -> ParamCheck:
    """Compare ``model``'s counted parameters with the analytic breakdown of ``cfg`` (default ``model.cfg``)."""
    bd = param_breakdown(cfg if cfg is not None else model.cfg)
    counted = count_parameters(model)
    claimed: set[str] = set()
    lines = []
    for line in bd.lines:
        names = line.names()
        claimed.update(names)
        got = sum(counted.get(n, 0) for n in names)
        lines.append({"name": line.name, "analytic": line.total, "counted": got, "ok": got == line.total})
    unexpected = tuple(n for n in counted if n not in claimed)
    return ParamCheck(bd.total, sum(counted.values()), tuple(lines), unexpected,
                      tuple(shared_parameters(model)))
