"""Loss curves of a training run: a self-contained SVG (no dependency, renders in a model card
offline and on the Hub) or an interactive plotly HTML page with plotly.js embedded.

``history`` is the list a run keeps in its checkpoint: dicts with ``tokens`` and either
``train_loss`` (mean since the previous log point) or ``val_loss`` (held-out documents).
"""
from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any, Sequence

Mark = tuple[float, str]   # (tokens seen, label): a dashed vertical line, e.g. where a stage began

TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#d62728"


def _nice_step(span: float, count: int) -> float:
    """A 1/2/5 x 10^k step giving about ``count`` intervals over ``span``."""
    raw = span / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), 10 * mag)


def _ticks(lo: float, hi: float, count: int) -> list[float]:
    step = _nice_step(hi - lo, count)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tokens(x: float) -> str:
    return f"{x / 1e6:g}M" if x >= 1e6 else (f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}")


def _curves(history: Sequence[dict[str, Any]]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(tokens, loss) points of the training and the validation curve."""
    train = [(float(h["tokens"]), float(h["train_loss"])) for h in history if "train_loss" in h]
    val = [(float(h["tokens"]), float(h["val_loss"])) for h in history if "val_loss" in h]
    return train, val


def loss_svg(history: Sequence[dict[str, Any]], title: str = "Loss", marks: Sequence[Mark] = (),
             width: int = 760, height: int = 420) -> str:
    """SVG text: train and validation loss (nats/token) against tokens seen.

    The y axis starts at the lowest loss and ends at the highest loss seen after
    the first 3% of tokens, so the first steps (~ln 50257 = 10.8) do not flatten
    the rest; higher points are drawn at the top edge.
    """
    train, val = _curves(history)
    points = train + val
    if not points:
        raise ValueError("the history has no loss values to plot")
    x_max = max(x for x, _ in points) or 1.0
    late = [y for x, y in points if x >= 0.03 * x_max] or [y for _, y in points]
    y_lo, y_hi = min(y for _, y in points), max(late)
    if y_hi - y_lo < 1e-6:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = 0.04 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    left, right, top, bottom = 64, 20, 44, 52
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + pw * x / x_max

    def py(y: float) -> float:
        return top + ph * (1 - (min(max(y, y_lo), y_hi) - y_lo) / (y_hi - y_lo))

    def line(pts: list[tuple[float, float]], color: str, w: float) -> str:
        if not pts:
            return ""
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        return f'<polyline fill="none" stroke="{color}" stroke-width="{w}" points="{d}"/>'

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    for y in _ticks(y_lo, y_hi, 5):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for x in _ticks(0, x_max, 6):
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{top + ph}" stroke="#f0f0f0"/>')
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 16}" text-anchor="middle">{_fmt_tokens(x)}</text>')
    for x, _ in marks:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{top + ph}" stroke="#888" '
                   f'stroke-dasharray="4 3"/>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    out.append(line(train, TRAIN_COLOR, 1.2))
    out.append(line(val, VAL_COLOR, 2.0))
    out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{VAL_COLOR}"/>' for x, y in val]
    for i, (x, label) in enumerate(marks):   # labels over the curves, on a white ground
        out.append(f'<text x="{px(x) + 4:.1f}" y="{top + 12 + 14 * (i % 3)}" fill="#555" stroke="white" '
                   f'stroke-width="3" paint-order="stroke">{escape(label)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle">tokens seen</text>')
    out.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'cross-entropy (nats/token)</text>')
    lx, ly = left + 8, top + ph - 42           # lower left: falling loss curves stay clear of it
    out.append(f'<rect x="{lx}" y="{ly}" width="244" height="34" fill="white" stroke="#ccc"/>')
    out.append(f'<line x1="{lx + 8}" x2="{lx + 30}" y1="{ly + 11}" y2="{ly + 11}" stroke="{TRAIN_COLOR}" '
               f'stroke-width="2"/><text x="{lx + 36}" y="{ly + 15}">train (mean since last point)</text>')
    out.append(f'<line x1="{lx + 8}" x2="{lx + 30}" y1="{ly + 25}" y2="{ly + 25}" stroke="{VAL_COLOR}" '
               f'stroke-width="2"/><text x="{lx + 36}" y="{ly + 29}">validation (held-out documents)</text>')
    out.append("</svg>")
    return "\n".join(o for o in out if o) + "\n"


def loss_figure(history: Sequence[dict[str, Any]], title: str = "Loss", marks: Sequence[Mark] = ()):
    """The same curves as a plotly figure (interactive)."""
    import plotly.graph_objects as go

    train, val = _curves(history)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[x for x, _ in train], y=[y for _, y in train],
                             mode="lines", name="train (mean since last point)"))
    fig.add_trace(go.Scatter(x=[x for x, _ in val], y=[y for _, y in val],
                             mode="lines+markers", name="validation (held-out documents)"))
    for x, label in marks:
        fig.add_vline(x=x, line_dash="dash", line_color="#888", annotation_text=label)
    fig.update_layout(title=title, xaxis_title="tokens seen", yaxis_title="cross-entropy (nats/token)",
                      template="plotly_white")
    return fig


def write_loss_plot(history: Sequence[dict[str, Any]], path: "str | Path", title: str = "Loss",
                    marks: Sequence[Mark] = ()) -> Path:
    """``.svg``: :func:`loss_svg`; ``.html``: plotly with plotly.js embedded (works offline);
    anything else: plotly's image export (needs kaleido)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        path.write_text(loss_svg(history, title, marks), encoding="utf-8")
    elif suffix == ".html":
        loss_figure(history, title, marks).write_html(str(path), include_plotlyjs=True)
    else:
        loss_figure(history, title, marks).write_image(str(path))
    return path
