"""The Logit lens tab's computation: the prediction after every block."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from ...inspection.figures.logit_lens import logit_lens_figure, trajectory_figure
from ...inspection.logit_lens import LogitLens, logit_lens
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import crop_note, encode
from ..state import Snapshot


@dataclass
class LensView:
    lens: LogitLens
    figure: go.Figure | None          # None when asked without figures (the API)
    trajectory: go.Figure | None
    note: str

    def data(self) -> dict[str, Any]:
        return json.loads(self.lens.to_json())


def lens_view(snap: Snapshot, prompt: Any, top_k: Any = 5, position: Any = None, figures: bool = True) -> LensView:
    text = v.prompt(prompt)
    k = v.whole(top_k, "Top-k", 1, 20, default=5)
    ids, note = crop_note(encode(snap, text), min(snap.model.cfg.context_length, v.LENS_TOKENS), "logit lens")
    pos = v.whole(position, "Position", -len(ids), len(ids) - 1, default=-1)
    lens = logit_lens(snap.model, ids, top_k=k, tokenizer=get_tokenizer())
    if not figures:
        return LensView(lens, None, None, note)
    return LensView(lens, logit_lens_figure(lens), trajectory_figure(lens.trajectory(pos)), note)
