"""The one figure the inspection library does not draw: the alternatives of a generated token."""
from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go

from .palette import ACCENT, CATEGORIES

CHOSEN = ACCENT
OTHER = CATEGORIES[0]


def alternatives_figure(rows: Sequence[Sequence[Any]], title: str = "") -> go.Figure:
    """Horizontal bars, most likely at the top; the sampled token in red.

    ``rows`` are the alternatives table's rows: ``[rank, token, id, probability, chosen-mark]``.
    """
    fig = go.Figure()
    if rows:
        labels = [f"{r[0]}. {r[1]}" for r in rows]
        fig.add_trace(go.Bar(
            x=[float(r[3]) for r in rows], y=labels, orientation="h",
            marker_color=[CHOSEN if r[4] else OTHER for r in rows],
            text=[f"{float(r[3]):.1%}" for r in rows], textposition="outside",
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        ))
    fig.update_layout(
        title=dict(text=title or "The choices (red: drawn)"),
        xaxis=dict(title="probability", range=[0, min(1.0, max([float(r[3]) for r in rows] + [0.01]) * 1.3)]),
        yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=[f"{r[0]}. {r[1]}" for r in rows]),
        height=max(260, 26 * len(rows) + 110), margin=dict(l=10, r=10, t=60, b=40), showlegend=False,
    )
    return fig
