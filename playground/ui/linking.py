"""A deep link applied to the page: the one place that turns a :class:`~.deeplink.Link` into updates.

The page's load event applies the URL's link (``?tab=attention&layer=3``); a deck applies each slide's link
as the speaker moves (``deckbar.py``). Both call :meth:`LinkApplier.updates`, so a slide shows exactly
what opening its link in a fresh page shows: its tab (and the group tab around it) opened, every control
of that tab set to the linked value or, when the link does not name it, to its starting value, the layer
and head sliders fitted to the loaded model.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..config import PRESETS
from . import deeplink
from .common import AppContext
from .tabs import attention, generate, model, neurons, parameters, train, walkthrough
from .views import attention as att_view
from .views import model as model_view


def badge_text(holder: Any, lang: str = "en") -> str:
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


class LinkApplier:
    """Applies links to one built page. ``built``: every tab's built object by tab id (children included);
    ``parent_of``: a tab inside another tab -> that tab; ``link_fields``: ``(tab id, name, component)``;
    ``following``: the prompts that follow the Generate prompt (a linked prompt goes to them all)."""

    def __init__(self, ctx: AppContext, built: dict[str, Any], tabs: gr.Tabs, current_tab: gr.Textbox,
                 link_fields: list[tuple[str, str, Any]], following: set, parent_of: dict[str, str]) -> None:
        self.ctx, self.built, self.tabs, self.current_tab = ctx, built, tabs, current_tab
        self.link_fields, self.following, self.parent_of = link_fields, following, parent_of

    def path(self, tab: str) -> list[str]:
        """The tabs to open for ``tab``, outermost first (``["inside", "attention"]``)."""
        out = [tab]
        while out[0] in self.parent_of:
            out.insert(0, self.parent_of[out[0]])
        return out

    def outputs(self) -> list:
        """Every component :meth:`updates` may set."""
        b, ctx = self.built, self.ctx
        parents = [t.inner for t in b.values() if hasattr(t, "inner")]
        return list(dict.fromkeys(
            [self.tabs, *parents, self.current_tab, ctx.badge, ctx.present, ctx.lang, b[model.TAB_ID].info,
             b[model.TAB_ID].card, b[neurons.TAB_ID].layer, b[neurons.TAB_ID].neuron,
             b[attention.TAB_ID].layer, b[attention.TAB_ID].head, b[walkthrough.TAB_ID].layer,
             b[walkthrough.TAB_ID].head] + [comp for _, _, comp in self.link_fields]
            + b[parameters.TAB_ID].outputs()
            + [b[train.TAB_ID].params, b[train.TAB_ID].loss, b[train.TAB_ID].head_choice]))

    def updates(self, link: deeplink.Link, lang: str, *, page_load: bool = True,
                present_on: bool | None = None) -> dict:
        """The updates that open ``link``. ``page_load``: also the header, the Model tab and the Parameters
        tab's figures for the loaded model (a deck's step leaves those as they are)."""
        holder, b, ctx = self.ctx.holder, self.built, self.ctx
        snap = holder.current()
        cfg = snap.model.cfg if snap else PRESETS["gpt2"]
        tab = link.tab or generate.TAB_ID
        path = self.path(tab)
        update: dict[Any, Any] = {self.tabs: gr.update(selected=path[0]), self.current_tab: tab}
        for outer, inner in zip(path, path[1:]):
            update[b[outer].inner] = gr.update(selected=inner)
        if page_load:
            update.update({ctx.badge: badge_text(holder, lang),
                           b[model.TAB_ID].info: model_view.model_markdown(holder.info()),
                           b[model.TAB_ID].card: model_view.card_markdown(holder, lang)})
            update[ctx.lang] = lang
        if link.present is not None:
            update[ctx.present] = link.present
        present = bool(link.present) if present_on is None else present_on
        values = dict(link.values)
        # Parameters opens on the loaded model's own config, unless the link names another.
        params_tab = b[parameters.TAB_ID]
        p_cfg = parameters.config_from_link(values) if tab == parameters.TAB_ID else None
        if p_cfg is None and snap is not None and (page_load or tab == parameters.TAB_ID):
            p_cfg = snap.model.cfg
            update.update(zip(params_tab.fields.values(), parameters.config_values(p_cfg)))
        if p_cfg is not None:
            if tab == parameters.TAB_ID:
                values.update(zip(parameters.FIELDS, parameters.config_values(p_cfg)))
            update.update(parameters.outputs_for(params_tab, ctx, p_cfg, present))
        for tab_id, name, comp in self.link_fields:
            if tab_id == tab:                     # the linked value, else the value the page starts with
                update[comp] = values[name] if name in values else comp.value
            elif name == "prompt" and comp in self.following and name in values and page_load:
                update[comp] = values[name]       # (a deck's step leaves the views it does not show alone)
        if tab == train.TAB_ID:                    # its preset under the values the link names
            update.update(train.on_link(b[tab], values, link.present))
        self._fit_sliders(update, tab, values, snap, cfg, page_load)
        return update

    def _fit_sliders(self, update: dict, tab: str, values: dict, snap: Any, cfg: Any, every: bool) -> None:
        """The layer and head sliders fit the loaded model; a linked value beyond it is clamped. Attention opens
        on a head that shows something (the clearest previous-token head). ``every``: every view's sliders (a
        page load), else only the linked view's."""
        b = self.built
        att, walk, neuron_layer = b[attention.TAB_ID], b[walkthrough.TAB_ID], b[neurons.TAB_ID].layer
        best = att_view.clearest_head(snap) if snap is not None else (0, 0)
        for tab_id, comp, name, count, default in (
                (attention.TAB_ID, att.layer, "layer", cfg.n_layers, best[0]),
                (attention.TAB_ID, att.head, "head", cfg.n_heads, best[1]),
                (walkthrough.TAB_ID, walk.layer, "layer", cfg.n_layers, 0),
                (walkthrough.TAB_ID, walk.head, "head", cfg.n_heads, 0),
                (neurons.TAB_ID, neuron_layer, "layer", cfg.n_layers, neuron_layer.value)):
            if not every and tab != tab_id:
                continue
            linked = values.get(name) if tab == tab_id else None
            update[comp] = gr.update(maximum=max(count - 1, 1),
                                     value=min(linked if linked is not None else default, count - 1))
        # The neuron presets are the bundled model's: on a smaller model the default neuron is its last.
        neuron_box = b[neurons.TAB_ID].neuron
        if not every and tab != neurons.TAB_ID:
            return
        linked_neuron = values.get("neuron") if tab == neurons.TAB_ID else None
        update[neuron_box] = min(linked_neuron if linked_neuron is not None else neuron_box.value, 4 * cfg.emb_dim - 1)
