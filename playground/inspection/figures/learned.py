"""Figures of what the model has learned: neurons, embedding PCA, saliency, the q.k breakdown.

Pure functions, a result in, a ``go.Figure`` (or an HTML string) out, sized for a projector
like the other figures (16 px text). Colour-blind-safe scales only: magnitudes on a
sequential scale (``palette.SEQUENTIAL``), signed values on a diverging one centred at 0 (``palette.DIVERGING``:
red = negative, blue = positive), categories (word lists) on Okabe-Ito colours.
"""
from __future__ import annotations

import html
from typing import Callable

import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..embeddings import PointsPCA, ResidualPCA
from ..inputs import visible
from ..neuron_index import NeuronContexts
from ..neurons import DirectEffect, NeuronActivations, TopNeurons
from ..qk import QKBreakdown
from ..saliency import Saliency
from .axes import short, token_ticks
from .experiments import _style
from .palette import CATEGORIES, DIVERGING, NEGATIVE, POSITIVE, SEQUENTIAL

OKABE_ITO = CATEGORIES


def _pc(explained: tuple[float, ...], c: int) -> str:
    return f"PC{c + 1} ({explained[c]:.1%})" if c < len(explained) else f"PC{c + 1}"


def _sub(text: str) -> str:
    return f"<br><span style='font-size:16px'>{html.escape(text)}</span>" if text else ""


# --------------------------------------------------------------------------- neurons


def direct_effect_figure(e: DirectEffect) -> go.Figure:
    """Two bar charts: the tokens the neuron raises most (blue) and lowers most (red)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("raises", "lowers"), horizontal_spacing=0.25)
    for col, rows, colour in ((1, e.top, POSITIVE), (2, e.bottom, NEGATIVE)):
        fig.add_trace(go.Bar(x=[r["value"] for r in rows], y=[short(visible(r["token"]), 16) for r in rows],
                             orientation="h", marker_color=colour, name="raises" if col == 1 else "lowers",
                             hovertemplate="%{y}: %{x:.3f}<extra></extra>", showlegend=False), row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    return _style(fig, f"L{e.layer} N{e.neuron}: direct effect on the logits"
                       + _sub("out_head.weight @ (final_norm.scale * (w - mean w))"), height=120 + 34 * len(e.top))


def top_neurons_figure(t: TopNeurons) -> go.Figure:
    """The strongest neurons at one token, as bars (colour = activation, sequential)."""
    names = [f"L{n['layer']} N{n['neuron']}" for n in t.neurons]
    acts = [n["activation"] for n in t.neurons]
    fig = go.Figure(go.Bar(x=acts, y=names, orientation="h", marker=dict(color=acts, colorscale=SEQUENTIAL),
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="activation (GELU output)")
    return _style(fig, f"Top neurons at token {t.position} {html.escape(visible(t.token))}" + _sub(t.note),
                  height=120 + 30 * len(names))


def neuron_activation_figure(a: NeuronActivations, layer: int, neuron: int) -> go.Figure:
    """One neuron's activation on each token of the prompt (diverging colours, 0 = white)."""
    values = a.neuron(layer, neuron).tolist()
    fig = go.Figure(go.Bar(x=list(range(len(values))), y=values,
                           marker=dict(color=values, colorscale=DIVERGING, cmid=0),
                           customdata=list(a.labels), hovertemplate="%{x} %{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_xaxes(**token_ticks(range(len(values)), a.labels))
    fig.update_yaxes(title="activation")
    return _style(fig, f"L{layer} N{neuron} on your text" + _sub(a.note), height=420)


def neuron_contexts_html(c: NeuronContexts, decode: "Callable[[list[int]], str] | None" = None) -> str:
    """The top contexts as rows of text, the peak token boxed and coloured by its activation. With ``decode``
    (ids -> text) each side of the peak is decoded whole, so characters split over several byte tokens read
    as themselves and spaces as spaces; without it every token is shown with visible whitespace."""
    top = max((x["activation"] for x in c.contexts), default=1.0) or 1.0
    rows = []
    for x in c.contexts:
        frac = min(max(x["activation"] / top, 0.0), 1.0)
        colour = sample_colorscale(SEQUENTIAL, [0.35 + 0.65 * frac])[0]          # never too pale to see
        ink = "#fff" if frac > 0.4 else "#000"
        p, ids = x["peak"], list(x["token_ids"])
        if decode is not None:
            before, at, after = (html.escape(decode(ids[:p])), html.escape(visible(decode([ids[p]]))),
                                 html.escape(decode(ids[p + 1:])))
        else:
            toks = [html.escape(visible(t)) for t in x["labels"]]
            before, at, after = "".join(toks[:p]), toks[p], "".join(toks[p + 1:])
        peak = f'<b style="background:{colour};color:{ink};padding:1px 3px;border-radius:3px">{at}</b>'
        rows.append(f'<tr><td style="text-align:right;padding-right:12px">{x["activation"]:.3f}</td>'
                    f'<td style="white-space:pre-wrap">{before}{peak}{after}</td></tr>')
    ref = f'<div style="margin-top:6px">over: {html.escape(c.reference)}</div>' if c.reference else ""
    return (f'<div class="neuron-contexts" style="font-size:16px"><div><b>L{c.layer} N{c.neuron}</b>: '
            f'top {len(c.contexts)} contexts</div><table><tr><th>activation at the peak</th><th>context (peak boxed)</th></tr>'
            f'{"".join(rows)}</table>{ref}</div>')


# --------------------------------------------------------------------------- embeddings


def _scatter(dims: int, xyz, **kw) -> go.Scatter | go.Scatter3d:
    if dims == 3:
        return go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], **kw)
    return go.Scatter(x=xyz[:, 0], y=xyz[:, 1], **kw)


