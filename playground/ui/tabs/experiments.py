"""Experiments tab: read surprisal, ablate heads and MLPs, attribute a logit, patch activations,
compare two prompts — and watch the output change."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.export import dumps
from ...inspection.figures import experiments as figs
from .. import validate as v
from ..common import LIGHT, MODEL_QUEUE, PRIVATE, AppContext, export_file, guarded, stage_bar, stage_more
from ..i18n import current_lang, tr_html
from ..theme import style_figure
from ..views import experiments as ex
from . import circuits, saliency

CHILDREN = (circuits, saliency)     # experiments with modules of their own, built inside this tab's tabs

TAB_ID = "experiments"
# This tab's own experiments, each a view a deep link (and a deck's slide) opens: ``?tab=ablate&heads=L4H1``.
INNER = ("surprisal", "ablate", "attribute", "patch", "compare")
REPEATED = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
            "in want of a wife. It is a truth universally acknowledged, that a single man in possession of a good")
SURPRISAL_NOTE = ("**What to look at:** the second copy of the sentence turns cool (few bits): the model copies what "
                  "it was shown — its induction head at work on your own text. Hover a token for the top guesses.")
ABLATE_NOTE = ("**What to look at:** ablate the induction head (click it in the grid) and the copy fails: the "
               "right next token falls, and the greedy continuation stops repeating the passage.")
ATTRIBUTE_NOTE = ("**What to look at:** which heads push ' fortune' (the word the passage had the first time) "
                  "above ' man' (blue) or below it (red), directly; the parts add up to the model's own logit "
                  "difference. Heads act together: ablate the blue ones in the Ablate tab to see what each is worth.")
PATCH_NOTE = ("**What to look at:** each cell puts one position of the clean run into the corrupted run before "
              "block l. 1 (dark blue) means that position, at that depth, carries the whole difference: early layers "
              "light up where the prompts differ; late layers at the last position, once the information has "
              "moved there.")
COMPARE_NOTE = "**What to look at:** the next-token bars of both prompts, and which tokens moved most."


@dataclass
class InnerView:
    """One of this tab's own experiments, as the page's other views are: its tab and the controls a link sets."""
    tab: gr.Tab
    controls: dict[str, Any]

    def link_controls(self) -> dict[str, Any]:
        return self.controls


@dataclass
class ExperimentsTab:
    tab: gr.Tab
    s_prompt: gr.Textbox
    s_button: gr.Button
    s_html: gr.HTML
    s_fig: gr.Plot
    a_prompt: gr.Textbox
    a_heads: gr.Textbox
    a_mlps: gr.Textbox
    a_button: gr.Button
    a_grid: gr.Dataframe
    a_fig: gr.Plot
    a_text: gr.Markdown
    t_prompt: gr.Textbox
    t_target: gr.Textbox
    t_distractor: gr.Textbox
    t_button: gr.Button
    t_fig: gr.Plot
    t_note: gr.Markdown
    p_clean: gr.Textbox
    p_corrupted: gr.Textbox
    p_target: gr.Textbox
    p_distractor: gr.Textbox
    p_button: gr.Button
    p_fig: gr.Plot
    p_note: gr.Markdown
    c_a: gr.Textbox
    c_b: gr.Textbox
    c_button: gr.Button
    c_fig: gr.Plot
    c_note: gr.Markdown
    json: gr.DownloadButton
    inner: gr.Tabs                     # the experiments' own tabs (a deep link to one of them selects it)
    children: dict[str, Any]           # every experiment by tab id: this tab's own (InnerView) and the modules'

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.s_prompt, "heads": self.a_heads, "mlps": self.a_mlps, "target": self.t_target,
                "distractor": self.t_distractor, "clean": self.p_clean, "corrupted": self.p_corrupted}


def build(ctx: AppContext) -> ExperimentsTab:
    with gr.Tab("Experiments", id=TAB_ID, elem_id="tab-experiments") as tab:
        with gr.Tabs(elem_id="experiment-tabs") as inner:
            with gr.Tab("Surprisal", id="surprisal", elem_id="tab-surprisal") as surprisal_tab:
                with stage_bar():
                    s_prompt = gr.Textbox(value=REPEATED, label="Text", lines=1, max_lines=3, scale=5,
                                          max_length=v.MAX_PROMPT_CHARS, elem_id="surprisal-prompt")
                    s_button = gr.Button("Read surprisal", variant="primary", elem_id="surprisal-btn")
                s_html = gr.HTML(elem_id="surprisal-text")
                s_fig = gr.Plot(label="Surprisal per token", elem_id="surprisal-fig")
                gr.Markdown(SURPRISAL_NOTE, elem_classes="example-note")
            with gr.Tab("Ablate", id="ablate", elem_id="tab-ablate") as ablate_tab:
                with stage_bar():
                    a_prompt = gr.Textbox(value=REPEATED, label="Prompt", lines=1, max_lines=3, scale=4,
                                          max_length=v.MAX_PROMPT_CHARS, elem_id="ablate-prompt")
                    a_heads = gr.Textbox(value="L4H1", label="Heads to ablate (e.g. L4H1, L3H2)", scale=2,
                                         elem_id="ablate-heads")
                    a_mlps = gr.Textbox(value="", label="MLPs to ablate (layers, e.g. 2, 5)", scale=2,
                                        elem_id="ablate-mlps")
                    a_button = gr.Button("Ablate", variant="primary", elem_id="ablate-btn")
                a_fig = gr.Plot(label="Next token before and after", elem_id="ablate-fig")
                a_text = gr.Markdown(elem_id="ablate-text")
                gr.Markdown(ABLATE_NOTE, elem_classes="example-note")
                with stage_more("Induction score per head: click a cell to add or remove that head"):
                    a_grid = gr.Dataframe(interactive=False, label="Induction score per head (click a cell to add or "
                                          "remove that head)", elem_id="ablate-grid", max_height=300)
            with gr.Tab("Attribute", id="attribute", elem_id="tab-attribute") as attribute_tab:
                with stage_bar():
                    t_prompt = gr.Textbox(value=REPEATED, label="Prompt", lines=1, max_lines=3, scale=4,
                                          max_length=v.MAX_PROMPT_CHARS, elem_id="attr-prompt")
                    t_target = gr.Textbox(value=" fortune", label="Target token (a leading space matters)", scale=2,
                                          elem_id="attr-target")
                    t_distractor = gr.Textbox(value=" man", label="Distractor token (empty = none)", scale=2,
                                              elem_id="attr-distractor")
                    t_button = gr.Button("Attribute", variant="primary", elem_id="attr-btn")
                t_fig = gr.Plot(label="Direct logit attribution", elem_id="attr-fig")
                t_note = gr.Markdown(elem_id="attr-note")
                gr.Markdown(ATTRIBUTE_NOTE, elem_classes="example-note")
            with gr.Tab("Patch", id="patch", elem_id="tab-patch") as patch_tab:
                with stage_bar():
                    p_clean = gr.Textbox(value="The cat sat on the mat. The cat sat on the", label="Clean prompt",
                                         lines=1, max_lines=3, scale=3, max_length=v.MAX_PROMPT_CHARS,
                                         elem_id="patch-clean")
                    p_corrupted = gr.Textbox(value="The cat sat on the rug. The cat sat on the",
                                             label="Corrupted prompt (same number of tokens)", lines=1, max_lines=3,
                                             scale=3, max_length=v.MAX_PROMPT_CHARS, elem_id="patch-corrupted")
                    p_target = gr.Textbox(value=" mat", label="Target (the clean answer)", scale=1,
                                          elem_id="patch-target")
                    p_distractor = gr.Textbox(value=" rug", label="Distractor (the corrupted answer)", scale=1,
                                              elem_id="patch-distractor")
                    p_button = gr.Button("Patch", variant="primary", elem_id="patch-btn")
                p_fig = gr.Plot(label="Restored logit difference", elem_id="patch-fig")
                p_note = gr.Markdown(elem_id="patch-note")
                gr.Markdown(PATCH_NOTE, elem_classes="example-note")
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as compare_tab:
                with stage_bar():
                    c_a = gr.Textbox(value="The cat sat on the mat. The cat sat on the", label="Prompt A", lines=1,
                                     max_lines=3, scale=3, max_length=v.MAX_PROMPT_CHARS, elem_id="compare-a")
                    c_b = gr.Textbox(value="The cat sat on the rug. The cat sat on the", label="Prompt B", lines=1,
                                     max_lines=3, scale=3, max_length=v.MAX_PROMPT_CHARS, elem_id="compare-b")
                    c_button = gr.Button("Compare", variant="primary", elem_id="compare-btn")
                c_fig = gr.Plot(label="Two prompts side by side", elem_id="compare-fig")
                c_note = gr.Markdown(elem_id="compare-note")
                gr.Markdown(COMPARE_NOTE, elem_classes="example-note")
            own = {"surprisal": InnerView(surprisal_tab, {"prompt": s_prompt}),
                   "ablate": InnerView(ablate_tab, {"prompt": a_prompt, "heads": a_heads, "mlps": a_mlps}),
                   "attribute": InnerView(attribute_tab, {"prompt": t_prompt, "target": t_target,
                                                          "distractor": t_distractor}),
                   "patch": InnerView(patch_tab, {"clean": p_clean, "corrupted": p_corrupted, "target": p_target,
                                                  "distractor": p_distractor}),
                   "compare": InnerView(compare_tab, {"prompt": c_a, "prompt_b": c_b})}
            children = own | {c.TAB_ID: c.build(ctx) for c in CHILDREN}
        json_btn = gr.DownloadButton("Download JSON (last experiment)", size="sm")
    return ExperimentsTab(tab, s_prompt, s_button, s_html, s_fig, a_prompt, a_heads, a_mlps, a_button, a_grid,
                          a_fig, a_text, t_prompt, t_target, t_distractor, t_button, t_fig, t_note, p_clean,
                          p_corrupted, p_target, p_distractor, p_button, p_fig, p_note, c_a, c_b, c_button, c_fig,
                          c_note, json_btn, inner, children)


def _greedy_line(a) -> str:
    if not a.greedy_before:
        return a.note
    return (f"**Greedy continuation, intact:** {a.greedy_before['text']!r}\n\n"
            f"**With {', '.join(a.head_names + [f'MLP {m}' for m in a.mlps]) or 'nothing'} ablated:** "
            f"{a.greedy_after['text']!r}\n\nKL(before ‖ after) = {a.kl_bits:.3f} bits. {a.note}").rstrip()


def toggle_head(heads: str, layer: int, head: int) -> str:
    """``heads`` with ``L{layer}H{head}`` added, or removed if it was there."""
    name = f"L{layer}H{head}"
    items = [h.strip() for h in (heads or "").replace(";", ",").split(",") if h.strip()]
    items = [h for h in items if h.upper() != name] if any(h.upper() == name for h in items) else items + [name]
    return ", ".join(items)


def views(t: ExperimentsTab, ctx: AppContext) -> dict[str, tuple]:
    """Each of this tab's own experiments by tab id: ``(handler, inputs, outputs)``. The tab's buttons run
    them; a deep link or a deck's slide that opens one draws it (``app.py``, like the other views)."""
    def out(name: str, result) -> str:
        return export_file(name, "json", dumps(result.data()))

    @guarded
    def ui_surprisal(prompt, present_on):
        s = ex.surprisal_view(ctx.need_model(), prompt)
        return {t.s_html: tr_html(figs.surprisal_html(s), current_lang()), t.s_fig: style_figure(figs.surprisal_figure(s), present_on),
                t.json: out("surprisal", s)}

    @guarded
    def ui_ablate(prompt, heads, mlps, present_on):
        snap = ctx.need_model()
        a = ex.ablation_view(snap, prompt, heads, mlps)
        headers, rows = ex.induction_grid(snap, prompt)
        return {t.a_fig: style_figure(figs.ablation_figure(a), present_on), t.a_text: _greedy_line(a),
                t.a_grid: gr.update(value=rows, headers=headers),
                t.json: out("ablation", a)}

    @guarded
    def ui_attribute(prompt, target, distractor, present_on):
        a = ex.attribution_view(ctx.need_model(), prompt, target, distractor)
        note = (f"{a.metric} = **{a.actual:.3f}** (the model's own value); the parts add up to {a.total:.3f}. "
                + a.note).rstrip()
        return {t.t_fig: style_figure(figs.attribution_figure(a), present_on), t.t_note: note,
                t.json: out("attribution", a)}

    @guarded
    def ui_patch(clean, corrupted, target, distractor, present_on):
        p = ex.patching_view(ctx.need_model(), clean, corrupted, target, distractor)
        note = (f"Logit difference clean **{p.ld_clean:.2f}**, corrupted **{p.ld_corrupted:.2f}**; "
                f"{p.forwards} forward passes ({p.mode}) in {p.seconds:.1f} s. {p.note}").rstrip()
        return {t.p_fig: style_figure(figs.patching_figure(p), present_on), t.p_note: note,
                t.json: out("patching", p)}

    @guarded
    def ui_compare(a, b, present_on):
        c = ex.comparison_view(ctx.need_model(), a, b)
        moved = ", ".join(f"{m['token']!r} {m['delta']:+.1%}" for m in c.moved[:5])
        note = f"KL(A ‖ B) = {c.kl_bits:.3f} bits. Moved most: {moved}. {c.note}".rstrip()
        return {t.c_fig: style_figure(figs.comparison_figure(c), present_on), t.c_note: note,
                t.json: out("comparison", c)}

    present = ctx.present
    return {"surprisal": (ui_surprisal, [t.s_prompt, present], [t.s_html, t.s_fig, t.json]),
            "ablate": (ui_ablate, [t.a_prompt, t.a_heads, t.a_mlps, present], [t.a_fig, t.a_text, t.a_grid, t.json]),
            "attribute": (ui_attribute, [t.t_prompt, t.t_target, t.t_distractor, present], [t.t_fig, t.t_note, t.json]),
            "patch": (ui_patch, [t.p_clean, t.p_corrupted, t.p_target, t.p_distractor, present],
                      [t.p_fig, t.p_note, t.json]),
            "compare": (ui_compare, [t.c_a, t.c_b, present], [t.c_fig, t.c_note, t.json])}


def wire(t: ExperimentsTab, ctx: AppContext) -> None:
    def ui_pick_head(heads, evt: gr.SelectData):
        idx = evt.index
        if not isinstance(idx, (list, tuple)) or len(idx) != 2 or idx[1] < 1:
            return gr.skip()
        return toggle_head(heads, int(idx[0]), int(idx[1]) - 1)

    run = dict(trigger_mode="always_last", **MODEL_QUEUE, **PRIVATE)
    own = views(t, ctx)
    for name, triggers in (("surprisal", (t.s_button.click, t.s_prompt.submit)),
                           ("ablate", (t.a_button.click, t.a_heads.submit, t.a_mlps.submit)),
                           ("attribute", (t.t_button.click, t.t_target.submit, t.t_distractor.submit)),
                           ("patch", (t.p_button.click,)), ("compare", (t.c_button.click,))):
        for trig in triggers:
            trig(*own[name], **run)
    t.a_grid.select(ui_pick_head, [t.a_heads], [t.a_heads], **LIGHT, **PRIVATE).then(*own["ablate"], **run)
    t.tab.select(*own["surprisal"], **run)
