"""The Shapes tab's computation: every step of a forward pass with its real shapes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from ...inspection.figures.trace import trace_figure
from ...inspection.trace import ShapeTrace, shape_trace
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import crop_note, encode
from ..state import Snapshot


@dataclass
class TraceView:
    trace: ShapeTrace
    lang: str
    expand: bool
    figure: go.Figure | None          # None when asked without figures (the API)
    note: str

    def table(self) -> list[dict]:
        return self.trace.table(self.expand, self.lang)

    def to_json(self) -> str:
        return self.trace.to_json(expand=True)

    def to_csv(self) -> str:
        return self.trace.to_csv(self.expand, self.lang)


def trace_view(snap: Snapshot, prompt: Any, lang: Any = "en", expand: Any = False, figures: bool = True) -> TraceView:
    text = v.prompt(prompt)
    language = v.choice(lang, "Language", v.LANGUAGES, default="en")
    full = v.flag(expand, "Expand all blocks")
    ids, note = crop_note(encode(snap, text), min(snap.model.cfg.context_length, v.TRACE_TOKENS), "shape trace")
    trace = shape_trace(snap.model, ids, tokenizer=get_tokenizer())
    return TraceView(trace, language, full, trace_figure(trace, lang=language, expand=full) if figures else None, note)
