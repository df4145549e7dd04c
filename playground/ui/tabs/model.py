"""Model tab: what is loaded; load a file from weights/, upload one, or download GPT-2 from the Hub."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from ...checkpoints.hub import HUB_REPOS
from ...inspection.export import dumps
from ..common import LIGHT, PRIVATE, AppContext, export_file, guarded
from ..i18n import current_lang
from ..views import model as model_view

TAB_ID = "model"
SHARED_NOTE = ("The model is shared by everyone using this app: loading another one changes it for all "
               "open pages (each request keeps the model it started with).")
LOCKED = "Changing the model is switched off on this server."


@dataclass
class ModelTab:
    tab: gr.Tab
    info: gr.Markdown
    card: gr.Markdown
    status: gr.Markdown
    files: gr.Dropdown
    refresh: gr.Button
    load: gr.Button
    upload: gr.File
    hub_size: gr.Dropdown
    hub: gr.Button
    json: gr.DownloadButton

    def link_controls(self) -> dict[str, Any]:
        return {}


def build(ctx: AppContext) -> ModelTab:
    with gr.Tab("Model", id=TAB_ID, elem_id="tab-model") as tab:
        info = gr.Markdown(elem_id="model-info")
        card = gr.Markdown(elem_id="model-card")
        status = gr.Markdown(elem_id="model-status")
        with gr.Column(visible=ctx.allow_model_change):
            gr.Markdown(f"**{SHARED_NOTE}**")
            with gr.Row():
                files = gr.Dropdown(model_view.weight_files(ctx.weights_dir),
                                    label=f"Weights in {ctx.weights_dir.name}/", scale=3, elem_id="weights-files")
                refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
                load = gr.Button("Load", scale=1, elem_id="load-btn")
            upload = gr.File(label=f"Upload a .safetensors file (our own or Hugging Face GPT-2 layout; at most "
                                   f"{ctx.upload_mb:,} MB). It is kept in a temporary folder, never in weights/.",
                             file_types=[".safetensors"], type="filepath", elem_id="upload", height=140)
            with gr.Row():
                hub_size = gr.Dropdown(list(HUB_REPOS), value="gpt2", label="OpenAI GPT-2 from the Hub", scale=3)
                hub = gr.Button("Download and load", scale=1, elem_id="hub-btn")
        if not ctx.allow_model_change:
            gr.Markdown(LOCKED)
        json_btn = gr.DownloadButton("Download model info (JSON)", size="sm")
    return ModelTab(tab, info, card, status, files, refresh, load, upload, hub_size, hub, json_btn)


def wire(t: ModelTab, ctx: AppContext, others: list, on_loaded: Callable[[bool], dict]) -> None:
    """``others``/``on_loaded``: what the rest of the page updates after a load (header badge, sliders)."""
    outputs = [t.status, t.info, t.card, t.json, *others]

    def after_load(ok: bool, message: str) -> dict:
        info = ctx.holder.info()
        return {t.status: message, t.info: model_view.model_markdown(info),
                t.card: model_view.card_markdown(ctx.holder, current_lang()),
                t.json: export_file("model-info", "json", dumps(info)), **on_loaded(ok)}

    def require_unlocked() -> None:
        if not ctx.allow_model_change:
            raise gr.Error(LOCKED)

    @guarded
    def ui_load_file(name):
        require_unlocked()
        path = model_view.resolve_in(ctx.weights_dir, name)
        return after_load(*model_view.load_weights(ctx.holder, path, path.name))

    @guarded
    def ui_load_upload(path):
        require_unlocked()
        if not path:
            return {t.status: gr.skip()}
        checked = model_view.check_upload(path, ctx.upload_mb)
        return after_load(*model_view.load_weights(ctx.holder, checked, checked.name))

    @guarded
    def ui_download(size, progress=gr.Progress(track_tqdm=True)):
        require_unlocked()
        return after_load(*model_view.download_and_load(ctx.holder, size, progress))

    @guarded
    def ui_model_tab():
        info = ctx.holder.info()
        return {t.info: model_view.model_markdown(info), t.card: model_view.card_markdown(ctx.holder, current_lang()),
                t.files: gr.update(choices=model_view.weight_files(ctx.weights_dir)),
                t.json: export_file("model-info", "json", dumps(info))}

    loads = dict(concurrency_id="load", concurrency_limit=1, **PRIVATE)
    t.refresh.click(lambda: gr.update(choices=model_view.weight_files(ctx.weights_dir)), None, [t.files],
                    **LIGHT, **PRIVATE)
    t.load.click(ui_load_file, [t.files], outputs, **loads)
    t.upload.upload(ui_load_upload, [t.upload], outputs, **loads)
    t.hub.click(ui_download, [t.hub_size], outputs, **loads)
    t.tab.select(ui_model_tab, None, [t.info, t.card, t.files, t.json], **LIGHT, **PRIVATE)
