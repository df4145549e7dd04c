"""Figure of a next-token distribution: paired bars, the model's view and what sampling draws from."""
from __future__ import annotations

import plotly.graph_objects as go

from .axes import short
from ..next_token import STAGE_TITLES, STAGES, NextTokenDistribution

STAGE_COLORS = {"model": "#9e9e9e", "temperature": "#9ecae1", "top_k": "#4292c6", "top_p": "#08519c"}


def next_token_figure(dist: NextTokenDistribution, *, stages: bool = False) -> go.Figure:
    """Paired bars per candidate: the model's probability and what sampling draws from;
    ``stages=True`` shows all four stages. The rest of the vocabulary is a number in the subtitle,
    not a bar: as a bar it would dwarf the candidates (often 80% or more of the mass)."""
    shown = STAGES if stages else ("model", "top_p")
    x = [f"{r + 1}. {short(lab)}" for r, lab in enumerate(dist.labels)]
    fig = go.Figure()
    top = 0.0
    for s in shown:
        y = list(dist.probs[s])
        top = max([top, *y])
        fig.add_trace(go.Bar(
            x=x, y=y, name=STAGE_TITLES[s], marker_color=STAGE_COLORS[s],
            text=[f"{v:.1%}" if v >= 0.0005 else "" for v in y], textposition="outside",
            customdata=list(dist.token_ids),
            hovertemplate="%{x}<br>" + STAGE_TITLES[s] + ": %{y:.4f}<extra></extra>",
        ))
    p = dist.params
    controls = (f"temperature {p.temperature:g}, top-k {p.top_k or 'off'}, "
                f"top-p {p.top_p:g}; {dist.n_kept:,} token(s) can be drawn")
    rest = " · ".join(f"{STAGE_TITLES[s]} {dist.other[s]:.1%}" for s in shown)
    sub = controls + f"<br>all other tokens together: {rest}" + (f"; {dist.note}" if dist.note else "")
    fig.update_layout(
        barmode="group", yaxis=dict(title="probability", range=[0, min(1.0, top * 1.25) or 1.0]),
        xaxis_title="candidate next token",
        title=dict(text=f"What comes after '{dist.context_label}'?<br><sup>{sub}</sup>"),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"), margin=dict(t=130),
    )
    return fig
