"""Plotly figures of captured attention: one head, one layer's heads, heads aggregated, head scores.

Conventions shared by every attention figure: query rows top to bottom, key
columns left to right, future cells left blank (not 0, so the triangle reads
as "cannot see" rather than "chose not to look"), hover names both tokens.
Long prompts: a query/key window (default: the last ``max_tokens``), every
n-th label, an optional log colour scale, and an optional hidden first-token
column — the attention sink that otherwise squeezes every other weight into
the bottom of the colour range. Whatever was left out is said in the title.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..attention import AttentionCapture
from ..head_scores import SCORE_DOCS, SCORE_NAMES, HeadScores
from .axes import fit_step, label_step, token_ticks, window
from .palette import SEQUENTIAL

HEAD_VIEW_TOKENS = 256    # one head: at most this many queries and keys by default
GRID_VIEW_TOKENS = 96     # each small heatmap of a layer grid
LOG_FLOOR = 1e-4
KEYS_ON_TOP = 32          # short prompts read like a matrix (keys on top); long ones keep the title clear
COLORSCALE = SEQUENTIAL


def _view(cap: AttentionCapture, w: torch.Tensor, query_window, key_window, limit: int,
          hide_first: bool, log_scale: bool) -> dict:
    """Cut ``w`` (..., T, T) to the windows; NaN the future; optional log; notes on what was cut."""
    t = cap.n_tokens
    qs, qe = window(t, query_window, limit)
    if key_window is None:
        ks, ke = (0, qe) if qe <= limit else (qs, qe)   # keys before the query window only if they fit
    else:
        ks, ke = window(t, key_window, limit)
    notes = []
    if hide_first and ks == 0:
        ks = 1
        notes.append("first-token column hidden")
    if ks >= ke:
        raise ValueError("the key window is empty")
    weights = w[..., qs:qe, ks:ke].float().cpu().numpy()
    q_pos = np.arange(qs, qe)[:, None]
    k_pos = np.arange(ks, ke)[None, :]
    weights = np.where(k_pos > q_pos, np.nan, weights)
    z = np.log10(np.maximum(weights, LOG_FLOOR)) if log_scale else weights
    if (qs, qe) != (0, t) or (ks, ke) not in ((0, t), (1, t)) or cap.offset:
        o = cap.offset              # positions as in the whole prompt, of which the first ``o`` were cut
        notes.append(f"queries {qs + o}-{qe - 1 + o}, keys {ks + o}-{ke - 1 + o} of {t + o} tokens")
    if cap.note:
        notes.append(cap.note)
    return dict(weights=weights, z=z, queries=list(range(qs, qe)), keys=list(range(ks, ke)), notes=notes)


def _hover_data(cap: AttentionCapture, v: dict) -> np.ndarray:
    """(Q, K, 3) object array: query label, key label, weight — what each cell's hover shows."""
    q_lab = np.array([cap.labels[i] for i in v["queries"]], dtype=object)
    k_lab = np.array([cap.labels[i] for i in v["keys"]], dtype=object)
    shape = v["weights"].shape[-2:]
    return np.stack([np.broadcast_to(q_lab[:, None], shape), np.broadcast_to(k_lab[None, :], shape),
                     v["weights"].astype(object)], axis=-1)


_HOVER = ("query %{y} %{customdata[0]}<br>key %{x} %{customdata[1]}"
          "<br>weight %{customdata[2]:.4f}<extra>%{fullData.name}</extra>")


def _colorbar(log_scale: bool) -> dict:
    if not log_scale:
        return dict(title="weight")
    exps = list(range(int(math.log10(LOG_FLOOR)), 1))
    return dict(title="weight", tickvals=exps, ticktext=[f"1e{e}" if e else "1" for e in exps])


def _step(n: int, px: float) -> int:
    """Label every n-th token: few enough labels to read (``label_step``), none closer than 22 px."""
    return max(label_step(n), fit_step(n, px))


def _title(text: str, notes: list[str]) -> dict:
    sub = f"<br><sup>{'; '.join(notes)}</sup>" if notes else ""
    return dict(text=text + sub)


