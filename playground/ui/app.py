"""The page: a header, the top bar of view groups (``nav.py``), deep links, the deck and the wiring between tabs.

Each tab module builds its own components (``build``), wires its own events
(``wire``) and names the controls a deep link can set (``link_controls``).
This module only puts them in ``gr.Tabs`` and joins what crosses tabs: the
prompts follow the Generate prompt, a load changes the header and the layer
sliders, a link (or a deck's slide) opens a view with its controls set,
presentation mode redraws the open view.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from ..batching import Batcher
from ..training.registry import TrainingLine
from ..config import PRESETS
from ..paths import WEIGHTS_DIR
from . import api, deckbar, deeplink, nav
from . import validate as v
from .common import LIGHT, MODEL_QUEUE, PRIVATE, AppContext, guarded, lang_keyed
from .deck_js import PUBLISH_JS, READY_JS
from .glossary import glossary_markdown
from .i18n import LANG_CHOICES, SWITCH_JS, current_lang, has_own_headers, lang_of, localize, table_headers, tr
from .linking import LinkApplier, badge_text
from .state import ModelHolder
from .tabs import (attention, circuits, embeddings, experiments, generate, logit_lens, model, neurons, next_token,
                   parameters, saliency, shapes, talk, train, walkthrough)
from .tabs.group import GroupModule
from .theme import ABSOLUTE_LINK_JS, TOGGLE_PRESENTATION_JS
from .views import attention as att_view
from .views.warm import warm_up

BADGE_REFRESH_S = 10.0        # how often open pages re-read which model is loaded
log = logging.getLogger(__name__)

# Every view module the top bar places (nav.GROUPS says where; a module it does not name gets a tab at the end).
MODULES = {m.TAB_ID: m for m in (generate, attention, walkthrough, shapes, logit_lens, next_token, parameters,
                                  experiments, neurons, embeddings, train, model, talk)}


def top_modules(modules: dict[str, Any]) -> tuple:
    """The top bar: a group of one view is that view's module, a larger group a :class:`GroupModule`."""
    return tuple(modules[g.views[0]] if len(g.views) == 1 else
                 GroupModule(g.id, g.label, tuple(modules[t] for t in g.views)) for g in nav.arrange(frozenset(modules)))


TAB_MODULES = top_modules(MODULES)
PARENTS = tuple(m for m in TAB_MODULES if hasattr(m, "CHILDREN"))   # tabs holding tabs of other modules
CHILD_MODULES = tuple(c for p in PARENTS for c in p.CHILDREN)
# A view inside another tab -> that tab (a deep link to it opens both): child modules, and Experiments' own.
PARENT_OF = {c: p.TAB_ID for p in PARENTS for c in (*getattr(p, "INNER", ()), *(m.TAB_ID for m in p.CHILDREN))}
# Views computed when their tab opens (circuits: a tab inside Experiments, built by that tab).
VIEW_MODULES = (attention, shapes, walkthrough, logit_lens, next_token, circuits, saliency, neurons, embeddings)


def _header(ctx: AppContext) -> tuple[gr.Button, gr.Button, gr.Textbox, gr.Textbox, deckbar.DeckBar]:
    """The title, the model badge, the deck's bar and the switches (``ctx.badge``, ``ctx.present``, ``ctx.lang``);
    returns the copy-link and add-to-deck buttons, the link box, the hidden field naming the open view and the
    deck bar. In a deck, presentation mode gives the title's and the badge's room to the deck bar."""
    with gr.Row(equal_height=True, elem_id="header"):       # one line: the figure below starts high
        gr.Markdown("## GPT-2 Playground", elem_id="title", min_width=230)
        ctx.badge = gr.Markdown(elem_id="model-badge")
        bar = deckbar.build_bar()
        ctx.present = gr.Checkbox(label="Presentation mode", value=False, elem_id="present", container=False,
                                  scale=0, min_width=190)
        ctx.lang = gr.Radio(LANG_CHOICES, value="en", show_label=False, elem_id="lang-switch", container=False,
                            scale=0, min_width=170)
        add_view = gr.Button("Add to deck", size="sm", elem_id="add-to-deck", scale=0, min_width=100)
        copy_link = gr.Button("Copy link to this view", size="sm", elem_id="copy-link", scale=0, min_width=120)
    link_box = gr.Textbox(label="Link to this view", visible=False, buttons=["copy"], elem_id="link-box",
                          interactive=False)
    current_tab = gr.Textbox(value=generate.TAB_ID, visible="hidden", elem_id="current-tab")
    deckbar.build_rest(bar)
    return copy_link, add_view, link_box, current_tab, bar