def _axes(fig: go.Figure, dims: int, explained: tuple[float, ...]) -> None:
    if dims == 3:
        fig.update_layout(scene=dict(xaxis_title=_pc(explained, 0), yaxis_title=_pc(explained, 1),
                                     zaxis_title=_pc(explained, 2)))
    else:
        fig.update_xaxes(title=_pc(explained, 0))
        fig.update_yaxes(title=_pc(explained, 1))


def _check_dims(dims: int, k: int) -> None:
    if dims not in (2, 3) or dims > k:
        raise ValueError(f"dims must be 2 or 3 (and at most the {k} components computed), got {dims}")


def embedding_pca_figure(p: PointsPCA, dims: int = 2) -> go.Figure:
    """Token points coloured by group (prompt, each word list, neighbours); positions coloured by position."""
    _check_dims(dims, p.coords.shape[1])
    xyz = p.coords.numpy()
    fig = go.Figure()
    mode = "markers+text" if len(p.ids) <= 80 else "markers"
    if p.kind == "positions":
        fig.add_trace(_scatter(dims, xyz, mode="markers+lines", line=dict(color="#bbbbbb", width=1),
                               marker=dict(color=list(p.ids), colorscale=SEQUENTIAL, size=5,
                                           colorbar=dict(title="position")),
                               text=list(p.labels), hovertemplate="position %{text}<extra></extra>"))
        title = "Positional embeddings (PCA), coloured by position"
    else:
        for gi, group in enumerate(dict.fromkeys(p.groups)):
            idx = [i for i, g in enumerate(p.groups) if g == group]
            fig.add_trace(_scatter(dims, xyz[idx], mode=mode, name=group, text=[p.labels[i] for i in idx],
                                   textposition="top center", marker=dict(color=OKABE_ITO[gi % len(OKABE_ITO)], size=8),
                                   hovertemplate="%{text}<extra>%{fullData.name}</extra>"))
        title = "Token embeddings (PCA)"
    _axes(fig, dims, p.explained)
    return _style(fig, title + _sub(p.note), height=640)


