"""The page: a header, one tab per module of ``tabs/``, deep links and the wiring between tabs.

Each tab module builds its own components (``build``), wires its own events
(``wire``) and names the controls a deep link can set (``link_controls``).
This module only puts them in ``gr.Tabs`` and joins what crosses tabs: the
prompts follow the Generate prompt, a load changes the header and the layer
sliders, a link opens a tab with its controls set, presentation mode redraws
the open tab.
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
from . import api, deeplink
from . import validate as v
from .common import LIGHT, MODEL_QUEUE, PRIVATE, AppContext, guarded, lang_keyed
from .glossary import glossary_markdown
from .i18n import LANG_CHOICES, SWITCH_JS, current_lang, has_own_headers, lang_of, localize, table_headers, tr
from .state import ModelHolder
from .tabs import (attention, circuits, embeddings, experiments, generate, learned, logit_lens, model, neurons,
                   next_token, parameters, saliency, shapes, train, walkthrough)
from .theme import ABSOLUTE_LINK_JS, TOGGLE_PRESENTATION_JS
from .views import attention as att_view
from .views import model as model_view

BADGE_REFRESH_S = 10.0        # how often open pages re-read which model is loaded
log = logging.getLogger(__name__)

TAB_MODULES = (generate, attention, shapes, walkthrough, parameters, logit_lens, next_token, experiments, learned,
               train, model)
PARENTS = (experiments, learned)          # tabs holding tabs of other modules (their CHILDREN)
# Views computed when their tab opens (circuits: a tab inside Experiments, built by that tab).
VIEW_MODULES = (attention, shapes, walkthrough, logit_lens, next_token, circuits, saliency, neurons, embeddings)
CHILD_MODULES = tuple(c for p in PARENTS for c in p.CHILDREN)


def badge_text(holder: ModelHolder, lang: str = "en") -> str:
    snap = holder.current()
    if snap is None:
        return f"⚠️ **No model loaded.** {holder.missing_message()}"
    cfg = snap.model.cfg
    card = snap.card.localized(lang) if snap.card else None
    name = card.name if card else f"{snap.name} · {snap.model.num_parameters() / 1e6:,.1f}M parameters"
    more = (f" ({card.short})" if card else "") + \
        f" · {cfg.n_layers} layers × {cfg.n_heads} heads · context {cfg.context_length} · {snap.device}"
    # Presentation mode hides the details (class badge-more), so the header stays one line on a projector.
    return f"**Model:** {name}<span class='badge-more'>{more}</span>"


def _header(ctx: AppContext) -> tuple[gr.Button, gr.Textbox, gr.Textbox]:
    """The title, the model badge and the switches (``ctx.badge``, ``ctx.present``, ``ctx.lang``); returns the
    copy-link button, the link box and the hidden field naming the open tab."""
    with gr.Row(equal_height=True, elem_id="header"):       # one line: the figure below starts high
        gr.Markdown("## GPT-2 Playground", elem_id="title", min_width=230)
        ctx.badge = gr.Markdown(elem_id="model-badge")
        ctx.present = gr.Checkbox(label="Presentation mode", value=False, elem_id="present", container=False,
                                  scale=0, min_width=190)
        ctx.lang = gr.Radio(LANG_CHOICES, value="en", show_label=False, elem_id="lang-switch", container=False,
                            scale=0, min_width=170)
        copy_link = gr.Button("Copy link to this view", size="sm", elem_id="copy-link", scale=0, min_width=170)
    link_box = gr.Textbox(label="Link to this view", visible=False, buttons=["copy"], elem_id="link-box",
                          interactive=False)
    current_tab = gr.Textbox(value=generate.TAB_ID, visible="hidden", elem_id="current-tab")
    return copy_link, link_box, current_tab


def link_loader(ctx: AppContext, built: dict[str, Any], tabs: gr.Tabs, current_tab: gr.Textbox,
                link_fields: list[tuple[str, str, Any]], following: set) -> Callable[[gr.Request], dict]:
    """The page-load handler: opens the linked tab with its controls set (``?tab=attention&layer=3``), the
    prompt in every tab that follows it, the header and Model tab filled. The layer and head sliders fit
    the loaded model; a linked value beyond it is clamped."""
    holder = ctx.holder
    att, walk, params_tab, model_tab = (built[attention.TAB_ID], built[walkthrough.TAB_ID],
                                        built[parameters.TAB_ID], built[model.TAB_ID])

    def ui_on_load(request: gr.Request) -> dict:
        holder.ensure_loaded()
        link = deeplink.parse(dict(request.query_params) if request else {})
        snap = holder.current()
        cfg = snap.model.cfg if snap else PRESETS["gpt2"]
        tab = link.tab or generate.TAB_ID
        parent = next((m.PARENT for m in CHILD_MODULES if m.TAB_ID == tab), None)
        update: dict[Any, Any] = {tabs: gr.update(selected=parent or tab), current_tab: tab,
                                  ctx.badge: badge_text(holder, current_lang()),
                                  model_tab.info: model_view.model_markdown(holder.info()),
                                  model_tab.card: model_view.card_markdown(holder, current_lang())}
        if parent is not None:
            update[built[parent].inner] = gr.update(selected=tab)
        if link.present is not None:
            update[ctx.present] = link.present
        update[ctx.lang] = lang_of(request)
        values = dict(link.values)
        # Parameters opens on the loaded model's own config, unless the link names another.
        p_cfg = parameters.config_from_link(values) if tab == parameters.TAB_ID else None
        if p_cfg is None and snap is not None:
            p_cfg = snap.model.cfg
            update.update(zip(params_tab.fields.values(), parameters.config_values(p_cfg)))
        if p_cfg is not None:
            if tab == parameters.TAB_ID:
                values.update(zip(parameters.FIELDS, parameters.config_values(p_cfg)))
            update.update(parameters.outputs_for(params_tab, ctx, p_cfg, bool(link.present)))
        for tab_id, name, comp in link_fields:
            if name in values and (tab_id == tab or (name == "prompt" and comp in following)):
                update[comp] = values[name]
        if tab == train.TAB_ID:                          # its preset under the values the link names
            update.update(train.on_link(built[train.TAB_ID], values, link.present))
        neuron_layer = built[neurons.TAB_ID].layer
        best = att_view.clearest_head(snap) if snap is not None else (0, 0)    # Attention opens on a head that
        for tab_id, comp, name, count, default in (                            # shows something
                (attention.TAB_ID, att.layer, "layer", cfg.n_layers, best[0]),
                (attention.TAB_ID, att.head, "head", cfg.n_heads, best[1]),
                (walkthrough.TAB_ID, walk.layer, "layer", cfg.n_layers, 0),
                (walkthrough.TAB_ID, walk.head, "head", cfg.n_heads, 0),
                (neurons.TAB_ID, neuron_layer, "layer", cfg.n_layers, neuron_layer.value)):
            linked = values.get(name) if tab == tab_id else None
            update[comp] = gr.update(maximum=max(count - 1, 1),
                                     value=min(linked if linked is not None else default, count - 1))
        # The neuron presets are the bundled model's: on a smaller model the default neuron is its last.
        neuron_box = built[neurons.TAB_ID].neuron
        linked_neuron = values.get("neuron") if tab == neurons.TAB_ID else None
        update[neuron_box] = min(linked_neuron if linked_neuron is not None else neuron_box.value, 4 * cfg.emb_dim - 1)
        return update
    return ui_on_load


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

    with gr.Blocks(title="GPT-2 Playground", delete_cache=(3600, 3600)) as demo:
        copy_link, link_box, current_tab = _header(ctx)
        ctx.current_tab = current_tab

        # "wrap", not Gradio's "⋯" menu: it measures the bar once, before presentation mode enlarges the page,
        # and then hides the last tabs behind a menu a room cannot see.
        with gr.Tabs(selected=generate.TAB_ID, elem_id="tabs", overflow_behavior="wrap") as tabs:
            built = {m.TAB_ID: m.build(ctx) for m in TAB_MODULES}
            for parent in PARENTS:
                built.update(built[parent.TAB_ID].children)
        gen, att = built[generate.TAB_ID], built[attention.TAB_ID]
        for m in TAB_MODULES + CHILD_MODULES:
            if m not in (model, learned, train):
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
        # Which tab is open (for links and presentation mode); a link shown for another tab is stale.
        for tab_id, t in built.items():
            t.tab.select(None, None, [current_tab], js=f"() => {tab_id!r}", **PRIVATE)
            t.tab.select(lambda: gr.update(visible=False), None, [link_box], **LIGHT, **PRIVATE)

        # ------------------------------------------------------------------ deep links
        link_fields = [(tab_id, name, comp) for tab_id, t in built.items()
                       for name, comp in t.link_controls().items()]
        params_tab = built[parameters.TAB_ID]
        ui_on_load = guarded(link_loader(ctx, built, tabs, current_tab, link_fields, following))

        @guarded
        def ui_link(tab, present_on, *values):
            tab_id = deeplink.clean_tab(tab)
            named = {name: value for (t_id, name, _), value in zip(link_fields, values) if t_id == tab_id}
            return gr.update(value=deeplink.build(tab_id, named, present_on, lang=current_lang()), visible=True)

        load_outputs = ([tabs, *(built[p.TAB_ID].inner for p in PARENTS), current_tab, ctx.badge, ctx.present,
                         ctx.lang, built[model.TAB_ID].info, built[neurons.TAB_ID].layer, built[neurons.TAB_ID].neuron,
                         built[model.TAB_ID].card,
                         att.layer, att.head,
                         built[walkthrough.TAB_ID].layer, built[walkthrough.TAB_ID].head]
                        + [comp for _, _, comp in link_fields] + params_tab.outputs()
                        + [built[train.TAB_ID].params, built[train.TAB_ID].loss])
        loaded = demo.load(ui_on_load, None, list(dict.fromkeys(load_outputs)), **LIGHT, **PRIVATE)
        copy_link.click(ui_link, [current_tab, ctx.present] + [comp for _, _, comp in link_fields], [link_box],
                        **LIGHT, **PRIVATE).then(None, [link_box], [link_box], js=ABSOLUTE_LINK_JS, **PRIVATE)

        # One event in the model queue per page load: it draws the linked tab's view (returns at once
        # for tabs without one). Presentation mode redraws the open tab's figures with larger fonts.
        views = [(m.TAB_ID, built[m.TAB_ID], lang_keyed(built[m.TAB_ID], m.compute(built[m.TAB_ID], ctx)))
                 for m in VIEW_MODULES]
        view_inputs = [current_tab] + [c for _, t, _ in views for c in t.inputs(ctx) + [t.key]]
        view_outputs = list(dict.fromkeys(c for _, t, _ in views for c in t.outputs()))

        def ui_linked_view(tab, *values):
            i = 0
            for tab_id, t, fn in views:
                n = len(t.inputs(ctx)) + 1
                if tab == tab_id:
                    return fn(*values[i:i + n - 1], key=values[i + n - 1])
                i += n
            return {view_outputs[0]: gr.skip()}

        loaded.then(ui_linked_view, view_inputs, view_outputs, **MODEL_QUEUE, **PRIVATE)
        ctx.present.input(ui_linked_view, view_inputs, view_outputs, **MODEL_QUEUE, **PRIVATE)
        ctx.present.change(None, [ctx.present], None, js=TOGGLE_PRESENTATION_JS, **PRIVATE)
        # The switch changes the page's texts at once (Gradio's locale, and ?lang= for the server's texts),
        # then the open tab's view is drawn again in that language.
        switched = ctx.lang.input(None, [ctx.lang], [ctx.lang], js=SWITCH_JS, **PRIVATE)
        switched.then(ui_linked_view, view_inputs, view_outputs, **MODEL_QUEUE, **PRIVATE)

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
