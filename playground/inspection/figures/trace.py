"""The shape trace as a data-flow diagram: one box per step, top to bottom.

Each box shows the step, the real shapes in and out, and its parameters;
hovering shows the one-sentence explanation (English or Chinese). The two
shortcut connections of a block are drawn as brackets on the left, from the
stream they carry to the add that receives it. Collapsed blocks are one box.
"""
from __future__ import annotations

import textwrap

import plotly.graph_objects as go

from ..trace import ShapeTrace, TraceRow

KIND_COLORS = {
    "input": "#e8e8e8", "embedding": "#c6dbef", "norm": "#fdd0a2", "attention": "#c7e9c0",
    "residual": "#dadaeb", "feed-forward": "#fcbba1", "output": "#9ecae1", "blocks": "#fff2ae",
}
_KINDS = {
    "token_ids": "input", "tok_emb": "embedding", "pos_emb": "embedding", "embed": "residual",
    "norm1": "norm", "norm2": "norm", "final_norm": "norm", "query": "attention", "key": "attention",
    "value": "attention", "split_heads": "attention", "scores": "attention", "mask": "attention",
    "softmax": "attention", "context": "attention", "out_proj": "attention", "resid_mid": "residual",
    "resid_post": "residual", "ff_hidden": "feed-forward", "gelu": "feed-forward", "ff_out": "feed-forward",
    "logits": "output", "blocks": "blocks",
}
ROW_PX = 34


def step_kind(key: str) -> str:
    return _KINDS.get(key, "input")


def _wrap(text: str, width: int) -> str:
    return "<br>".join(textwrap.wrap(text, width)) if " " in text else \
        "<br>".join(text[i:i + width // 2] for i in range(0, len(text), width // 2))


def trace_figure(trace: ShapeTrace, *, lang: str = "en", expand: bool = False) -> go.Figure:
    """Flow diagram of the (collapsed, unless ``expand``) trace; ``lang`` "en" or "zh"."""
    rows: list[TraceRow] = list(trace.rows if expand else trace.collapsed())
    zh = lang == "zh"
    n = len(rows)
    fig = go.Figure()
    shapes: list[dict] = []
    notes: list[dict] = []   # one add_shape/add_annotation call each would re-validate the figure: slow
    half = 0.38
    for i, r in enumerate(rows):
        y = -i
        shapes.append(dict(type="rect", x0=0, x1=1, y0=y - half, y1=y + half, line=dict(color="#888", width=1),
                           fillcolor=KIND_COLORS[step_kind(r.key)], layer="below"))
        title = r.title_zh if zh else r.title
        prefix = "" if r.block is None or r.repeat > 1 else (f"第 {r.block} 块 · " if zh else f"block {r.block} · ")
        notes.append(dict(x=0.01, y=y, text=f"<b>{prefix}{title}</b>", showarrow=False, xanchor="left",
                          font=dict(size=12)))
        notes.append(dict(x=0.50, y=y, text=f"{r.input_text()} → {r.output_text()}" if r.inputs else r.output_text(),
                          showarrow=False, xanchor="left", font=dict(size=11, family="monospace")))
        if r.params:
            notes.append(dict(x=0.99, y=y, text=f"{r.params:,}", showarrow=False, xanchor="right",
                              font=dict(size=11, color="#444")))
        if i:
            notes.append(dict(x=0.25, y=y + half, ax=0.25, ay=y + 1 - half, xref="x", yref="y",
                              axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1,
                              arrowwidth=1, arrowcolor="#666", text=""))
    # shortcut brackets: the stream before norm1 -> the first add; that add -> the second add
    index = {(r.key, r.block): i for i, r in enumerate(rows)}
    for i, r in enumerate(rows):
        if r.key not in ("resid_mid", "resid_post") or r.repeat > 1:
            continue
        src_key = "norm1" if r.key == "resid_mid" else "resid_mid"
        src = index.get((src_key, r.block))
        if src is None:
            continue
        src = src - 1 if r.key == "resid_mid" else src
        x = -0.04 if r.key == "resid_mid" else -0.07
        shapes.append(dict(type="path", path=f"M 0,{-src} L {x},{-src} L {x},{-i} L 0,{-i}",
                           line=dict(color="#6a51a3", width=1.5, dash="dot")))
    texts = []
    for r in rows:
        expl = " ".join(x for x in ((r.zh, r.note_zh) if zh else (r.en, r.note)) if x)
        params = f"{r.params:,} 个参数" if zh else f"{r.params:,} parameters"
        texts.append(f"<b>{r.title_zh if zh else r.title}</b> — {r.module}<br>{r.shape}<br>"
                     f"{_wrap(expl, 40 if zh else 80)}<br>{params}")
    fig.add_trace(go.Scatter(x=[0.5] * n, y=[-i for i in range(n)], mode="markers", hovertext=texts,
                             hoverinfo="text", marker=dict(size=20, opacity=0), showlegend=False))
    title = "前向传播中每一步的真实形状" if zh else "Every step of the forward pass, with the real shapes"
    sub = (f"{len(trace.token_ids)} 个词元" if zh else f"{len(trace.token_ids)} tokens") + \
        (f"; {trace.note}" if trace.note else "")
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>{sub}; {'悬停查看说明' if zh else 'hover a step for what it does'}</sup>"),
        xaxis=dict(visible=False, range=[-0.1, 1.01], fixedrange=True),
        yaxis=dict(visible=False, range=[-n + 0.4, 0.6], fixedrange=True),
        height=ROW_PX * n + 120, margin=dict(l=10, r=10, t=80, b=10), plot_bgcolor="white",
        shapes=shapes, annotations=notes,
    )
    return fig
