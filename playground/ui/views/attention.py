"""The Attention tab's computation: weights of one layer, head scores, their figures."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from ...inspection.attention import AttentionCapture, capture_attention
from ...inspection.head_scores import SCORE_DOCS, SCORE_NAMES, HeadScores, head_scores
from ...inspection.export import dumps
from ...inspection.figures.attention import aggregate_figure, head_figure, head_scores_figure, layer_figure
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import LRU, crop_note, encode
from ..state import Snapshot


VIEWS = {"single head": "head", "head": "head", "one head": "head",
         "all heads": "layer", "layer": "layer", "all heads of a layer": "layer",
         "mean & max": "aggregate", "mean/max": "aggregate", "mean": "aggregate", "max": "aggregate",
         "aggregate": "aggregate", "mean & max over heads": "aggregate"}
VIEW_LABELS = {"head": "single head", "layer": "all heads", "aggregate": "mean & max"}
SCORE_LABELS = {"previous_token": "previous token", "first_token": "first token (sink)",
                "current_token": "current token", "induction": "induction", "entropy": "entropy",
                "prompt_induction": "induction on your text"}
SCORE_CHOICES = {**{n: n for n in SCORE_NAMES}, **{lab: n for n, lab in SCORE_LABELS.items()},
                 "previous-token": "previous_token", "first-token": "first_token", "sink": "first_token"}
SCORE_TOKENS = 256             # the prompt pass of the head scores
_captures = LRU(6)
_scores = LRU(6)
_random_scores = LRU(2)          # per model: the random-token pass does not depend on the prompt


@dataclass(frozen=True)
class AttentionRequest:
    prompt_ids: tuple[int, ...]
    layer: int
    head: int
    view: str
    score: str
    window_start: int | None
    tokens_shown: int
    log_scale: bool
    hide_first: bool
    note: str
    offset: int = 0                # tokens of the user's prompt left out in front (the view keeps the rest)

    def query_window(self) -> tuple[tuple[int, int] | None, str]:
        """The query rows to show, in the captured tokens' positions, and a sentence when the window the
        user asked for (in the positions of their own prompt, counting from 0) had to move."""
        if self.window_start is None:
            return None, ""
        n = len(self.prompt_ids)
        start, note = self.window_start - self.offset, ""
        total = n + self.offset
        if start < 0:
            note = (f"The window starts at token {self.window_start}, but this view holds tokens "
                    f"{self.offset:,}–{total - 1:,} of your text: it starts at token {self.offset:,}.")
            start = 0
        elif start >= n:
            note = (f"Your text has {total:,} tokens (0–{total - 1:,}), so a window cannot start at token "
                    f"{self.window_start:,}: it shows the last {min(self.tokens_shown, n):,} instead.")
            start = max(0, n - self.tokens_shown)
        return (start, min(n, start + self.tokens_shown)), note


def check_attention(snap: Snapshot, prompt: Any, layer: Any = 0, head: Any = 0, view: Any = "single head",
                    score: Any = "previous_token", window_start: Any = None, tokens_shown: Any = None,
                    log_scale: Any = False, hide_first: Any = False) -> AttentionRequest:
    cfg = snap.model.cfg
    text = v.prompt(prompt)
    lay = v.index(layer, "Layer", cfg.n_layers)
    hd = v.index(head, "Head", cfg.n_heads)
    kind = v.choice(view, "View", VIEWS, default="head")
    sc = v.choice(score, "Score", SCORE_CHOICES, default="previous_token")
    default_shown = 96 if kind == "layer" else 64
    shown = v.whole(tokens_shown, "Tokens shown", 2, v.ATTENTION_TOKENS, default=default_shown)
    start = None
    if window_start is not None and window_start != "" and window_start != -1:
        start = v.whole(window_start, "Window start", 0, v.MAX_PROMPT_CHARS)
    full = encode(snap, text)
    ids, note = crop_note(full, min(cfg.context_length, v.ATTENTION_TOKENS), "attention view")
    return AttentionRequest(tuple(ids), lay, hd, kind, sc, start, shown, v.flag(log_scale, "Log colour scale"),
                            v.flag(hide_first, "Hide first token"), note, offset=len(full) - len(ids))


@dataclass
class AttentionView:
    figure: go.Figure
    scores: HeadScores
    scores_figure: go.Figure
    capture: AttentionCapture
    request: AttentionRequest
    note: str

    def grid(self, score: str | None = None) -> tuple[list[str], list[list[Any]]]:
        """Header and rows of one score as a layer x head table (the clickable grid)."""
        name = score or self.request.score
        values = self.scores.score(name)
        headers = ["layer"] + [f"head {h}" for h in range(self.scores.n_heads)]
        rows = [[layer] + [round(float(x), 3) for x in values[layer]] for layer in range(self.scores.n_layers)]
        return headers, rows

    def data(self) -> dict[str, Any]:
        r = self.request
        if r.view == "head":
            weights = self.capture.head(r.layer, r.head)
        elif r.view == "layer":
            weights = self.capture.layer(r.layer)
        else:
            w = self.capture.layer(r.layer).float()
            weights = {"mean": w.mean(0), "max": w.amax(0)}
        return {"layer": r.layer, "head": r.head, "view": VIEW_LABELS[r.view],
                "tokens": list(self.capture.labels), "token_ids": list(self.capture.token_ids),
                "weights": weights, "scores": {n: self.scores.score(n) for n in SCORE_NAMES},
                "score_docs": dict(SCORE_DOCS), "scores_measured_on": self.scores.source, "note": self.note}

    def to_json(self) -> str:
        return dumps(self.data())

    def to_csv(self) -> str:
        return self.capture.to_csv(self.request.layer, self.request.head)


def random_scores(snap: Snapshot) -> HeadScores:
    """The head scores on random repeated tokens: per model, not per prompt (computed on first need: the first
    page load, which opens the Attention tab on the clearest head)."""
    return _random_scores.get(snap.uid, lambda: head_scores(snap.model))


def scores_for(snap: Snapshot, ids: tuple[int, ...]) -> HeadScores:
    def make() -> HeadScores:
        if len(ids) >= 2:
            return head_scores(snap.model, list(ids[-SCORE_TOKENS:]), on_random=random_scores(snap))
        return random_scores(snap)
    return _scores.get((snap.uid, ids[-SCORE_TOKENS:]), make)


def clearest_head(snap: Snapshot) -> tuple[int, int]:
    """``(layer, head)`` of the loaded model's clearest previous-token head (measured on random tokens, once per
    model): the Attention tab opens on it, so its first figure shows a pattern on any prompt (a diagonal)."""
    best = random_scores(snap).top("previous_token", 1)[0]
    return best[0], best[1]


def _capture_for(snap: Snapshot, ids: tuple[int, ...], layer: int) -> AttentionCapture:
    return _captures.get((snap.uid, ids, layer),
                         lambda: capture_attention(snap.model, list(ids), layers=[layer],
                                                   tokenizer=get_tokenizer()))


def attention_view(snap: Snapshot, req: AttentionRequest, figures: bool = True) -> AttentionView:
    """Weights of the requested layer, head scores, and (unless ``figures`` is False, as for the
    API) the figures."""
    cap = _capture_for(snap, req.prompt_ids, req.layer)
    if req.offset:                  # the user's text was cropped before capture: its positions, for the figure
        cap = dataclasses.replace(cap, offset=cap.offset + req.offset)
    qwin, window_note = req.query_window()
    common = dict(query_window=qwin, log_scale=req.log_scale, hide_first=req.hide_first,
                  max_tokens=req.tokens_shown)
    if not figures:
        fig = go.Figure()
    elif req.view == "head":
        fig = head_figure(cap, req.layer, req.head, **common)
    elif req.view == "layer":
        fig = layer_figure(cap, req.layer, **common)
    else:
        fig = aggregate_figure(cap, req.layer, **common)
    scores = scores_for(snap, req.prompt_ids)
    notes = [req.note, cap.note if cap.note != req.note else "", window_note]
    if len(req.prompt_ids) < 2:
        notes.append("Head scores other than induction need at least 2 tokens: measured on random tokens.")
    elif len(req.prompt_ids) > SCORE_TOKENS:
        notes.append(f"Head scores use the last {SCORE_TOKENS} tokens.")
    return AttentionView(fig, scores, head_scores_figure(scores, req.score) if figures else go.Figure(), cap, req,
                         " ".join(n for n in notes if n))
