"""Figures of the experiments: surprisal, ablation, direct logit attribution, patching, comparison.

Pure functions, a result in, a ``go.Figure`` (or an HTML string) out. Sized
for a projector: 16 px text everywhere, margins that leave room for long token
labels, never shorter than 360 px. Signed quantities (attribution, restored
fraction) use one diverging scale centred at 0 (``RdBu``: blue = toward the
target); surprisal a fixed 0..16 bit scale, cool = predictable, so two texts
can be compared by colour alone.
"""
from __future__ import annotations

import html
from typing import Sequence

import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..ablation import Ablation
from ..attribution import Attribution
from ..compare import Comparison
from ..inputs import visible
from ..patching import Patching
from ..surprisal import Surprisal
from .axes import short
from .palette import DIVERGING, NEGATIVE, POSITIVE

FONT = 16
TITLE_FONT = 20
MIN_HEIGHT = 360
MAX_BITS = 16.0                         # colour scale top: 2**16 ~ one in 65,000
SURPRISAL_SCALE = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
TOKENS_PER_ROW = 12
LABEL_CHARS = 16
BEFORE, AFTER = "#9e9e9e", "#08519c"


def _left_margin(labels: Sequence[str]) -> int:
    """Pixels for the longest y tick label at 16 px (about 10 px a character)."""
    return 40 + 10 * max((len(short(x, LABEL_CHARS)) for x in labels), default=4)


def _style(fig: go.Figure, title: str, height: int, left: int = 80, bottom: int = 80) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, font=dict(size=TITLE_FONT), x=0.01, xanchor="left"),
        font=dict(size=FONT), height=max(MIN_HEIGHT, height),
        margin=dict(l=left, r=40, t=125, b=bottom), hoverlabel=dict(font_size=FONT),
        legend=dict(font=dict(size=FONT)),
    )
    fig.update_xaxes(tickfont=dict(size=FONT), title_font=dict(size=FONT), automargin=True)
    fig.update_yaxes(tickfont=dict(size=FONT), title_font=dict(size=FONT), automargin=True)
    fig.update_annotations(font_size=FONT)       # subplot titles
    return fig


def _pct(p: float) -> str:
    return f"{p:.1%}" if p >= 0.001 else f"{p:.1e}"


# --------------------------------------------------------------------------- surprisal


def _guesses(s: Surprisal, i: int) -> str:
    """Plain-text tooltip of position ``i``: its surprisal, the rank of the true token, the top guesses."""
    if s.surprisal_bits[i] is None:
        return f"{s.tokens[i]}\nfirst token: nothing before it to predict it"
    lines = [f"{s.tokens[i]}: {s.surprisal_bits[i]:.2f} bits, rank {s.rank[i]}", "the model expected:"]
    lines += [f"  {g['token']}  {_pct(g['prob'])}" for g in s.top[i]]
    return "\n".join(lines)


def _summary(s: Surprisal) -> str:
    if s.mean_bits is None:
        return "one token: nothing to predict"
    return f"mean {s.mean_bits:.2f} bits per token, perplexity {s.perplexity:.1f}"


def surprisal_figure(s: Surprisal, *, per_row: int = TOKENS_PER_ROW) -> go.Figure:
    """The text as rows of coloured cells, ``per_row`` tokens a row; colour = surprisal in bits."""
    n = s.n_tokens
    n_rows = -(-n // per_row)
    z = [[None] * per_row for _ in range(n_rows)]
    text = [[""] * per_row for _ in range(n_rows)]
    hover = [[""] * per_row for _ in range(n_rows)]
    for i in range(n):
        r, c = divmod(i, per_row)
        z[r][c] = s.surprisal_bits[i]
        text[r][c] = html.escape(short(s.tokens[i], 10))
        hover[r][c] = html.escape(_guesses(s, i)).replace("\n", "<br>")
    fig = go.Figure(go.Heatmap(
        z=z, text=text, customdata=hover, texttemplate="%{text}", textfont=dict(size=FONT),
        hovertemplate="%{customdata}<extra></extra>", colorscale=SURPRISAL_SCALE, zmin=0.0, zmax=MAX_BITS,
        xgap=2, ygap=2, colorbar=dict(title=dict(text="bits", font=dict(size=FONT)), tickfont=dict(size=FONT)),
    ))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=list(range(n_rows)),
                     ticktext=[str(r * per_row) for r in range(n_rows)], title="from token", showgrid=False)
    sub = _summary(s) + "; blank cell: the first token" + (f"; {html.escape(s.note)}" if s.note else "")
    return _style(fig, f"Surprisal: how unexpected each token was<br><span style='font-size:16px'>{sub}</span>",
                  height=56 * n_rows + 200, left=90, bottom=40)