def _inner_tab_js(inner: gr.Tabs, parent: str) -> str:
    """Opening a tab that holds tabs opens the view selected inside it: its id, read from the page."""
    return (f"async () => {{ await new Promise(r => setTimeout(r, 80)); const b = document.querySelector("
            f"'#{inner.elem_id} [role=tab][aria-selected=true]'); return (b && b.dataset.tabId) || {parent!r}; }}")


def _wire_language(demo: gr.Blocks, loaded: Any, switched: Any) -> None:
    """Every built text keyed for ``gr.I18n``. Tables take their headers from their value, which gr.I18n does
    not reach: the page's load sends them in its language. The tab bar keeps the labels it read when the page
    mounted: after the switch has changed Gradio's locale, every tab is sent its (translation-keyed) label
    again to redraw it."""
    missing = localize(demo.blocks.values())
    if missing:
        log.debug("texts without a 中文 translation: %s", missing)
    all_tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    tables = [b for b in demo.blocks.values() if has_own_headers(b)]

    def ui_table_headers():
        return {table: table_headers(table, current_lang()) for table in tables}

    def ui_relabel():
        return {**{tab: gr.update(label=tab.label) for tab in all_tabs}, **ui_table_headers()}
    loaded.then(ui_table_headers, None, tables, **LIGHT, **PRIVATE)
    switched.then(ui_relabel, None, all_tabs + tables, **LIGHT, **PRIVATE)