def residual_pca_figure(r: ResidualPCA, dims: int = 2) -> go.Figure:
    """Each token's path through the layers in one PCA; markers coloured by stage (embed .. last block)."""
    _check_dims(dims, r.coords.shape[2])
    S = len(r.stages)
    fig = go.Figure()
    for t, label in enumerate(r.labels):
        xyz = r.line(t).numpy()
        fig.add_trace(_scatter(dims, xyz, mode="lines+markers", name=f"{t} {short(label)}",
                               line=dict(color=OKABE_ITO[t % len(OKABE_ITO)], width=2),
                               marker=dict(color=list(range(S)), colorscale=SEQUENTIAL, cmin=0, cmax=S - 1, size=6),
                               text=list(r.stages), hovertemplate=f"{html.escape(label)} · %{{text}}<extra></extra>"))
    _axes(fig, dims, r.explained)
    return _style(fig, "Residual stream across layers (one PCA)"
                  + _sub("marker colour: embed (light) to the last block (dark). " + r.note), height=640)


# --------------------------------------------------------------------------- saliency and q.k


def saliency_figure(s: Saliency) -> go.Figure:
    """One bar per input token (diverging, 0 = white); the title gives the target and, for IG, the gap."""
    values = s.scores.tolist()
    lim = max((abs(v) for v in values), default=1.0) or 1.0
    fig = go.Figure(go.Bar(x=list(range(len(values))), y=values,
                           marker=dict(color=values, colorscale=DIVERGING, cmin=-lim, cmax=lim),
                           customdata=list(s.labels), hovertemplate="%{x} %{customdata}: %{y:.4f}<extra></extra>"))
    fig.update_xaxes(**token_ticks(range(len(values)), s.labels))
    fig.update_yaxes(title="contribution to the logit")
    what = "integrated gradients" if s.method == "integrated_gradients" else "gradient × input"
    sub = f"target {visible(s.target['token'])}, logit {s.f_input:.3f}"
    if s.completeness_gap is not None:
        sub += (f"; n={s.n_steps}: sum of scores {float(s.scores.sum()):.3f} vs f(x)-f(0) "
                f"{s.f_input - s.f_baseline:.3f} (gap {s.completeness_gap:+.3f})")
    return _style(fig, f"Input saliency: {what}" + _sub(" ".join(x for x in (sub, s.note) if x)), height=440)


def qk_figure(b: QKBreakdown) -> go.Figure:
    """q ⊙ k per dimension and key (diverging), then each key's score and its softmax weight."""
    T = len(b.labels)
    seen = [j for j in range(T) if not b.mask[j]]
    fig = make_subplots(rows=3, cols=1, row_heights=[0.6, 0.2, 0.2], vertical_spacing=0.08, shared_xaxes=True,
                        subplot_titles=("q ⊙ k (rows: head dimensions)", "score = Σ(q ⊙ k) / √d", "softmax weight"))
    prod = b.products[:, seen].numpy()
    lim = float(abs(prod).max()) or 1.0
    fig.add_trace(go.Heatmap(z=prod, x=seen, colorscale=DIVERGING, zmin=-lim, zmax=lim, zmid=0,
                             colorbar=dict(title="q·k part", len=0.55, y=0.75),
                             hovertemplate="key %{x}, dim %{y}: %{z:.4f}<extra></extra>"), row=1, col=1)
    scores = b.scores[seen].tolist()
    fig.add_trace(go.Bar(x=seen, y=scores, marker=dict(color=scores, colorscale=DIVERGING, cmid=0),
                         hovertemplate="key %{x}: %{y:.3f}<extra>score</extra>", showlegend=False), row=2, col=1)
    weights = b.weights[seen].tolist()
    fig.add_trace(go.Bar(x=seen, y=weights, marker=dict(color=weights, colorscale=SEQUENTIAL, cmin=0, cmax=1),
                         hovertemplate="key %{x}: %{y:.4f}<extra>weight</extra>", showlegend=False), row=3, col=1)
    fig.update_yaxes(autorange="reversed", title="dim", row=1, col=1)
    fig.update_xaxes(**token_ticks(seen, b.labels), row=3, col=1)
    sub = f"query {b.query} {visible(b.labels[b.query])}; keys after it are masked (not shown). {b.note}"
    return _style(fig, f"Why this weight: L{b.layer} H{b.head}" + _sub(sub), height=760)