def _hex_colour(bits: float | None) -> str:
    if bits is None:
        return "#e0e0e0"
    return sample_colorscale(SURPRISAL_SCALE, [min(max(bits / MAX_BITS, 0.0), 1.0)], colortype="rgb")[0]


def _text_colour(bits: float | None) -> str:
    """Dark text on the pale middle of the scale, white on its saturated ends."""
    if bits is None:
        return "#000"
    x = bits / MAX_BITS
    return "#fff" if x < 0.15 or x > 0.85 else "#000"


def surprisal_html(s: Surprisal) -> str:
    """The text itself, each token a ``<span>`` coloured by its surprisal, top guesses in its tooltip.

    Everything from the model or the user is escaped; whitespace is shown (``visible``).
    """
    spans = []
    for i in range(s.n_tokens):
        bits = s.surprisal_bits[i]
        label = visible(s.tokens[i])
        spans.append(
            f'<span title="{html.escape(_guesses(s, i), quote=True)}" style="background:{_hex_colour(bits)};'
            f'color:{_text_colour(bits)};padding:2px 3px;margin:1px;border-radius:3px;'
            f'display:inline-block">{html.escape(label)}</span>')
    legend = "".join(
        f'<span style="background:{_hex_colour(b)};color:{_text_colour(b)};padding:2px 6px">{b:g}</span>'
        for b in (0, 2, 4, 8, 12, 16))
    note = f'<div style="margin-top:6px">{html.escape(s.note)}</div>' if s.note else ""
    return (f'<div class="surprisal" style="font-family:monospace;font-size:18px;line-height:2.1">'
            f'{"".join(spans)}'
            f'<div style="font-size:16px;margin-top:8px">{html.escape(_summary(s))}; bits: {legend}</div>'
            f"{note}</div>")


# --------------------------------------------------------------------------- bars side by side


def _bars(fig: go.Figure, rows: Sequence[dict], col: int, colour: str, name: str) -> None:
    rows = list(rows)[::-1]                    # most likely at the top
    fig.add_trace(go.Bar(
        x=[r["prob"] for r in rows], y=[html.escape(f"{short(r['token'], LABEL_CHARS)} ") for r in rows],
        orientation="h",
        marker_color=colour, name=name, text=[_pct(r["prob"]) for r in rows], textposition="outside",
        textfont=dict(size=FONT), cliponaxis=False,
        customdata=[r["token_id"] for r in rows],
        hovertemplate="%{y} (id %{customdata}): %{x:.4f}<extra>" + html.escape(name) + "</extra>",
    ), row=1, col=col)
    top = max((r["prob"] for r in rows), default=1.0)
    fig.update_xaxes(range=[0, min(1.0, top) * 1.35 + 1e-9], title_text="probability", row=1, col=col)


def _two_distributions(left: Sequence[dict], right: Sequence[dict], titles: tuple[str, str],
                       title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.28)
    _bars(fig, left, 1, BEFORE, titles[0])
    _bars(fig, right, 2, AFTER, titles[1])
    labels = [r["token"] for r in list(left) + list(right)]
    fig.update_layout(showlegend=False, bargap=0.25)
    n = max(len(left), len(right))
    return _style(fig, title, height=34 * n + 220, left=_left_margin(labels))


def ablation_figure(a: Ablation) -> go.Figure:
    """Next-token top-k of the intact model (left) and the ablated one (right)."""
    what = ", ".join(a.head_names + [f"MLP {l}" for l in a.mlps]) or "nothing"
    sub = f"ablated: {html.escape(short(what, 80))}; KL(before || after) = {a.kl_bits:.3f} bits"
    return _two_distributions(a.before, a.after, ("before (intact)", "after (ablated)"),
                              f"Next token with and without the ablation<br><span style='font-size:16px'>{sub}</span>")


def comparison_figure(c: Comparison) -> go.Figure:
    """Next-token top-k of prompt A (left) and prompt B (right)."""
    end_a = html.escape(short("".join(c.a.tokens[-4:]), 30))
    end_b = html.escape(short("".join(c.b.tokens[-4:]), 30))
    sub = f"KL(A || B) = {c.kl_bits:.3f} bits"
    return _two_distributions(c.a.top, c.b.top, (f"A: …{end_a}", f"B: …{end_b}"),
                              f"Two prompts, two predictions<br><span style='font-size:16px'>{sub}</span>")


# --------------------------------------------------------------------------- attribution


def _symmetric(values: Sequence[float]) -> float:
    return max((abs(v) for v in values), default=1.0) or 1.0


