"""The Parameters tab's computation: the analytic count of any config, checked against the model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from ...config import PRESETS, GPTConfig
from ...inspection.figures.params import params_bar, params_treemap
from ...inspection.params import ParamBreakdown, check_parameters, fmt_int, param_breakdown
from .. import validate as v
from ..common import LRU
from ..state import Snapshot
from ..validate import InputError


PRESET_CHOICES = {n.lower(): n for n in PRESETS} | {"medium": "gpt2-medium", "large": "gpt2-large",
                                                    "xl": "gpt2-xl", "book": "book-124M", "124m": "book-124M"}


@dataclass
class ParamsView:
    breakdown: ParamBreakdown
    comparison: str

    @property
    def config(self) -> GPTConfig:
        return self.breakdown.config

    def summary_markdown(self) -> str:
        bd = self.breakdown
        mem = bd.memory()
        tied = "tied head (counted once)" if bd.config.tie_embeddings else "separate output head"
        return (f"## {fmt_int(bd.total)} parameters\n"
                f"{tied} · one block: {fmt_int(bd.per_block)} · without tying {fmt_int(bd.total_untied)}, "
                f"with tying {fmt_int(bd.total_tied)} · memory: fp32 {fmt_bytes(mem['fp32'])}, "
                f"bf16 {fmt_bytes(mem['bf16'])}, int8 {fmt_bytes(mem['int8'])}")

    def derivation(self) -> str:
        return "\n".join(self.breakdown.derivation())

    def rows(self) -> list[list[Any]]:
        return [[l.name, l.formula, l.filled, fmt_int(l.count), l.repeat, fmt_int(l.total),
                 f"{l.total / self.breakdown.total:.1%}" if self.breakdown.total else ""]
                for l in self.breakdown.lines]

    def figures(self) -> tuple[go.Figure, go.Figure]:
        return params_treemap(self.breakdown), params_bar(self.breakdown)

    def data(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "summary": self.breakdown.summary(),
                "lines": self.breakdown.rows(), "derivation": self.breakdown.derivation(),
                "comparison": self.comparison}


def fmt_bytes(n: float) -> str:
    """``1.2 GiB`` from a byte count (MiB below one GiB, KiB below one MiB)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} bytes"


PARAM_HEADERS = ["part", "formula", "numbers", "count", "x", "total", "share"]
_checks = LRU(4)


def check_params(vocab_size: Any = 50257, context_length: Any = 1024, emb_dim: Any = 768, n_heads: Any = 12,
                 n_layers: Any = 12, qkv_bias: Any = False, tie_embeddings: Any = False) -> GPTConfig:
    labels = {"vocab_size": "Vocabulary size", "context_length": "Context length", "emb_dim": "Embedding dim",
              "n_heads": "Heads", "n_layers": "Layers"}
    raw = dict(vocab_size=vocab_size, context_length=context_length, emb_dim=emb_dim, n_heads=n_heads,
               n_layers=n_layers)
    values = {k: v.whole(x, labels[k], *v.PARAM_LIMITS[k]) for k, x in raw.items()}
    if values["emb_dim"] % values["n_heads"]:
        raise InputError(f"Embedding dim ({values['emb_dim']:,}) must be divisible by the number of heads "
                         f"({values['n_heads']:,}): each head gets emb_dim / heads numbers.")
    return GPTConfig(**values, drop_rate=0.0, qkv_bias=v.flag(qkv_bias, "QKV bias"),
                     tie_embeddings=v.flag(tie_embeddings, "Tied head"))


def params_view(cfg: GPTConfig, snap: Snapshot | None) -> ParamsView:
    bd = param_breakdown(cfg)
    return ParamsView(bd, compare_with_loaded(bd, snap))


def compare_with_loaded(bd: ParamBreakdown, snap: Snapshot | None) -> str:
    if snap is None:
        return "No model is loaded, so there is nothing to compare with."
    check = _checks.get(snap.uid, lambda: check_parameters(snap.model))
    verdict = ("the analytic count for its config matches exactly ✓" if check.ok else
               "⚠️ differs from the analytic count: " + "; ".join(check.mismatches[:3]))
    same = bd.config.replace(drop_rate=0.0) == snap.model.cfg.replace(drop_rate=0.0)
    ratio = bd.total / check.counted if check.counted else 0.0
    rel = "this is its config" if same else f"the config above has {ratio:,.2f}x as many"
    return (f"Loaded model **{snap.name}**: {fmt_int(check.counted)} parameters counted in memory; "
            f"{verdict}; {rel}.")


def preset_config(name: Any) -> GPTConfig:
    return PRESETS[v.choice(name, "Preset", PRESET_CHOICES)]
