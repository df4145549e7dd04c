"""The Next token tab's computation: the distribution before and after each sampling control."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from ...inspection.figures.next_token import next_token_figure
from ...inspection.next_token import NextTokenDistribution, next_token_distribution
from ...sampling import SamplingParams
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import crop_note, encode
from ..state import Snapshot


@dataclass
class NextView:
    dist: NextTokenDistribution
    figure: go.Figure | None          # None when asked without figures (the API)
    note: str

    def rows(self) -> list[list[Any]]:
        d = self.dist
        return [[r + 1, lab, tid, round(d.probs["model"][r], 4), round(d.probs["top_p"][r], 4)]
                for r, (tid, lab) in enumerate(zip(d.token_ids, d.labels))]

    def summary(self) -> str:
        d = self.dist
        return (f"After **{d.context_label}** (position {d.position}): {d.n_kept:,} token(s) can be drawn. "
                f"Entropy {d.entropy['model']:.2f} nats for the model, {d.entropy['top_p']:.2f} after the "
                f"sampling controls." + (f" {self.note}" if self.note else ""))

    def data(self) -> dict[str, Any]:
        return json.loads(self.dist.to_json())


NEXT_HEADERS = ["rank", "token", "id", "model probability", "after temperature/top-k/top-p"]


def next_view(snap: Snapshot, prompt: Any, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0,
              show: Any = 10, stages: Any = False, figures: bool = True) -> NextView:
    text = v.prompt(prompt)
    params = SamplingParams(temperature=v.real(temperature, "Temperature", 0.0, v.MAX_TEMPERATURE, default=1.0),
                            top_k=v.whole(top_k, "Top-k", 0, snap.model.cfg.vocab_size, default=0) or None,
                            top_p=v.real(top_p, "Top-p", 0.0, 1.0, default=1.0, lo_open=True))
    n = v.whole(show, "Tokens shown", 1, 50, default=10)
    all_stages = v.flag(stages, "Show every stage")
    ids, note = crop_note(encode(snap, text), snap.model.cfg.context_length, "next-token view")
    dist = next_token_distribution(snap.model, ids, params, show=n, tokenizer=get_tokenizer())
    return NextView(dist, next_token_figure(dist, stages=all_stages) if figures else None, note)
