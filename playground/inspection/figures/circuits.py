"""Figures of a circuit: the graph, the recovered fraction against N, attribution against patching.

Pure functions, a :class:`~playground.inspection.circuit_result.Circuit` in, a
``go.Figure`` out, in the house style of :mod:`.experiments` (16 px text,
title with a subtitle line, never shorter than 360 px). Edge colours are a
colour-blind-safe diverging pair: blue ``#2166ac`` for a negative score
(corrupting the edge lowers the metric: in the clean run it pushes toward the
target), orange-red ``#b2182b`` for a positive one. Head nodes carry
``customdata = [layer, head]`` so that a click can open that head elsewhere.
"""
from __future__ import annotations

import html
import math

import plotly.graph_objects as go

from ..circuit_graph import INPUT, LOGITS
from ..circuit_result import Circuit

FONT = 16
TITLE_FONT = 20
MIN_HEIGHT = 360
NEGATIVE, POSITIVE = "#2166ac", "#b2182b"
IDLE_NODE, LIVE_NODE = "#d9d9d9", "#252525"
WIDTH_BINS = 4                          # line widths per sign: plotly draws one width per trace
MAX_WIDTH = 9.0
MAX_DRAWN_EDGES = 400


def _style(fig: go.Figure, title: str, subtitle: str, height: int, left: int = 80) -> go.Figure:
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>{subtitle}</sup>", font=dict(size=TITLE_FONT), x=0.01, xanchor="left"),
        font=dict(size=FONT), height=max(MIN_HEIGHT, height), margin=dict(l=left, r=30, t=90, b=60),
        hoverlabel=dict(font_size=FONT), legend=dict(font=dict(size=FONT)), plot_bgcolor="white",
    )
    fig.update_xaxes(tickfont=dict(size=FONT), title_font=dict(size=FONT), automargin=True)
    fig.update_yaxes(tickfont=dict(size=FONT), title_font=dict(size=FONT), automargin=True)
    return fig


def _subtitle(c: Circuit) -> str:
    t, d = html.escape(c.target["token"]), html.escape(c.distractor["token"])
    rec = "undefined" if c.recovered is None else f"{c.recovered:.3f}"
    return (f"M = logit('{t}') - logit('{d}'): clean {c.m_clean:.3f}, corrupted {c.m_corrupted:.3f}, "
            f"circuit {c.m_circuit:.3f}; recovered {rec}")


# --------------------------------------------------------------------------- the graph


def node_positions(n_layers: int, n_heads: int) -> dict[str, tuple[float, float]]:
    """``input`` at the bottom, ``logits`` at the top; per layer a row of heads and, half a row above them to
    the right, that layer's MLP (it reads what the heads wrote): one row per layer, so a 12-layer model fits
    a projector's screen."""
    pos = {INPUT: (0.0, 0.0), LOGITS: (0.0, n_layers + 1.0)}
    centre = (n_heads - 1) / 2
    for layer in range(n_layers):
        for head in range(n_heads):
            pos[f"L{layer}H{head}"] = (head - centre, layer + 1.0)
        pos[f"L{layer} MLP"] = (centre + 1.5, layer + 1.5)
    return pos


def _edge_traces(drawn: list[dict], pos: dict[str, tuple[float, float]]) -> list[go.Scatter]:
    """Lines grouped by sign and width bin (one trace each), then one marker per edge midpoint for hover."""
    biggest = max((abs(e["score"]) for e in drawn), default=0.0) or 1.0
    groups: dict[tuple[bool, int], list[dict]] = {}
    for e in drawn:
        size = min(WIDTH_BINS - 1, int(WIDTH_BINS * abs(e["score"]) / biggest))
        groups.setdefault((e["score"] < 0, size), []).append(e)
    traces = []
    for (negative, size), edges in sorted(groups.items()):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for e in edges:
            (x0, y0), (x1, y1) = pos[e["upstream"]], pos[e["downstream"]]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
        sign = "score < 0" if negative else "score > 0"
        traces.append(go.Scatter(
            x=xs, y=ys, mode="lines", hoverinfo="skip", legendgroup=sign, showlegend=False, name=sign,
            line=dict(color=NEGATIVE if negative else POSITIVE, width=1 + (MAX_WIDTH - 1) * (size + 1) / WIDTH_BINS),
            opacity=0.75, meta="edges"))
    mids = [((pos[e["upstream"]][0] + pos[e["downstream"]][0]) / 2,
             (pos[e["upstream"]][1] + pos[e["downstream"]][1]) / 2) for e in drawn]
    traces.append(go.Scatter(
        x=[m[0] for m in mids], y=[m[1] for m in mids], mode="markers", name="edge", showlegend=False,
        marker=dict(size=7, color=[NEGATIVE if e["score"] < 0 else POSITIVE for e in drawn], opacity=0.35),
        text=[html.escape(f"{e['upstream']} → {e['downstream']}") + f"<br>score {e['score']:+.4g}<br>rank {e['rank']}"
              for e in drawn],
        hovertemplate="%{text}<extra></extra>", meta="edge hover"))
    return traces