def head_figure(cap: AttentionCapture, layer: int, head: int, *,
                query_window: tuple[int, int] | None = None, key_window: tuple[int, int] | None = None,
                log_scale: bool = False, hide_first: bool = False, label_every: int | None = None,
                max_tokens: int = HEAD_VIEW_TOKENS) -> go.Figure:
    """One head as a heatmap: query rows, key columns, token labels on both axes."""
    v = _view(cap, cap.head(layer, head), query_window, key_window, max_tokens, hide_first, log_scale)
    fig = go.Figure(go.Heatmap(
        z=v["z"], x=v["keys"], y=v["queries"], customdata=_hover_data(cap, v), hovertemplate=_HOVER,
        name=f"L{layer} H{head}", colorscale=COLORSCALE, colorbar=_colorbar(log_scale),
        zmin=math.log10(LOG_FLOOR) if log_scale else 0.0, zmax=0.0 if log_scale else 1.0,
        hoverongaps=False,
    ))
    top = len(v["keys"]) <= KEYS_ON_TOP
    height = max(450, min(900, 18 * len(v["queries"]) + 250))
    rows_px, cols_px = height - 250, 900                    # the plot area, about (a 1280-1440 px page)
    fig.update_layout(
        title=_title(f"Layer {layer}, head {head}: where each token looks", v["notes"]),
        xaxis=dict(title="key (attended to)", side="top" if top else "bottom",
                   **token_ticks(v["keys"], cap.labels, label_every or _step(len(v["keys"]), cols_px))),
        yaxis=dict(title="query (attending)", autorange="reversed",
                   **token_ticks(v["queries"], cap.labels, label_every or _step(len(v["queries"]), rows_px))),
        plot_bgcolor="white", margin=dict(t=150 if top else 90), height=height,
    )
    return fig


GRID_WIDTH_PX = 1000      # what a layer grid's panels share across (a 1280-1440 px page, minus labels)
GRID_TARGET_PX = 560      # about how tall the panels should stand together
LABEL_PX = 18             # a labelled row or column at least this tall: presentation mode's tick size


def _grid(n: int) -> tuple[int, int]:
    """(rows, cols) for ``n`` square panels: together about ``GRID_TARGET_PX`` tall, few empty slots
    (4 heads: 1 x 4; 12: 2 x 6; 16: 2 x 8; 25: 3 x 9)."""
    def cost(cols: int) -> float:
        rows = math.ceil(n / cols)
        return abs(rows * (GRID_WIDTH_PX / cols + 40) - GRID_TARGET_PX) + 120 * (rows * cols - n)
    cols = min(range(1, n + 1), key=cost)
    return math.ceil(n / cols), cols


def layer_figure(cap: AttentionCapture, layer: int, *,
                 query_window: tuple[int, int] | None = None, key_window: tuple[int, int] | None = None,
                 log_scale: bool = False, hide_first: bool = False,
                 max_tokens: int = GRID_VIEW_TOKENS) -> go.Figure:
    """All heads of one layer as small square heatmaps on one colour scale (bertviz's model view, per
    layer). Token labels along the outer edges, every n-th one where a panel's cells are too small."""
    w = cap.layer(layer)                                                      # (H, T, T)
    v = _view(cap, w, query_window, key_window, max_tokens, hide_first, log_scale)
    h = cap.n_heads
    rows, cols = _grid(h)
    panel = min(GRID_WIDTH_PX / cols, GRID_TARGET_PX)                         # px, each panel's side
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {i}" for i in range(h)],
                        shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.06 / cols + 0.01,
                        vertical_spacing=0.12 / rows)
    hover = _hover_data(cap, {**v, "weights": v["weights"][0]})
    for i in range(h):
        hover[..., 2] = v["weights"][i].astype(object)
        fig.add_trace(go.Heatmap(
            z=v["z"][i], x=v["keys"], y=v["queries"], customdata=hover.copy(), hovertemplate=_HOVER,
            name=f"L{layer} H{i}", coloraxis="coloraxis", hoverongaps=False,
        ), row=i // cols + 1, col=i % cols + 1)
    n = max(len(v["queries"]), len(v["keys"]))
    every = max(1, math.ceil(n * LABEL_PX / panel))
    fig.update_xaxes(**token_ticks(v["keys"], cap.labels, every), tickangle=-90 if every == 1 else None)
    fig.update_yaxes(**token_ticks(v["queries"], cap.labels, every), autorange="reversed")
    for i in range(h):          # square cells: each panel's y axis keeps its x axis's scale
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", scaleratio=1, constrain="domain")
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    fig.update_layout(
        title=_title(f"Layer {layer}: all {h} heads (rows: queries, columns: keys)", v["notes"]),
        coloraxis=dict(colorscale=COLORSCALE, colorbar=_colorbar(log_scale),
                       cmin=math.log10(LOG_FLOOR) if log_scale else 0.0, cmax=0.0 if log_scale else 1.0),
        plot_bgcolor="white", height=int(rows * (panel + 40) + 170), margin=dict(t=110, b=100),
    )
    return fig


def aggregate_figure(cap: AttentionCapture, layer: int, *,
                     query_window: tuple[int, int] | None = None, key_window: tuple[int, int] | None = None,
                     log_scale: bool = False, hide_first: bool = False, label_every: int | None = None,
                     max_tokens: int = HEAD_VIEW_TOKENS) -> go.Figure:
    """Mean and max over one layer's heads, side by side: where the layer as a whole looks,
    and whether any single head looks there hard."""
    w = cap.layer(layer).float()                                              # (H, T, T)
    agg = torch.stack([w.mean(0), w.amax(0)])                                 # (2, T, T)
    v = _view(cap, agg, query_window, key_window, max_tokens, hide_first, log_scale)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["mean over heads", "max over heads"],
                        horizontal_spacing=0.08)
    hover = _hover_data(cap, {**v, "weights": v["weights"][0]})
    for i, name in enumerate(("mean", "max")):
        hover[..., 2] = v["weights"][i].astype(object)
        fig.add_trace(go.Heatmap(z=v["z"][i], x=v["keys"], y=v["queries"], customdata=hover.copy(),
                                 hovertemplate=_HOVER, name=name, coloraxis="coloraxis",
                                 hoverongaps=False), row=1, col=i + 1)
    height = max(480, min(900, 14 * len(v["queries"]) + 250))
    rows_px, cols_px = height - 250, 420                    # each panel's plot area, about
    fig.update_xaxes(title="key", **token_ticks(v["keys"], cap.labels, label_every or _step(len(v["keys"]), cols_px)))
    fig.update_yaxes(autorange="reversed",
                     **token_ticks(v["queries"], cap.labels, label_every or _step(len(v["queries"]), rows_px)))
    fig.update_yaxes(title="query", row=1, col=1)
    fig.update_layout(
        height=height, title=_title(f"Layer {layer}: heads aggregated", v["notes"]),
        coloraxis=dict(colorscale=COLORSCALE, colorbar=_colorbar(log_scale),
                       cmin=math.log10(LOG_FLOOR) if log_scale else 0.0, cmax=0.0 if log_scale else 1.0),
        plot_bgcolor="white", margin=dict(t=110),
    )
    return fig