def build_demo(holder: ModelHolder, *, weights_dir: Path = WEIGHTS_DIR, allow_model_change: bool = True,
               queue_size: int = 64, max_upload_mb: int | None = None, batcher: Batcher | None = None,
               training: TrainingLine | None = None) -> gr.Blocks:
    """The whole app around ``holder``'s model. Launch with ``theme.launch_kwargs()`` (the same
    ``max_upload_mb``, default ``$PLAYGROUND_MAX_UPLOAD_MB`` or 1024). Generations decode together in
    ``batcher`` (default: one with the settings of ``$PLAYGROUND_MAX_BATCH`` and the others, see
    :meth:`Batcher.from_env`); the Train tab's runs go through ``training`` (default: the default caps,
    see ``playground.settings``)."""
    ctx = AppContext(holder, weights_dir, allow_model_change, max_upload_mb or v.upload_limit_mb(),
                     batcher or Batcher.from_env(), training=training or TrainingLine())
    # After each load, in the background: the head scores on random tokens (the Attention tab's first view and
    # the page load need them), then one pass of each kind the views run.
    for prepare in (att_view.random_scores, warm_up):
        if prepare not in holder.after_load:
            holder.after_load.append(prepare)

    with gr.Blocks(title="GPT-2 Playground", delete_cache=(3600, 3600)) as demo:
        copy_link, add_view, link_box, current_tab, bar = _header(ctx)
        ctx.current_tab = current_tab

        # "wrap", not Gradio's "⋯" menu: it measures the bar once, before presentation mode enlarges the page,
        # and then hides the last tabs behind a menu a room cannot see.
        with gr.Tabs(selected=generate.TAB_ID, elem_id="tabs", overflow_behavior="wrap") as tabs:
            built = {m.TAB_ID: m.build(ctx) for m in TAB_MODULES}
        deckbar.build_speaker(bar)
        for parent in PARENTS:
            built.update(built[parent.TAB_ID].children)
        gen, att = built[generate.TAB_ID], built[attention.TAB_ID]
        for m in TAB_MODULES + CHILD_MODULES:
            if m not in (model, talk, train):
                m.wire(built[m.TAB_ID], ctx)

        # ------------------------------------------------------------------ cross-tab wiring
        sliders = [(t.layer, t.head) for t in (att, built[walkthrough.TAB_ID])]
        layer_only = [built[neurons.TAB_ID].layer]

        def on_loaded(ok: bool) -> dict:
            cfg = holder.current().model.cfg if holder.current() else PRESETS["gpt2"]
            update = {ctx.badge: badge_text(holder, current_lang())}
            if ok:
                for layer, head in sliders:
                    update[layer] = gr.update(maximum=max(cfg.n_layers - 1, 1))
                    update[head] = gr.update(maximum=max(cfg.n_heads - 1, 1))
                for layer in layer_only:
                    update[layer] = gr.update(maximum=max(cfg.n_layers - 1, 1))
            return update
        after_load = [ctx.badge] + [c for pair in sliders for c in pair] + layer_only
        model.wire(built[model.TAB_ID], ctx, after_load, on_loaded)
        train.wire(built[train.TAB_ID], ctx, after_load, on_loaded)       # "Use this model" loads as the Model tab
        demo.unload(train.unload(ctx))

        # The other tabs' prompts follow the Generate prompt (in the browser, no server round trip).
        own_texts = {neurons.TAB_ID, embeddings.TAB_ID, saliency.TAB_ID}      # texts chosen to show their effect
        followers = [t.prompt for tab_id, t in built.items()
                     if hasattr(t, "prompt") and t is not gen and tab_id not in own_texts]
        gen.prompt.change(None, [gen.prompt], followers, js=f"(p) => Array({len(followers)}).fill(p)", **PRIVATE)
        following = {gen.prompt, *followers}      # a linked prompt goes to these (the others keep their examples)
        # Which view is open (for links, the deck and presentation mode); a link shown for another view is stale.
        for tab_id, t in built.items():
            js = _inner_tab_js(t.inner, tab_id) if hasattr(t, "inner") else f"() => {tab_id!r}"
            t.tab.select(None, None, [current_tab], js=js, **PRIVATE)
            t.tab.select(lambda: gr.update(visible=False), None, [link_box], **LIGHT, **PRIVATE)

        # ------------------------------------------------------------------ deep links and the deck
        link_fields = [(tab_id, name, comp) for tab_id, t in built.items()
                       for name, comp in t.link_controls().items()]
        applier = LinkApplier(ctx, built, tabs, current_tab, link_fields, following, PARENT_OF)
        draw = _view_drawer(ctx, built, current_tab)
        flow = deckbar.DeckFlow(ctx, bar, applier, draw)

        @guarded
        def ui_on_load(request: gr.Request) -> dict:
            """Opens the linked view (``?tab=attention&layer=3``) or the deck's slide (``?deck=NAME&slide=N``)."""
            holder.ensure_loaded()
            query = dict(request.query_params) if request else {}
            lang = lang_of(request)
            opened = deckbar.from_query(query, lang)
            link = deeplink.parse(query)
            if opened.speaker:                         # the speaker window shows notes, no view
                link = deeplink.Link(present=link.present)
            elif opened.deck is not None and opened.index >= 0:
                s = opened.deck.slides[opened.index]
                link = deeplink.Link(tab=s.tab, present=True if link.present is None else link.present, values=s.values)
            return applier.updates(link, lang) | deckbar.bar_updates(bar, opened.deck, opened.index, flow.cfg(), lang,
                                                                      opened.message)

        @guarded
        def ui_link(tab, present_on, *values):
            tab_id = deeplink.clean_tab(tab)
            named = {name: value for (t_id, name, _), value in zip(link_fields, values) if t_id == tab_id}
            return gr.update(value=deeplink.build(tab_id, named, present_on, lang=current_lang()), visible=True)

        loaded = demo.load(ui_on_load, None, flow.outputs(), **LIGHT, **PRIVATE)
        copy_link.click(ui_link, [current_tab, ctx.present] + [comp for _, _, comp in link_fields], [link_box],
                        **LIGHT, **PRIVATE).then(None, [link_box], [link_box], js=ABSOLUTE_LINK_JS, **PRIVATE)
        flow.wire()
        talk.Editor(built[talk.TAB_ID], ctx, bar, flow).wire(add_view, current_tab, link_fields)

        # One event in the model queue per page load: it draws the linked view (returns at once for views
        # without one). Presentation mode redraws the open view's figures with larger fonts.
        draw_fn, draw_inputs, draw_outputs = draw
        loaded.then(None, [bar.sync], None, js=PUBLISH_JS, **PRIVATE)
        loaded.then(draw_fn, draw_inputs, draw_outputs, **MODEL_QUEUE, **PRIVATE).then(
            None, [bar.sync], None, js=READY_JS, **PRIVATE)
        ctx.present.input(draw_fn, draw_inputs, draw_outputs, **MODEL_QUEUE, **PRIVATE)
        ctx.present.change(None, [ctx.present], None, js=TOGGLE_PRESENTATION_JS, **PRIVATE)
        # The switch changes the page's texts at once (Gradio's locale, and ?lang= for the server's texts),
        # then the open view is drawn again in that language.
        switched = ctx.lang.input(None, [ctx.lang], [ctx.lang], js=SWITCH_JS, **PRIVATE)
        switched.then(draw_fn, draw_inputs, draw_outputs, **MODEL_QUEUE, **PRIVATE)

        # Someone else may swap the shared model: every open page re-reads the header badge.
        def ui_badge_if_changed(shown: str):
            now = tr(badge_text(holder, current_lang()), current_lang())
            return gr.skip() if now == shown else now
        gr.Timer(BADGE_REFRESH_S).tick(ui_badge_if_changed, [ctx.badge], [ctx.badge], show_progress="hidden",
                                       **LIGHT, **PRIVATE)

        with gr.Accordion("Glossary", open=False, elem_id="glossary"):
            gr.Markdown(glossary_markdown())
        api.register(holder, MODEL_QUEUE, ctx.batcher, ctx.training)
        _wire_language(demo, loaded, switched)

    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    return demo


