"""Figures for the walkthrough, the KV-cache view and the sampling tree, sized for a projector.

Every font is at least ``MIN_FONT`` px (ticks, titles, cell text, legends,
hover), margins leave room for token labels, and no figure is shorter than
``MIN_HEIGHT`` px. Pure functions: data in, a ``go.Figure`` out.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .axes import short
from ..kv_view import KVTrace
from ..sampling_tree import SamplingTree, TreeNode
from ..walkthrough import Walkthrough, WalkStep
from .palette import ACCENT, DIVERGING, SEQUENTIAL

MIN_FONT = 16
TITLE_FONT = 20
MIN_HEIGHT = 360
LABEL_MARGIN = 150      # px left of the plot for token labels
WEIGHTS = SEQUENTIAL
MASKED = "#bdbdbd"
GREEDY = ACCENT
MEMORY = "#31a354"
OTHER = "#6baed6"

VECTOR_STEPS = ("tok_emb", "pos_emb", "input_embeddings", "norm1", "queries", "keys", "values",
                "context_vec", "out_proj", "norm2", "ff_expand", "ff_contract", "final_norm")


def _font(size: int = MIN_FONT) -> dict:
    return dict(size=size)


def _layout(fig: go.Figure, title: str, subtitle: str = "", height: int = 480, **kw) -> go.Figure:
    """Shared projector-friendly layout: big fonts everywhere, room for labels."""
    sub = f"<br><span style='font-size:{MIN_FONT}px'>{subtitle}</span>" if subtitle else ""
    margin = dict(l=LABEL_MARGIN, r=40, t=110 if subtitle else 80, b=80)
    margin.update(kw.pop("margin", {}))
    legend = dict(font=_font(), **kw.pop("legend", {}))
    fig.update_layout(
        title=dict(text=title + sub, font=_font(TITLE_FONT), x=0.01, xanchor="left"),
        font=_font(), height=max(MIN_HEIGHT, height), margin=margin, plot_bgcolor="white",
        hoverlabel=dict(font=_font()), legend=legend, **kw)
    fig.update_xaxes(tickfont=_font(), title_font=_font())
    fig.update_yaxes(tickfont=_font(), title_font=_font())
    fig.update_annotations(font_size=MIN_FONT)   # subplot titles and notes
    return fig


def _colorbar(title: str = "") -> dict:
    return dict(title=dict(text=title, font=_font()), tickfont=_font())


def _labels(wt: Walkthrough, n: int) -> list[str]:
    """Position-prefixed labels: repeated tokens stay apart on a categorical axis."""
    return [f"{i} {short(lab)}" for i, lab in enumerate(wt.tokens[:n])]


def _grid(values: list[list]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)


def _pct(p: float) -> str:
    """A probability readable at any size: 42%, 0.15%, 3.1e-05."""
    if p >= 0.1:
        return f"{p:.0%}"
    if p >= 0.001:
        return f"{p:.2%}"
    return f"{p:.1e}"


def _cell_text(z: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: "" if math.isnan(v) else f"{v:.2f}")(z)


def _vector_heatmap(z: np.ndarray, y: list[str], x0: int = 0, *, text: bool = True, **kw) -> go.Heatmap:
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    return go.Heatmap(
        z=z, x=list(range(x0, x0 + z.shape[1])), y=y, colorscale=DIVERGING, zmid=0.0, zmin=-lim, zmax=lim,
        text=_cell_text(z) if text else None, texttemplate="%{text}" if text else None,
        textfont=_font(), colorbar=_colorbar("value"), hoverongaps=False,
        hovertemplate="%{y}<br>feature %{x}: %{z:.4f}<extra></extra>", **kw)


def _step_title(step: WalkStep) -> tuple[str, str]:
    return step.title, f"shape {tuple(step.shape)} · showing {step.view}"


def _height(rows: int) -> int:
    return 46 * rows + 220


def _vector_figure(wt: Walkthrough, step: WalkStep) -> go.Figure:
    z = _grid(step.values)
    x0 = 0
    x_title = "feature index"
    if step.id == "context_vec":
        x0 = wt.head * (step.shape[-1] // wt.n_heads)
        x_title = f"feature index (head {wt.head}'s slice)"
    fig = go.Figure(_vector_heatmap(z, _labels(wt, z.shape[0]), x0))
    fig.update_xaxes(title=x_title, dtick=1 if z.shape[1] <= 16 else None)
    fig.update_yaxes(autorange="reversed", title="token")
    return _layout(fig, *_step_title(step), height=_height(z.shape[0]))


def _token_ids_figure(wt: Walkthrough, step: WalkStep) -> go.Figure:
    ids = step.values
    fig = go.Figure(go.Table(
        header=dict(values=["position", "token", "token id"], font=_font(), height=34, fill_color="#deebf7"),
        cells=dict(values=[list(range(len(ids))), [wt.tokens[i] for i in range(len(ids))], ids],
                   font=_font(), height=32)))
    return _layout(fig, *_step_title(step), height=34 * len(ids) + 220, margin=dict(l=40))


def _attention_figure(wt: Walkthrough, step: WalkStep, masked: bool = False, weights: bool = False) -> go.Figure:
    z = _grid(step.values)
    n = z.shape[0]
    labels = _labels(wt, n)
    keys = list(range(n))
    fig = go.Figure(go.Heatmap(
        z=z, x=keys, y=labels, colorscale=WEIGHTS if weights else DIVERGING,
        zmid=None if weights else 0.0, zmin=0.0 if weights else None, zmax=1.0 if weights else None,
        text=_cell_text(z), texttemplate="%{text}", textfont=_font(), hoverongaps=False,
        colorbar=_colorbar("weight" if weights else "score"), name=step.id,
        hovertemplate="query %{y}<br>key %{x}: %{z:.4f}<extra></extra>"))
    if masked:
        cover = np.where(np.isnan(z), 1.0, np.nan)
        fig.add_trace(go.Heatmap(
            z=cover, x=keys, y=labels, colorscale=[[0, MASKED], [1, MASKED]], showscale=False,
            text=np.where(np.isnan(z), "masked", ""), texttemplate="%{text}", textfont=dict(size=MIN_FONT,
                                                                                          color="#424242"),
            hoverongaps=False, name="masked", hovertemplate="query %{y}<br>key %{x}: -inf (masked)<extra></extra>"))
    if weights:
        sums = step.extra.get("row_sums", [float(np.nansum(r)) for r in z])
        fig.add_trace(go.Scatter(
            x=[n - 0.5 + 0.9] * n, y=labels, mode="text", text=[f"Σ = {s:.3f}" for s in sums],
            textfont=_font(), textposition="middle right", showlegend=False, hoverinfo="skip", cliponaxis=False))
        fig.update_xaxes(range=[-0.5, n + 1.6])
    fig.update_xaxes(title="key position", tickvals=keys, ticktext=[str(k) for k in keys])
    fig.update_yaxes(autorange="reversed", title="query (token)")
    title, sub = _step_title(step)
    return _layout(fig, title, sub.replace("None = -inf", "grey = -inf"), height=_height(n))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _gelu_figure(wt: Walkthrough, step: WalkStep) -> go.Figure:
    x = _grid(step.extra["input"]).ravel()
    y = _grid(step.values).ravel()
    lo = min(-4.0, float(np.nanmin(x)) - 0.5)
    hi = max(4.0, float(np.nanmax(x)) + 0.5)
    grid = np.linspace(lo, hi, 400)
    fig = go.Figure([
        go.Scatter(x=grid, y=_gelu(grid), mode="lines", name="GELU(x)", line=dict(color="#636363", width=3)),
        go.Scatter(x=x, y=y, mode="markers", name="this step's values",
                   marker=dict(size=10, color=OTHER, line=dict(color="#08519c", width=1)),
                   hovertemplate="in %{x:.3f} → out %{y:.3f}<extra></extra>"),
    ])
    fig.update_xaxes(title="input x (ff.layers[0] output)", zeroline=True, zerolinecolor="#bbb", gridcolor="#eee")
    fig.update_yaxes(title="GELU(x)", zeroline=True, zerolinecolor="#bbb", gridcolor="#eee")
    return _layout(fig, *_step_title(step), height=480,
                   legend=dict(orientation="h", y=-0.25, x=0))


def _shortcut_figure(wt: Walkthrough, step: WalkStep) -> go.Figure:
    before, after = _grid(step.extra["before"]), _grid(step.values)
    labels = _labels(wt, after.shape[0])
    lim = float(np.nanmax(np.abs(np.concatenate([before, after]))))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=["before: the shortcut (block input)" if step.id == "shortcut_1"
                                        else "before: the shortcut (after shortcut 1)",
                                        "after: shortcut + " + ("attention output" if step.id == "shortcut_1"
                                                                else "feed forward output")])
    for col, z in ((1, before), (2, after)):
        fig.add_trace(go.Heatmap(z=z, x=list(range(z.shape[1])), y=labels, coloraxis="coloraxis",
                                 hoverongaps=False, hovertemplate="%{y}<br>feature %{x}: %{z:.4f}<extra></extra>"),
                      row=1, col=col)
    fig.update_xaxes(title="feature index")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(coloraxis=dict(colorscale=DIVERGING, cmin=-lim, cmax=lim, colorbar=_colorbar("value")))
    return _layout(fig, *_step_title(step), height=_height(after.shape[0]), margin=dict(t=140))


def _top_bars_figure(wt: Walkthrough, step: WalkStep) -> go.Figure:
    top = step.extra["top"]
    what = "logit" if step.id == "logits" else "prob"
    chosen = top[0]["id"]
    x = [f"{r + 1}. {short(t['label'])}" for r, t in enumerate(top)]
    y = [t[what] for t in top]
    colors = [GREEDY if (step.id == "next_token" and t["id"] == chosen) else OTHER for t in top]
    fig = go.Figure(go.Bar(
        x=x, y=y, marker_color=colors, text=[f"{v:.2f}" if what == "logit" else _pct(v) for v in y],
        textposition="outside", textfont=_font(), cliponaxis=False,
        hovertemplate="%{x}<br>" + what + " %{y:.4f}<extra></extra>"))
    last = wt.tokens[step.extra["position"]]
    fig.update_xaxes(title=f"top {len(top)} next tokens after '{short(last)}'", tickangle=-30)
    fig.update_yaxes(title="logit" if what == "logit" else "probability", gridcolor="#eee",
                     rangemode="tozero" if what == "prob" else "normal")
    title, sub = _step_title(step)
    if step.id == "next_token":
        v = step.values
        sub = f"greedy pick: '{short(v['label'])}' (id {v['id']}, {_pct(v['prob'])})"
    else:
        sub = f"shape {tuple(step.shape)} · bars: the last position's top {len(top)}"
    return _layout(fig, title, sub, height=500, margin=dict(l=90, b=140))


def _other_blocks_figure(wt: Walkthrough, step: WalkStep) -> go.Figure:
    norms = step.values
    x = ["emb"] + [f"block {b}" for b in range(len(norms))]
    y = [step.extra["embedding"]] + list(norms)
    shown = step.extra["shown_block"]
    colors = ["#636363"] + [GREEDY if b == shown else OTHER for b in range(len(norms))]
    fig = go.Figure(go.Scatter(
        x=x, y=y, mode="lines+markers+text", text=[f"{v:.1f}" for v in y], textposition="top center",
        textfont=_font(), marker=dict(size=14, color=colors), line=dict(color=OTHER, width=3), cliponaxis=False,
        hovertemplate="%{x}: mean norm %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title="residual stream after", tickangle=-30 if len(x) > 8 else 0)
    fig.update_yaxes(title="mean L2 norm per position", rangemode="tozero", gridcolor="#eee")
    return _layout(fig, step.title, f"red: block {shown}, shown step by step; mean over positions",
                   height=460, margin=dict(l=100))


def step_figure(wt: Walkthrough, step_id: str) -> go.Figure:
    """The figure of one walkthrough step (see the module docstring for the conventions)."""
    step = wt.step(step_id)
    if step_id in VECTOR_STEPS:
        return _vector_figure(wt, step)
    if step_id == "token_ids":
        return _token_ids_figure(wt, step)
    if step_id == "attn_scores":
        return _attention_figure(wt, step)
    if step_id == "masked_scores":
        return _attention_figure(wt, step, masked=True)
    if step_id == "attn_weights":
        return _attention_figure(wt, step, weights=True)
    if step_id == "gelu":
        return _gelu_figure(wt, step)
    if step_id in ("shortcut_1", "shortcut_2"):
        return _shortcut_figure(wt, step)
    if step_id in ("logits", "probas", "next_token"):
        return _top_bars_figure(wt, step)
    if step_id == "other_blocks":
        return _other_blocks_figure(wt, step)
    raise KeyError(f"no figure for step {step_id!r}")


def kv_cache_figure(trace: KVTrace) -> go.Figure:
    """Top: bytes the cache holds (used vs allocated); bottom: MACs per step, cached vs recompute."""
    steps = trace.steps
    x = [s.cache_length for s in steps]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14,
                        subplot_titles=["KV cache memory", "work for this token (multiply-accumulates)"])
    kib = 1024.0
    fig.add_trace(go.Scatter(x=x, y=[s.bytes_used / kib for s in steps], mode="lines+markers",
                             name="memory used", line=dict(color=MEMORY, width=3), marker=dict(size=10),
                             hovertemplate="%{x} positions: %{y:,.1f} KiB used<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[s.bytes_allocated / kib for s in steps], mode="lines", name="memory allocated",
                             line=dict(color="#636363", width=2, dash="dash"),
                             hovertemplate="%{y:,.1f} KiB allocated<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[s.work.total for s in steps], mode="lines+markers", name="with the cache",
                             line=dict(color=OTHER, width=3), marker=dict(size=10),
                             hovertemplate="%{x}: %{y:,} MACs<extra>cached</extra>"), row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=[s.work.total_recompute for s in steps], mode="lines+markers",
                             name="book's loop (recompute all)", line=dict(color=GREEDY, width=3),
                             marker=dict(size=10),
                             hovertemplate="%{x}: %{y:,} MACs<extra>recompute</extra>"), row=2, col=1)
    fig.update_yaxes(title="KiB", rangemode="tozero", gridcolor="#eee", row=1, col=1)
    fig.update_yaxes(title="MACs", tickformat="~s", rangemode="tozero", gridcolor="#eee", row=2, col=1)
    fig.update_xaxes(title="tokens in the cache", row=2, col=1)
    sub = f"{len(trace.generated_ids)} new token(s), {trace.dtype}, context {trace.context_length}"
    if trace.stopped_at_context:
        sub += " · stopped: context full"
    return _layout(fig, "KV cache filling during generation", sub, height=680, margin=dict(l=110),
                   legend=dict(orientation="h", y=-0.14, x=0))


def _tree_layout(root: TreeNode) -> dict[int, tuple[float, float]]:
    """(x = depth, y = leaf order; a parent sits at its children's mean) for every node, by id()."""
    pos: dict[int, tuple[float, float]] = {}
    row = [0]

    def place(n: TreeNode) -> float:
        if not n.children:
            y = float(row[0])
            row[0] += 1
        else:
            y = float(np.mean([place(c) for c in n.children]))
        pos[id(n)] = (float(n.depth), y)
        return y

    place(root)
    return pos


def sampling_tree_figure(tree: SamplingTree) -> go.Figure:
    """The tree left to right: token and probabilities at each node, the greedy path in red."""
    pos = _tree_layout(tree.root)
    nodes = tree.nodes()
    fig = go.Figure()
    for greedy in (False, True):   # greedy edges drawn last, on top
        xs: list = []
        ys: list = []
        for n in nodes:
            for c in n.children:
                if c.greedy == greedy:
                    (x0, y0), (x1, y1) = pos[id(n)], pos[id(c)]
                    xs += [x0, x1, None]
                    ys += [y0, y1, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=greedy,
                                 name="greedy path (temperature 0)" if greedy else "",
                                 line=dict(color=GREEDY if greedy else "#bdbdbd", width=5 if greedy else 2)))
    prompt = "".join(tree.prompt_tokens[-4:])
    text = [f"…{short(prompt, 16)}" if n.token_id is None else
            f"<b>{short(n.token)}</b><br>{_pct(n.prob)} · path {_pct(n.path_prob)}" for n in nodes]
    fig.add_trace(go.Scatter(
        x=[pos[id(n)][0] for n in nodes], y=[pos[id(n)][1] for n in nodes], mode="markers", showlegend=False,
        marker=dict(size=[18 if n.greedy else 14 for n in nodes],
                    color=[GREEDY if n.greedy else OTHER for n in nodes]),
        text=text, customdata=[list(n.path) for n in nodes], hovertemplate="%{text}<extra></extra>"))
    # labels on a white ground, so edges do not run through them (one list: add_annotation is slow)
    fig.update_layout(annotations=[
        dict(x=pos[id(n)][0], y=pos[id(n)][1], text=label, showarrow=False, xanchor="left", xshift=12,
             align="left", bgcolor="rgba(255,255,255,0.9)", font=_font(),
             bordercolor=GREEDY if n.greedy else "rgba(0,0,0,0)")
        for n, label in zip(nodes, text)])
    n_leaves = max(1, len(tree.leaves()))
    fig.update_xaxes(range=[-0.3, tree.depth + 0.9], tickvals=list(range(tree.depth + 1)),
                     ticktext=["prompt"] + [f"token {d}" for d in range(1, tree.depth + 1)], showgrid=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    p = tree.params
    sub = (f"temperature {p.temperature:g}, top-k {p.top_k or 'off'}, top-p {p.top_p:g}; "
           f"probabilities are those sampling draws from")
    if tree.note:
        sub += f"; {tree.note}"
    return _layout(fig, f"Top {tree.branch} continuations, {tree.depth} tokens deep", sub,
                   height=max(420, 48 * n_leaves + 200), margin=dict(l=40, r=60),
                   legend=dict(orientation="h", y=-0.08, x=0))
