"""Figures of the logit lens: a layers x positions grid, and one token's path through the layers."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .axes import short, token_ticks, window
from ..inputs import visible
from ..logit_lens import LogitLens, TokenTrajectory
from .palette import SEQUENTIAL

LENS_VIEW_TOKENS = 128     # positions shown by default (the last ones)
CELL_TEXT_LIMIT = 40       # above this many positions, cell text would be unreadable: hover only


def logit_lens_figure(lens: LogitLens, *, position_window: tuple[int, int] | None = None,
                      label_every: int | None = None, max_tokens: int = LENS_VIEW_TOKENS) -> go.Figure:
    """Layers (embeddings at the bottom) x positions, coloured by the top-1 probability,
    cell text = the top-1 token; bold where it is the prompt's actual next token.
    Hover lists the top-k of the cell."""
    t = lens.n_tokens
    qs, qe = window(t, position_window, max_tokens)
    pos = list(range(qs, qe))
    n_layers = len(lens.layer_names)
    z = lens.top_probs[:, qs:qe, 0].numpy()                                   # (S, W)
    actual_next = [lens.token_ids[p + 1] if p + 1 < t else None for p in pos]
    text = np.empty(z.shape, dtype=object)
    hover = np.empty(z.shape, dtype=object)
    for s in range(n_layers):
        for j, p in enumerate(pos):
            ids = lens.top_ids[s, p].tolist()
            lab = short(lens.top_labels[s][p][0], 10)
            text[s, j] = f"<b>{lab}</b>" if ids[0] == actual_next[j] else lab
            lines = [f"{lens.top_labels[s][p][r]}  {float(lens.top_probs[s, p, r]):.3f}" for r in range(len(ids))]
            nxt = "" if actual_next[j] is None else f"<br>actual next: {lens.labels[p + 1]}"
            hover[s, j] = (f"{lens.layer_names[s]}, position {p} ({lens.labels[p]}){nxt}<br>"
                           f"rank of the final prediction: {int(lens.final_rank[s, p])}<br>" + "<br>".join(lines))
    show_text = len(pos) <= CELL_TEXT_LIMIT
    fig = go.Figure(go.Heatmap(
        z=z, x=pos, y=list(range(n_layers)), text=text, customdata=hover,
        texttemplate="%{text}" if show_text else None, textfont=dict(size=10),
        hovertemplate="%{customdata}<extra></extra>", colorscale=SEQUENTIAL, zmin=0.0, zmax=1.0,
        colorbar=dict(title="top-1 prob"),
    ))
    notes = []
    if (qs, qe) != (0, t):
        notes.append(f"positions {qs}-{qe - 1} of {t}")
    if not show_text:
        notes.append("hover for the predicted tokens")
    if lens.note:
        notes.append(lens.note)
    sub = "; ".join(["bold: the prompt's actual next token"] + notes)
    fig.update_layout(
        title=dict(text=f"Logit lens: the top prediction after each layer<br><sup>{sub}</sup>"),
        xaxis=dict(title="input token (position)", **token_ticks(pos, lens.labels, label_every)),
        yaxis=dict(title="after layer", tickmode="array", tickvals=list(range(n_layers)),
                   ticktext=list(lens.layer_names)),
        height=max(350, 28 * n_layers + 160), margin=dict(t=90),
        meta={"i18n_ticks": ["yaxis"]},      # the rows are layer names (interface text), not tokens
    )
    return fig


def trajectory_figure(traj: TokenTrajectory) -> go.Figure:
    """Probability (left axis) and rank (right axis, log, 1 at the top) of one token, layer by layer."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = list(traj.layer_names)
    fig.add_trace(go.Scatter(x=x, y=list(traj.probs), mode="lines+markers", name="probability",
                             hovertemplate="%{x}: p = %{y:.4f}<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=list(traj.ranks), mode="lines+markers", name="rank",
                             line=dict(dash="dot"), hovertemplate="%{x}: rank %{y}<extra></extra>"),
                  secondary_y=True)
    fig.update_yaxes(title_text="probability", range=[0, 1], secondary_y=False)
    top = math.log10(max(max(traj.ranks), 10) * 1.5)
    decades = [10 ** k for k in range(0, int(top) + 1)]        # 1, 10, 100...: no minor "2" and "5" labels
    fig.update_yaxes(title_text="rank (1 = top, log)", type="log", range=[top, -0.1], secondary_y=True,
                     tickmode="array", tickvals=decades, ticktext=[f"{d:,}" for d in decades])
    fig.update_layout(title=f"'{visible(traj.label) if traj.label else traj.token_id}' at position "
                            f"{traj.position}, layer by layer", xaxis_title="after layer", hovermode="x unified",
                      meta={"i18n_categories": ["x"]})    # the x values are layer names, not tokens
    return fig