def _node_traces(c: Circuit, pos: dict[str, tuple[float, float]], live: set[str]) -> list[go.Scatter]:
    heads = [f"L{l}H{h}" for l in range(c.n_layers) for h in range(c.n_heads)]
    others = [INPUT] + [f"L{l} MLP" for l in range(c.n_layers)] + [LOGITS]

    def colours(names: list[str]) -> list[str]:
        return [LIVE_NODE if n in live or n in (INPUT, LOGITS) else IDLE_NODE for n in names]

    def hover(names: list[str]) -> list[str]:
        return [html.escape(n) + ("<br>in the circuit" if n in live else "<br>not in the circuit") for n in names]

    head_size = max(6, min(16, int(300 / max(c.n_heads, 1))))
    return [
        go.Scatter(x=[pos[n][0] for n in heads], y=[pos[n][1] for n in heads], mode="markers", name="heads",
                   marker=dict(size=head_size, color=colours(heads), line=dict(width=1, color="#636363")),
                   customdata=[[l, h] for l in range(c.n_layers) for h in range(c.n_heads)],
                   text=hover(heads), hovertemplate="%{text}<br>click: attention of this head<extra></extra>",
                   showlegend=False, meta="heads"),
        go.Scatter(x=[pos[n][0] for n in others], y=[pos[n][1] for n in others], mode="markers+text",
                   name="input, MLPs, logits", text=[n.split(" ")[-1] if " " in n else n for n in others],
                   textposition="middle right", textfont=dict(size=FONT - 2),
                   marker=dict(size=16, symbol="square", color=colours(others), line=dict(width=1, color="#636363")),
                   hovertext=hover(others), hovertemplate="%{hovertext}<extra></extra>", showlegend=False,
                   meta="other nodes"),
    ]


def circuit_graph_figure(c: Circuit, *, max_edges: int = MAX_DRAWN_EDGES) -> go.Figure:
    """The circuit's edges (the ``max_edges`` strongest at most) as lines between nodes laid out by layer.

    Traces: the edge lines (``meta="edges"``, one per sign and width bin), one hover marker per
    drawn edge at its midpoint (``meta="edge hover"``), the heads (``meta="heads"``,
    ``customdata [layer, head]``), the other nodes (``meta="other nodes"``), two legend entries.
    """
    pos = node_positions(c.n_layers, c.n_heads)
    circuit = c.circuit_edges()
    drawn = circuit[:max_edges]
    live = {n for e in drawn for n in (e["upstream"], e["downstream"])}
    fig = go.Figure(_edge_traces(drawn, pos) + _node_traces(c, pos, live))
    for colour, label in ((NEGATIVE, "carries the clean answer (score < 0)"), (POSITIVE, "works against it (score > 0)")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=colour, width=4), name=label,
                                 meta="legend"))
    ticks = [0.0] + [l + 1.0 for l in range(c.n_layers)] + [c.n_layers + 1.0]
    labels = ["input"] + [f"layer {l}" for l in range(c.n_layers)] + ["logits"]
    fig.update_yaxes(tickmode="array", tickvals=ticks, ticktext=labels, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False,
                     range=[-(c.n_heads - 1) / 2 - 1, (c.n_heads - 1) / 2 + 3.5])
    fig.update_layout(legend=dict(orientation="h", y=-0.02, yanchor="top", x=0.0, font=dict(size=FONT - 2)),
                      meta={"i18n_ticks": ["yaxis"], "i18n_categories": ["text", "hovertext"]})   # interface text
    shown = f"{len(drawn)} of {len(circuit)} edges" if len(drawn) < len(circuit) else f"{len(circuit)} edges"
    chosen = f"top {c.n_edges}" if c.n_edges is not None else f"|score| >= {c.threshold:g}"
    rec = "undefined" if c.recovered is None else f"{c.recovered:.0%}"
    return _style(fig, f"Circuit: {shown}, recovering {rec}", f"{chosen} by |score|, pruned to paths from input to logits",
                  height=38 * (c.n_layers + 2) + 200, left=90)


