"""Look and feel: system fonts only (nothing fetched from the network), a presentation mode.

Gradio 6 takes ``theme``, ``css`` and ``js`` in ``launch()``; :func:`launch_kwargs`
gathers them so ``app.py`` and the tests launch the same page.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
import plotly.graph_objects as go

from ..inspection.figures.palette import TEMPLATE

SANS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]


def theme() -> gr.themes.Base:
    return gr.themes.Default(primary_hue="blue", font=SANS, font_mono=MONO)


# Presentation mode: larger text and strong contrast for a projector. Theme variables are
# declared on :root, and a variable built from another (--body-text-size: var(--text-md))
# is resolved there, so the derived ones are declared again here.
_SIZES = "\n".join(f"  --{name}: var(--text-{size});" for name, size in [
    ("body-text-size", "md"), ("block-info-text-size", "sm"), ("block-label-text-size", "md"),
    ("block-title-text-size", "md"), ("section-header-text-size", "md"), ("checkbox-label-text-size", "md"),
    ("input-text-size", "md"), ("prose-text-size", "md"), ("button-large-text-size", "lg"),
    ("button-medium-text-size", "md"), ("button-small-text-size", "md"), ("table-text-size", "md")])

CSS = f"""
.gradio-container {{ max-width: 1500px !important; }}
.token-help {{ font-size: var(--text-sm); color: var(--body-text-color-subdued); }}
.walk-file {{ font-family: var(--font-mono); font-size: var(--text-sm); color: var(--body-text-color-subdued); }}
.walk-code {{ font-size: var(--text-sm); line-height: 1.45; white-space: pre-wrap; overflow-wrap: anywhere;
  margin: 0; padding: 8px; background: var(--background-fill-secondary); border-radius: 6px; }}
