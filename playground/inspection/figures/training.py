"""Figures of a live training run (the Train tab): the loss curves and each head's scores over the steps,
with chance and the phase change marked. Plain numbers in (no run object), a ``go.Figure`` out."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .palette import ACCENT, CATEGORIES, INK, MUTED

MAX_POINTS = 600                   # per curve: longer runs are averaged over buckets of steps


def bucketed(steps: Sequence[int], values: Sequence[float], max_points: int = MAX_POINTS,
             smooth: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` averaged over the last ``smooth`` steps (a batch's loss is noisy), then thinned to
    at most ``max_points`` (the last step always kept)."""
    s = np.asarray(steps, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return s, v
    k = min(smooth, v.size)
    csum = np.cumsum(np.insert(v, 0, 0.0))
    lo = np.maximum(np.arange(1, v.size + 1) - k, 0)
    mean = (csum[1:] - csum[lo]) / (np.arange(1, v.size + 1) - lo)
    every = max(1, math.ceil(v.size / max_points))
    keep = np.unique(np.append(np.arange(v.size - 1, -1, -every)[::-1], v.size - 1))
    return s[keep], mean[keep]


def _phase_line(fig: go.Figure, phase_step: int | None, phase_seconds: float | None, **where) -> None:
    if phase_step is None:
        return
    fig.add_vline(x=phase_step, line=dict(color=ACCENT, width=2, dash="dash"), **where)


def loss_figure(steps: Sequence[int], loss: Sequence[float], vocab: int, *, first: Sequence[float] = (),
                repeats: Sequence[float] = (), phase_step: int | None = None, phase_seconds: float | None = None,
                total_steps: int | None = None) -> go.Figure:
    """The training loss over the steps (a running mean of 10 steps); for copying, the loss on the first
    copy and on the copies after it too. Chance (ln V) is a dotted line, the phase change a dashed one with its
    step and time written low on its left (where every curve was still near chance)."""
    fig = go.Figure()
    chance = math.log(vocab)
    # Short names: one row of legend under the title, even at projector sizes.
    curves = [("the copies", repeats, ACCENT, 4), ("the first copy", first, MUTED, 3),
              ("all tokens", loss, INK, 2)] if len(repeats) else [("training loss", loss, INK, 4)]
    for name, values, colour, width in curves:
        x, y = bucketed(steps, values)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=colour, width=width),
                                 hovertemplate="step %{x}<br>loss %{y:.3f}<extra>%{fullData.name}</extra>"))
    fig.add_hline(y=chance, line=dict(color=MUTED, width=1.5, dash="dot"))
    fig.add_annotation(x=1, xref="paper", xanchor="right", y=chance, yanchor="top", showarrow=False,
                       text=f"chance: ln {vocab:,} = {chance:.2f}", font=dict(color="#444"))
    title = "Loss while it trains"
    if phase_step is not None:
        _phase_line(fig, phase_step, phase_seconds)
        # Left of the line, low: before the phase change every loss sat near chance, so nothing is drawn there.
        fig.add_annotation(x=phase_step, y=0.04 * chance, xanchor="right", yanchor="bottom", xshift=-6,
                           showarrow=False, align="right", font=dict(color=ACCENT),
                           text=f"phase change<br>step {phase_step:,}, {phase_seconds:.0f} s")
    top = max([chance * 1.15] + [float(np.max(v)) * 1.02 for _, v, _, _ in curves if len(v)][:1])
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss (nats)", height=500,
                      yaxis=dict(range=[0, min(top, chance * 1.6)]),
                      xaxis=dict(range=[0, max(total_steps or 0, steps[-1] if len(steps) else 1)]),
                      legend=dict(orientation="h", x=0, xanchor="left", y=1.0, yanchor="bottom"),
                      showlegend=len(curves) > 1, margin=dict(t=130))
    return fig


def head_score_figure(steps: Sequence[int], previous_token: np.ndarray, induction: np.ndarray, *,
                      phase_step: int | None = None, total_steps: int | None = None,
                      chosen: tuple[int, int] | None = None) -> go.Figure:
    """Each head's previous-token and induction score (``(N, L, H)`` over ``N`` probes) as lines, a colour
    per layer; the head on show (``chosen``) drawn thick, the best head of each score named at its end."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("previous-token score", "induction score"),
                        horizontal_spacing=0.08, shared_yaxes=True)
    n_layers, n_heads = previous_token.shape[1:] if previous_token.ndim == 3 else (0, 0)
    for col, scores in ((1, previous_token), (2, induction)):
        if not len(steps):
            continue
        best = np.unravel_index(int(np.argmax(scores[-1])), scores.shape[1:])
        for layer in range(n_layers):
            for head in range(n_heads):
                thick = (layer, head) == chosen
                fig.add_trace(go.Scatter(
                    x=list(steps), y=scores[:, layer, head], mode="lines", name=f"L{layer}H{head}",
                    legendgroup=f"L{layer}H{head}", showlegend=False,
                    line=dict(color=CATEGORIES[layer % len(CATEGORIES)], width=5 if thick else 2,
                              dash="solid" if thick or (layer, head) == best else "dot"),
                    hovertemplate=f"L{layer}H{head}<br>step %{{x}}<br>score %{{y:.2f}}<extra></extra>"),
                    row=1, col=col)
        fig.add_annotation(x=steps[-1], y=float(scores[-1][best]), text=f"L{best[0]}H{best[1]}", showarrow=False,
                           xanchor="right", yanchor="bottom", row=1, col=col, font=dict(color=INK))
        _phase_line(fig, phase_step, None, row=1, col=col)
    span = [0, max(total_steps or 0, steps[-1] if len(steps) else 1)]
    fig.update_xaxes(title_text="step", range=span)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title_text="score (0-1)", row=1, col=1)
    fig.update_layout(title="Each head's scores on the probe (a colour per layer)", height=360, margin=dict(t=90))
    return fig