# --------------------------------------------------------------------------- the curve


def _chosen_size(c: Circuit) -> int:
    if c.n_edges is not None:
        return c.n_edges
    return sum(1 for e in c.edges if abs(e["score"]) >= (c.threshold or 0.0))


def recovered_curve_figure(c: Circuit) -> go.Figure:
    """Recovered fraction (exact, one patched forward each) against N, the number of top edges kept."""
    points = [p for p in c.curve if p["recovered"] is not None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p["n_edges"] for p in points], y=[p["recovered"] for p in points], mode="lines+markers",
        name="top-N edges", marker=dict(size=9, color=NEGATIVE), line=dict(color=NEGATIVE, width=3),
        customdata=[[p["n_kept"], p["metric"]] for p in points],
        hovertemplate="top %{x} edges (%{customdata[0]} after pruning)<br>recovered %{y:.3f}<br>"
                      "M = %{customdata[1]:.3f}<extra></extra>"))
    if c.recovered is not None:
        fig.add_trace(go.Scatter(
            x=[_chosen_size(c)], y=[c.recovered], mode="markers", name="this circuit",
            marker=dict(size=16, symbol="star", color=POSITIVE),
            hovertemplate="this circuit: %{x} edges<br>recovered %{y:.3f}<extra></extra>"))
    for level in (0.0, 1.0):
        fig.add_hline(y=level, line=dict(color="#636363", width=1, dash="dash"))
    if not points:
        fig.add_annotation(text="recovered fraction undefined: the clean and corrupted metrics are equal",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(type="log", title_text="N: edges kept (top by |score|)")
    fig.update_yaxes(title_text="recovered fraction")
    return _style(fig, "Recovered fraction against N", "exact: every other edge patched to its corrupted value",
                  height=460)


# --------------------------------------------------------------------------- the per-head check


def head_check_figure(c: Circuit) -> go.Figure:
    """Per head: the attribution estimate (x) against exact activation patching (y), with the line y = x."""
    heads = list(c.heads)
    fig = go.Figure()
    if not heads:
        fig.add_annotation(text="no per-head check in this result (find_circuit(..., check_heads=True))",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        return _style(fig, "Attribution vs patching, per head", _subtitle(c), height=460)
    xs, ys = [h["attribution"] for h in heads], [h["patched"] for h in heads]
    lo, hi = min(xs + ys), max(xs + ys)
    pad = 0.05 * (hi - lo or 1.0)
    fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines", name="y = x",
                             line=dict(color="#636363", dash="dash"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers", name="heads", customdata=[[h["layer"], h["head"]] for h in heads],
        marker=dict(size=10, color=[h["layer"] for h in heads], colorscale="Viridis",
                    colorbar=dict(title=dict(text="layer", font=dict(size=FONT)), tickfont=dict(size=FONT))),
        text=[h["name"] for h in heads],
        hovertemplate="%{text}<br>estimate %{x:+.4g}<br>patched %{y:+.4g}<extra></extra>"))
    err = math.sqrt(sum((x - y) ** 2 for x, y in zip(xs, ys)) / len(xs))
    fig.update_xaxes(title_text="attribution estimate: (z_corr - z_clean) · dM/dz")
    fig.update_yaxes(title_text="exact: M(head from corrupted) - M(clean)")
    sub = f"{len(heads)} heads; root-mean-square gap {err:.3g}; on the line, the linear estimate is exact"
    return _style(fig, "Attribution vs patching, per head", sub, height=520)