.walk-code .run {{ background: #ffe58a; color: #000; font-weight: 600; display: inline-block; width: 100%; }}
.walk-code .ctx {{ color: var(--body-text-color-subdued); }}
.walk-code .ln {{ color: #888; user-select: none; }}
body.presentation {{
  --text-xxs: 14px; --text-xs: 16px; --text-sm: 18px; --text-md: 22px; --text-lg: 26px;
  --text-xl: 32px; --text-xxl: 38px;
{_SIZES}
  --body-text-color: #000; --body-text-color-subdued: #222; --block-label-text-color: #000;
  --block-title-text-color: #000; --block-info-text-color: #222; --input-text-color: #000;
  --background-fill-primary: #fff; --background-fill-secondary: #f2f2f2;
  --block-border-color: #000; --border-color-primary: #000; --input-border-color: #000;
  --block-border-width: 2px; --input-border-width: 2px;
  --color-accent: #0033aa; --button-primary-background-fill: #0033aa;
  --button-primary-background-fill-hover: #002080; --button-primary-text-color: #fff;
}}
body.presentation .gradio-container {{ max-width: none !important; padding-top: 4px !important; }}
/* One header line: title, model, switches. */
#header {{ flex-wrap: nowrap; align-items: center; gap: 12px; }}
#title, #present, #lang-switch {{ flex: 0 0 auto !important; width: auto !important; }}
#title {{ min-width: 220px !important; }}
#present {{ min-width: 200px !important; }}
#lang-switch {{ min-width: 180px !important; }}
#title h2 {{ margin: 0; white-space: nowrap; font-size: var(--text-xl); }}
#model-badge {{ flex: 1 1 auto; overflow: hidden; min-width: 0 !important; }}
#model-badge p {{ margin: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
#present label, #lang-switch label {{ white-space: nowrap; }}
#lang-switch .wrap {{ flex-wrap: nowrap; }}
#lang-switch label {{ padding: 2px 6px; }}
#copy-link {{ white-space: nowrap; }}
body.presentation #model-badge .badge-more {{ display: none; }}
body.presentation #present, body.presentation #present *, body.presentation #lang-switch,
body.presentation #lang-switch *, body.presentation #copy-link, body.presentation #add-to-deck {{ font-size: 16px; }}
body.presentation #model-badge {{ font-size: 18px; }}
body.presentation #tabs [role="tab"] {{ font-size: 18px; padding: 4px 9px; }}
/* The stage layout (common.stage_bar): one thin bar of controls over the figure. */
.stage-bar {{ gap: 8px; align-items: end; flex-wrap: nowrap; }}
.stage-bar > * {{ min-width: 0 !important; }}
.stage-bar textarea {{ min-height: 0 !important; }}
.stage-bar button {{ align-self: stretch; white-space: nowrap; }}
.stage-bar > button {{ flex: 0 0 auto !important; width: auto !important; padding-left: 14px; padding-right: 14px; }}
.example-note p {{ margin: 2px 0; }}
.stage-more {{ margin-top: 8px; }}
body.presentation .stage-bar {{ gap: 6px; }}
body.presentation .stage-bar [data-testid="block-info"], body.presentation .stage-bar label > span,
body.presentation .stage-bar .label-wrap span {{ font-size: 18px; }}
body.presentation .stage-bar textarea {{ white-space: nowrap; overflow: hidden; }}
/* On a projector the hint under the bar follows the figure, so the figure fits the first screen. */
body.presentation .example-note {{ order: 1; }}
body.presentation .stage-more {{ order: 2; }}
body.presentation .stage-bar .block {{ padding: 4px 8px !important; }}
/* The figure's own title says what it is: Gradio's label box over it would cover that title. */
body.presentation [data-testid="block-label"] {{ display: none; }}
body.presentation #p-figs {{ flex-direction: column; }}
#p-presets button {{ flex: 1 1 0 !important; }}
#p-flags {{ flex: 0 0 auto !important; min-width: 180px !important; gap: 4px; }}
/* The upload box is 140 px high; at presentation sizes its "Click to Upload" would be cut off. */
body.presentation #upload {{ height: auto !important; min-height: 200px; }}
body.presentation #upload * {{ max-height: none !important; }}
"""

# Runs once when the page loads; the toggle itself is wired to the checkbox in layout.py.
TOGGLE_PRESENTATION_JS = "(on) => { document.body.classList.toggle('presentation', !!on); return []; }"

# Turn the query string the server built into a full link and try to put it on the clipboard
# (browsers allow that on https and localhost; elsewhere the box's copy button still works).
ABSOLUTE_LINK_JS = """(query) => {
  const url = window.location.origin + window.location.pathname + (query || "");
  try { navigator.clipboard && navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}"""


# Keyboard steps for talks (README, "For talks"), ignored while typing in a box or with a modifier:
#   With a deck open: ← / → / PageUp / PageDown the slides (deck_js.DECK_JS), before anything below.
#   Step by step: ← / → the previous / next step.   Attention: ← / → the head, ↑ / ↓ the layer.
#   r: run the open tab's view (its main button).
KEYS_JS = """() => {
  const shown = (id) => { const el = document.getElementById(id); return el && el.offsetParent !== null ? el : null; };
  const nudge = (id, delta) => {
    const root = shown(id); if (!root) return false;
    const box = root.querySelector("input[type=number]"), range = root.querySelector("input[type=range]");
    if (!box || !range) return false;
    const lo = Number(range.min), hi = Number(range.max);
    const v = Math.min(hi, Math.max(lo, Number(box.value) + delta));
    if (v === Number(box.value)) return true;
    box.value = String(v);
    box.dispatchEvent(new Event("input", {bubbles: true}));
    box.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
    box.dispatchEvent(new Event("blur"));
    return true;
  };
  const click = (ids) => { for (const id of ids) { const b = shown(id); if (b) { b.click(); return true; } } return false; };
  // Clicks on figures: a cell of the attention pattern takes its row apart ("Why this weight?"); a head of
  // the circuit graph opens that head's attention in a new window (the circuit stays as it is here).
  const setNumber = (id, value) => {
    const box = document.querySelector(`#${id} input[type=number]`); if (!box) return;
    box.value = String(value); box.dispatchEvent(new Event("input", {bubbles: true}));
  };
  // Open a collapsed section when the number box is not on the page yet, then set it and press the button.
  const runInSection = (section, boxId, value, buttonId) => {
    const wait = document.getElementById(boxId) ? 0 : 300;
    if (wait) { const label = document.querySelector(`${section} .label-wrap`); if (label) label.click(); }
    setTimeout(() => { setNumber(boxId, value);
      setTimeout(() => { const b = document.getElementById(buttonId); if (b) b.click(); }, 150); }, wait);
  };
  const bind = () => {
    const att = document.querySelector("#att-fig .js-plotly-plot");
    if (att && !att.dataset.qkBound && att.on) {
      att.dataset.qkBound = "1";
      att.on("plotly_click", (ev) => {
        const pt = ev && ev.points && ev.points[0]; if (!pt || typeof pt.y !== "number") return;
        runInSection("#qk-accordion", "qk-query", pt.y, "qk-btn");
      });
    }
    const acts = document.querySelector("#neuron-text .js-plotly-plot");
    if (acts && !acts.dataset.topBound && acts.on) {       // a token of your text: its top neurons
      acts.dataset.topBound = "1";
      acts.on("plotly_click", (ev) => {
        const pt = ev && ev.points && ev.points[0]; if (!pt || typeof pt.x !== "number") return;
        runInSection("#neuron-more", "neuron-position", pt.x, "neuron-top-btn");
      });
    }
    const graph = document.querySelector("#circuit-fig .js-plotly-plot");
    if (graph && !graph.dataset.headBound && graph.on) {
      graph.dataset.headBound = "1";
      graph.on("plotly_click", (ev) => {
        const pt = ev && ev.points && ev.points[0]; const cd = pt && pt.customdata;
        if (!Array.isArray(cd) || cd.length !== 2) return;
        const prompt = (document.querySelector("#circuit-clean textarea") || {}).value || "";
        const q = new URLSearchParams(window.location.search);
        const link = new URLSearchParams({tab: "attention", layer: cd[0], head: cd[1], view: "head", prompt: prompt});
        if (q.get("lang")) link.set("lang", q.get("lang"));
        if (document.body.classList.contains("presentation")) link.set("present", "1");
        window.open(window.location.pathname + "?" + link.toString(), "_blank");
      });
    }
  };
  setInterval(bind, 1000);
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target, tag = (t && t.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || (t && t.isContentEditable)) return;
    if (window.__deckKey && window.__deckKey(e)) { e.preventDefault(); return; }     // a talk's slides first
    let done = false;
    if (shown("walk-next")) {
      if (e.key === "ArrowRight") done = click(["walk-next"]);
      if (e.key === "ArrowLeft") done = click(["walk-prev"]);
    } else if (shown("att-fig")) {
      if (e.key === "ArrowRight") done = nudge("att-head", 1);
      if (e.key === "ArrowLeft") done = nudge("att-head", -1);
      if (e.key === "ArrowUp") done = nudge("att-layer", 1);
      if (e.key === "ArrowDown") done = nudge("att-layer", -1);
    }
    if (e.key === "r") done = click(["generate-btn", "att-btn", "trace-btn", "lens-btn", "next-btn", "surprisal-btn", "ablate-btn", "attr-btn", "patch-btn", "compare-btn"]);
    if (done) e.preventDefault();
  });
}"""


def launch_kwargs(max_upload_mb: int | None = None) -> dict[str, Any]:
    """What every ``demo.launch`` of this app passes (plus host/port/prevent_thread_lock).

    ``max_upload_mb`` (default ``$PLAYGROUND_MAX_UPLOAD_MB`` or 1024) caps every upload: Gradio
    answers 413 to a larger one before it reaches a handler."""
    from .validate import upload_limit_mb
    mb = max_upload_mb or upload_limit_mb()
    from starlette.middleware import Middleware

    from .deck_js import DECK_CSS, DECK_JS
    from .i18n import LOCALE_JS, EarlyLocale, gradio_i18n
    js = KEYS_JS.replace("() => {", "() => {" + LOCALE_JS + DECK_JS, 1)
    return dict(theme=theme(), css=CSS + DECK_CSS, js=js, ssr_mode=False, show_error=True, footer_links=["api"],
                max_file_size=mb * 2**20, i18n=gradio_i18n(), app_kwargs={"middleware": [Middleware(EarlyLocale)]})


PROJECTOR_TEXT = 20            # px: every text inside a figure in presentation mode (ticks, cells, legends)
PROJECTOR_TITLE = 28
PROJECTOR_HEIGHT = 480


def _coloraxes(fig: go.Figure) -> list:
    return [fig.layout[k] for k in fig.layout if k.startswith("coloraxis") and fig.layout[k] is not None]


def _colorbar_titles_beside(fig: go.Figure) -> None:
    """Colour-bar titles go beside the bar: above it (plotly's default) they cover the top tick label."""
    for trace in fig.data:
        if "colorbar" in trace:
            trace.colorbar.title.side = "right"
    for axis in _coloraxes(fig):
        axis.colorbar.title.side = "right"


def style_figure(fig: go.Figure, present: bool = False) -> go.Figure:
    """Every figure in the app's template (:mod:`playground.inspection.figures.palette`). Presentation mode: every text of the figure at least ``PROJECTOR_TEXT`` px (titles larger), cell text
    included, and a figure tall enough to read from the back of a room."""
    if fig is None:
        return fig
    fig.update_layout(template=TEMPLATE)     # the app's own look (palette.py): fonts, grid, white ground
    if any(trace.type == "heatmap" for trace in fig.data):
        fig.update_xaxes(showgrid=False, zeroline=False)       # a grid over cells only competes with them
        fig.update_yaxes(showgrid=False, zeroline=False)
    _colorbar_titles_beside(fig)
    if not present:
        return fig
    # High contrast: black text on white, the grid kept faint so it does not compete with the data.
    fig.update_layout(font=dict(size=PROJECTOR_TEXT, color="#000"), title_font_size=PROJECTOR_TITLE,
                      hoverlabel=dict(font_size=PROJECTOR_TEXT), legend_font_size=PROJECTOR_TEXT)
    fig.update_xaxes(tickfont_size=PROJECTOR_TEXT, title_font_size=PROJECTOR_TEXT + 2)
    fig.update_yaxes(tickfont_size=PROJECTOR_TEXT, title_font_size=PROJECTOR_TEXT + 2)
    fig.update_annotations(font_size=PROJECTOR_TEXT - 2)     # labels inside diagrams: 18 px keeps them inside
    for trace in fig.data:
        if "textfont" in trace:
            size = trace.textfont.size
            if size is None or isinstance(size, (int, float)) and size < PROJECTOR_TEXT - 2:
                trace.textfont.size = PROJECTOR_TEXT - 2
        if "colorbar" in trace:
            trace.colorbar.tickfont = dict(size=PROJECTOR_TEXT)
            trace.colorbar.title.font = dict(size=PROJECTOR_TEXT)
    for axis in _coloraxes(fig):
        axis.colorbar.tickfont = dict(size=PROJECTOR_TEXT)
        axis.colorbar.title.font = dict(size=PROJECTOR_TEXT)
    if any(trace.type == "treemap" for trace in fig.data):
        # A label that does not fit at projector size is hidden (it stays on hover), never shrunk to 6 px.
        fig.update_layout(uniformtext=dict(minsize=PROJECTOR_TEXT - 2, mode="hide"))
    # The title at the very top, and room under it for key labels on a top axis (they would run into it).
    if fig.layout.xaxis.side == "top":
        fig.update_layout(title_y=0.99, title_yanchor="top", title_yref="container",
                          margin_t=max(fig.layout.margin.t or 0, 160))
    if fig.layout.height is not None and fig.layout.height < PROJECTOR_HEIGHT:
        fig.update_layout(height=PROJECTOR_HEIGHT)
    return fig