def _view_drawer(ctx: AppContext, built: dict[str, Any], current_tab: gr.Textbox) -> tuple[Callable, list, list]:
    """``(ui_linked_view, inputs, outputs)``: draws the open view (the one ``current_tab`` names) with its controls
    as they are; a view drawn already with the same inputs is not drawn again (its ``key``)."""
    draws: list[tuple[tuple[str, ...], list, Callable]] = []
    outputs: list = []
    for m in VIEW_MODULES:
        t = built[m.TAB_ID]
        fn = lang_keyed(t, m.compute(t, ctx))
        draws.append(((m.TAB_ID,), t.inputs(ctx) + [t.key], lambda *a, fn=fn: fn(*a[:-1], key=a[-1])))
        outputs += t.outputs()
    for name, (fn, inputs, outs) in experiments.views(built[experiments.TAB_ID], ctx).items():
        draws.append(((name, experiments.TAB_ID) if name == "surprisal" else (name,), inputs, fn))
        outputs += outs
    outputs = list(dict.fromkeys(outputs))

    def ui_linked_view(tab, *values):
        i = 0
        for ids, inputs, fn in draws:
            if tab in ids:
                return fn(*values[i:i + len(inputs)])
            i += len(inputs)
        return {outputs[0]: gr.skip()}
    return ui_linked_view, [current_tab] + [c for _, inputs, _ in draws for c in inputs], outputs
