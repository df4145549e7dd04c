"""One visual identity for every figure: the colours, and the plotly template the app applies.

Colour-blind safe throughout: one sequential scale for magnitudes and probabilities (light to dark
blue, read by lightness alone), one diverging scale for signed values (blue for positive, red for
negative, white at zero: ColorBrewer's RdBu, which stays distinct under the common colour-vision
deficiencies), and the Okabe-Ito colours for categories. Figures name these constants instead of
picking their own.
"""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

SEQUENTIAL = [[0.0, "#f7fbff"], [0.15, "#deebf7"], [0.35, "#9ecae1"], [0.6, "#4292c6"], [0.8, "#2171b5"],
              [1.0, "#08306b"]]
DIVERGING = [[0.0, "#b2182b"], [0.25, "#ef8a62"], [0.5, "#f7f7f7"], [0.75, "#67a9cf"], [1.0, "#2166ac"]]
POSITIVE, NEGATIVE = "#2166ac", "#b2182b"          # the two ends of DIVERGING, for bars of signed values
# Okabe & Ito (2008), the categorical palette readable with every common colour-vision deficiency.
CATEGORIES = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
ACCENT = "#b2182b"        # the one thing picked out (the drawn token, the greedy path): red, never beside green
MUTED = "#9e9e9e"         # what is there for comparison (before, masked, the rest)
INK = "#111111"
GRID = "#e6e6e6"
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"

TEMPLATE = "playground"


def _template() -> go.layout.Template:
    t = go.layout.Template()
    t.layout = go.Layout(
        font=dict(family=FONT, color=INK, size=13), title=dict(font=dict(size=17, color=INK)),
        paper_bgcolor="white", plot_bgcolor="white", colorway=CATEGORIES,
        xaxis=dict(gridcolor=GRID, zerolinecolor="#bdbdbd", linecolor="#bdbdbd", ticks="", automargin=True),
        yaxis=dict(gridcolor=GRID, zerolinecolor="#bdbdbd", linecolor="#bdbdbd", ticks="", automargin=True),
        colorscale=dict(sequential=SEQUENTIAL, diverging=DIVERGING),
        hoverlabel=dict(bgcolor="white", font=dict(color=INK)), legend=dict(bgcolor="rgba(255,255,255,0.8)"),
    )
    return t


pio.templates[TEMPLATE] = _template()