SCORE_TITLES = {
    "previous_token": "previous-token score", "first_token": "first-token (sink) score",
    "current_token": "current-token score", "entropy": "mean entropy (nats)", "induction": "induction score",
    "prompt_induction": "induction score on your text",
}


def head_scores_figure(scores: HeadScores, name: str | None = None) -> go.Figure:
    """Layer x head grid of one score, or of all five with buttons to switch.

    Each cell's ``customdata`` is ``[layer, head]``: the app reads a click from
    it to open that head's heatmap. Rows are layers (0 at the top), columns heads.
    """
    names = SCORE_NAMES if name is None else (name,)
    layers, heads = list(range(scores.n_layers)), list(range(scores.n_heads))
    cells = np.stack(np.meshgrid(layers, heads, indexing="ij"), axis=-1)     # (L, H, 2)
    fig = go.Figure()
    for i, n in enumerate(names):
        z = scores.score(n).numpy()
        fig.add_trace(go.Heatmap(
            z=z, x=heads, y=layers, customdata=cells, name=n, visible=i == 0,
            text=np.vectorize(lambda x: "" if np.isnan(x) else f"{x:.2f}")(z), texttemplate="%{text}" if z.size <= 400 else None,
            colorscale=SEQUENTIAL,
            zmin=0.0, zmax=None if n == "entropy" else 1.0, colorbar=dict(title=n.replace("_", " ")),
            hovertemplate=f"layer %{{customdata[0]}}, head %{{customdata[1]}}<br>{n}: %{{z:.3f}}<extra></extra>",
        ))
    src = "your prompt" if scores.source == "prompt" else "random tokens"

    def title(n: str) -> dict:
        where = "random sequence repeated twice" if n == "induction" else src
        if n == "prompt_induction":
            where = (f"the {scores.repeats} tokens of your prompt that occurred before" if scores.repeats
                     else "your prompt — no token in it repeats, so there is nothing to score: repeat a passage")
        return dict(text=f"{SCORE_TITLES[n]} of every head<br><sup>{SCORE_DOCS[n]}; measured on {where}</sup>")

    fig.update_layout(
        title=title(names[0]), xaxis=dict(title="head", tickmode="array", tickvals=heads),
        yaxis=dict(title="layer", tickmode="array", tickvals=layers, autorange="reversed"),
        plot_bgcolor="white", margin=dict(t=120),
    )
    if len(names) > 1:
        fig.update_layout(updatemenus=[dict(
            type="buttons", direction="right", x=0, y=-0.15, xanchor="left", yanchor="top",
            buttons=[dict(label=SCORE_TITLES[n].split(" (")[0].replace(" score", ""), method="update",
                          args=[{"visible": [j == i for j in range(len(names))]}, {"title": title(n)}])
                     for i, n in enumerate(names)],
        )])
    return fig