def attribution_figure(attr: Attribution) -> go.Figure:
    """Layer x head heatmap of the heads' direct effects (left) and bars for everything else (right)."""
    grid = attr.head_grid()                                                  # [layer][head]
    others = attr.other_components()
    big = _symmetric([v for row in grid for v in row])
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.22,
                        subplot_titles=("attention heads", "everything else"))
    show_text = attr.n_heads <= 12 and attr.n_layers <= 24
    digits = 2 if attr.n_heads <= 8 else 1                                    # narrower cells, shorter text
    fig.add_trace(go.Heatmap(
        z=grid, x=list(range(attr.n_heads)), y=list(range(attr.n_layers)),
        text=[[f"{v:.{digits}f}" for v in row] for row in grid], texttemplate="%{text}" if show_text else None,
        textfont=dict(size=FONT), colorscale=DIVERGING, zmid=0.0, zmin=-big, zmax=big, xgap=1, ygap=1,
        hovertemplate="L%{y}H%{x}: %{z:.3f}<extra></extra>",
        colorbar=dict(title=dict(text="head", font=dict(size=FONT)), tickfont=dict(size=FONT), x=1.02),
    ), row=1, col=1)
    names = [c["name"] for c in others][::-1]
    values = [c["value"] for c in others][::-1]
    fig.add_trace(go.Bar(
        x=values, y=names, orientation="h", marker_color=[POSITIVE if v >= 0 else NEGATIVE for v in values],
        text=[f"{v:+.2f}" for v in values], textposition="outside", textfont=dict(size=FONT), cliponaxis=False,
        hovertemplate="%{y}: %{x:.3f}<extra></extra>", showlegend=False,
    ), row=1, col=2)
    reach = _symmetric(values) * 1.4
    fig.update_xaxes(title_text="head", tickmode="array", tickvals=list(range(attr.n_heads)), row=1, col=1)
    fig.update_yaxes(title_text="layer", tickmode="array", tickvals=list(range(attr.n_layers)), row=1, col=1)
    fig.update_xaxes(title_text="direct effect", range=[-reach, reach], zeroline=True, row=1, col=2)
    sub = (f"{html.escape(attr.metric)} at the last position: parts sum to {attr.total:.3f} "
           f"(model: {attr.actual:.3f}); blue pushes toward '{html.escape(attr.target['token'])}'")
    height = max(40 * attr.n_layers, 30 * len(others)) + 220
    return _style(fig, f"Direct logit attribution<br><span style='font-size:16px'>{sub}</span>", height=height, left=80)


# --------------------------------------------------------------------------- patching


def patching_figure(p: Patching) -> go.Figure:
    """Layer x position (or layer x head) grid of the restored fraction, diverging at 0, fixed -1..1."""
    z = [list(r) for r in p.restored]
    n_cols = len(z[0]) if z else 0
    if p.what == "heads":
        x_title, xs, ticks = "head", list(range(n_cols)), [str(h) for h in range(n_cols)]
        y_title, hover = "layer", "L%{y}H%{x}: %{z:.3f}<extra></extra>"
    else:
        x_title, xs = "corrupted prompt token (position)", list(range(n_cols))
        step = 1 if n_cols <= 48 else -(-n_cols // 32)                      # about 32 labels when long
        ticks = [html.escape(short(t, 10) if step == 1 else f"{i} {short(t, 10)}") for i, t in enumerate(p.tokens)]
        xs, ticks = xs[::step], ticks[::step]
        y_title, hover = "resid_pre of block", "block %{y}, position %{x}: %{z:.3f}<extra></extra>"
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(n_cols)), y=list(p.layers), text=[[f"{v:.2f}" for v in row] for row in z],
        texttemplate="%{text}" if n_cols <= 24 else None, textfont=dict(size=FONT),
        colorscale=DIVERGING, zmid=0.0, zmin=-1.0, zmax=1.0, xgap=1, ygap=1, hovertemplate=hover,
        colorbar=dict(title=dict(text="restored", font=dict(size=FONT)), tickfont=dict(size=FONT)),
    ))
    fig.update_xaxes(title_text=x_title, tickmode="array", tickvals=xs, ticktext=ticks, tickangle=-45)
    fig.update_yaxes(title_text=y_title, tickmode="array", tickvals=list(p.layers))
    t, d = html.escape(p.target["token"]), html.escape(p.distractor["token"])
    sub = (f"logit('{t}') - logit('{d}'): clean {p.ld_clean:.2f}, corrupted {p.ld_corrupted:.2f}; "
           f"1 = patching this cell restores the clean answer; {p.mode}, {p.seconds:.2f} s")
    longest = max((len(x) for x in ticks), default=4)
    return _style(fig, f"Activation patching: '{t}' vs '{d}'<br><span style='font-size:16px'>{sub}</span>",
                  height=40 * len(p.layers) + 200 + 9 * longest, left=90, bottom=60 + 9 * longest)
