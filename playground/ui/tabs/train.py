"""Train tab: train the book's GPTModel here, live — the copying task's induction heads form in a minute,
or words appear in a text model — then use the trained model in every other tab."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from ...training.live_spec import DEFAULT_PRESET, PRESETS, RunSpec
from ..common import AppContext, stage_bar, stage_more
from ..theme import style_figure
from ..views import train as train_view
from ..views import train_draw as draw
from . import train_wire

TAB_ID = "train"
TASK_CHOICES = [("copying (induction)", "copy"), ("text", "text")]
SOURCE_CHOICES = [("the corpus sample", "corpus"), ("your text", "yours")]
TASK_PRESET = {"copy": "induction-tiny", "text": "text-tiny"}
TICK_S = 1.0                     # the live view redraws at most this often while a run trains


@dataclass
class TrainTab:
    tab: gr.Tab
    task: gr.Dropdown
    preset: gr.Dropdown
    start: gr.Button
    pause: gr.Button
    resume: gr.Button
    stop: gr.Button
    reset: gr.Button
    use: gr.Button
    status: gr.Markdown
    loss: gr.Plot
    pattern: gr.Plot
    head_choice: gr.Dropdown
    heads: gr.Plot
    samples: gr.Markdown
    fields: dict[str, gr.components.Component]      # views.train.FIELDS -> control
    params: gr.Markdown
    json: gr.DownloadButton
    csv: gr.DownloadButton
    weights: gr.DownloadButton
    use_note: gr.Markdown
    run_id: gr.State
    drawn: gr.State
    timer: gr.Timer

    def link_controls(self) -> dict[str, Any]:
        names = {"train_steps", "lr", "batch_size", "seed", "task", "vocab_size", "context_length", "emb_dim",
                 "n_heads", "n_layers", "drop_rate", "qkv_bias", "tie_embeddings", "min_len", "max_len",
                 "text_source", "text", "text_tokens", "sample_every"}
        return {"train_preset": self.preset, "train_head": self.head_choice,
                **{k: c for k, c in self.fields.items() if k in names}}

    def drawn_outputs(self) -> list:
        return [self.status, self.loss, self.pattern, self.heads, self.samples, self.pause, self.resume,
                self.json, self.csv, self.weights, self.drawn, self.timer]


def build(ctx: AppContext) -> TrainTab:
    spec = train_view.preset_values(DEFAULT_PRESET)
    cfg = PRESETS[DEFAULT_PRESET].config
    with gr.Tab("Train", id=TAB_ID, elem_id="tab-train") as tab:
        with stage_bar():
            task = gr.Dropdown(TASK_CHOICES, value=spec["task"], label="Task", scale=3, min_width=270,
                               elem_id="train-task")
            preset = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label="Preset", scale=2, min_width=180,
                                 elem_id="train-preset")
            start = gr.Button("Start", variant="primary", min_width=90, elem_id="train-start")
            pause = gr.Button("Pause", min_width=90, visible=False, elem_id="train-pause")
            resume = gr.Button("Resume", min_width=90, visible=False, elem_id="train-resume")
            stop = gr.Button("Stop", variant="stop", min_width=80, elem_id="train-stop")
            reset = gr.Button("Reset", min_width=80, elem_id="train-reset")
            use = gr.Button("Use this model", min_width=150, elem_id="train-use")
        status = gr.Markdown(draw.status_markdown(None, ctx.training), elem_id="train-status")
        with gr.Row(elem_id="train-main"):
            with gr.Column(scale=1, min_width=420):
                loss = gr.Plot(label="Loss", elem_id="train-loss")
            with gr.Column(scale=1, min_width=360):
                pattern = gr.Plot(label="The head's pattern on the probe", elem_id="train-pattern")
                head_choice = gr.Dropdown(draw.head_choices(cfg.n_layers, cfg.n_heads), value="best-induction",
                                          label="Head shown", elem_id="train-head")
        use_note = gr.Markdown(elem_id="train-use-note")
        heads = gr.Plot(label="Head scores over the steps", elem_id="train-heads")
        samples = gr.Markdown(elem_id="train-samples")
        gr.Markdown("The probe: the same random tokens shown twice at every measure. **Previous-token score**: the "
                    "mean weight a token puts on the one just before it (first copy). **Induction score**: the mean "
                    "weight a second-copy token puts on the token that followed its first occurrence — the Attention "
                    "tab's definitions. The **phase change** is the first step where the running mean of 20 losses on "
                    "the copies falls below half of ln V after it sat near ln V (chance).", elem_classes="token-help")
        with stage_more("More: the model, the training, the task's data and downloads", elem_id="train-more"):
            fields = _settings(spec)
            params = gr.Markdown(train_view.parameters_line(cfg), elem_id="train-params")
            with gr.Row():
                json_btn = gr.DownloadButton("Download the run (JSON)", size="sm", elem_id="train-json")
                csv_btn = gr.DownloadButton("Download the curves (CSV)", size="sm", elem_id="train-csv")
                weights = gr.DownloadButton("Download the model (safetensors)", size="sm", elem_id="train-weights")
        run_id = gr.State(None)
        drawn = gr.State(None)
        timer = gr.Timer(TICK_S, active=False)
    return TrainTab(tab, task, preset, start, pause, resume, stop, reset, use, status, loss, pattern, head_choice,
                    heads, samples, fields, params, json_btn, csv_btn, weights, use_note, run_id, drawn, timer)


def _settings(spec: dict[str, Any]) -> dict[str, gr.components.Component]:
    """The run's every setting (views.train.FIELDS), in the collapsed section."""
    f: dict[str, gr.components.Component] = {"task": None}       # the bar's radio, filled in by wire
    gr.Markdown("**The model** (the book's GPTModel; every field of its GPTConfig)")
    with gr.Row():
        f["vocab_size"] = gr.Number(spec["vocab_size"], label="Vocabulary size", precision=0, elem_id="train-vocab")
        f["context_length"] = gr.Number(spec["context_length"], label="Context length", precision=0,
                                        elem_id="train-ctx")
        f["emb_dim"] = gr.Number(spec["emb_dim"], label="Embedding dim", precision=0, elem_id="train-emb")
        f["n_heads"] = gr.Number(spec["n_heads"], label="Heads", precision=0, elem_id="train-heads-n")
        f["n_layers"] = gr.Number(spec["n_layers"], label="Layers", precision=0, elem_id="train-layers")
        f["drop_rate"] = gr.Number(spec["drop_rate"], label="Dropout", elem_id="train-drop")
        with gr.Column(min_width=170):
            f["qkv_bias"] = gr.Checkbox(spec["qkv_bias"], label="QKV bias", elem_id="train-bias")
            f["tie_embeddings"] = gr.Checkbox(spec["tie_embeddings"], label="Tied output head", elem_id="train-tie")
    gr.Markdown("**The training** (AdamW, constant learning rate, gradients clipped at 1)")
    with gr.Row():
        f["seed"] = gr.Number(spec["seed"], label="Seed (the same seed and settings give the same losses)",
                              precision=0, elem_id="train-seed")
        f["lr"] = gr.Number(spec["lr"], label="Learning rate", elem_id="train-lr")
        f["train_steps"] = gr.Number(spec["train_steps"], label="Steps", precision=0, elem_id="train-steps")
        f["batch_size"] = gr.Number(spec["batch_size"], label="Batch size", precision=0, elem_id="train-batch")
    gr.Markdown("**Copying**: random sequences of these lengths, repeated to fill the context")
    with gr.Row():
        f["min_len"] = gr.Number(spec["min_len"], label="Shortest sequence", precision=0, elem_id="train-min-len")
        f["max_len"] = gr.Number(spec["max_len"], label="Longest sequence", precision=0, elem_id="train-max-len")
    gr.Markdown("**Text**: GPT-2 tokens of the corpus sample or of your text (the vocabulary must be 50,257)")
    with gr.Row():
        f["text_source"] = gr.Radio(SOURCE_CHOICES, value=spec["text_source"], label="Text", elem_id="train-source")
        f["text_tokens"] = gr.Number(spec["text_tokens"], label="Tokens of text (its first)", precision=0,
                                     elem_id="train-text-tokens")
        f["sample_every"] = gr.Number(spec["sample_every"], label="Steps between samples", precision=0,
                                      elem_id="train-sample-every")
    f["text"] = gr.Textbox(spec["text"], label="Your text", lines=4, max_lines=10, max_length=500_000,
                           elem_id="train-text")
    return f


def wire(t: TrainTab, ctx: AppContext, others: list, on_loaded: Callable[[bool], dict]) -> None:
    """``others``/``on_loaded``: what the page updates after "Use this model" loads it (as the Model tab)."""
    t.fields["task"] = t.task
    train_wire.wire(t, ctx, others, on_loaded)


def _spec_of(values: dict[str, Any]) -> RunSpec:
    """The preset's spec with the linked task, steps and vocabulary (what the empty loss axes show)."""
    base = PRESETS[DEFAULT_PRESET]
    try:
        return base.replace(task=values.get("task", base.task), steps=int(values.get("train_steps", base.steps)),
                            config=base.config.replace(vocab_size=int(values.get("vocab_size", 256))))
    except (TypeError, ValueError):
        return base


def on_link(t: TrainTab, values: dict[str, Any], present: Any = False) -> dict:
    """A link to this tab: its preset (or its task's) under the values it names, the head selector and the
    parameter count for that model."""
    name = values.get("train_preset") or (TASK_PRESET[values["task"]] if "task" in values else None)
    merged = {**(train_view.preset_values(name) if name else {}), **values}
    update: dict[Any, Any] = {t.fields[k]: merged[k] for k in train_view.FIELDS if k in merged}
    if name:
        update[t.preset] = name
    try:
        cfg = train_view.check_config({k: merged.get(k, getattr(PRESETS[DEFAULT_PRESET].config, k))
                                       for k in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers",
                                                 "drop_rate", "qkv_bias", "tie_embeddings")})
    except gr.Error:
        return update
    choices = draw.head_choices(cfg.n_layers, cfg.n_heads)
    head = values.get("train_head")
    update[t.params] = train_view.parameters_line(cfg)
    update[t.loss] = style_figure(draw.empty_loss_plot(_spec_of(merged)), bool(present))
    update[t.head_choice] = gr.update(choices=choices, value=head if head in {c for _, c in choices} else
                                      "best-induction")
    return update


def unload(ctx: AppContext) -> Callable[[gr.Request], None]:
    """The page closed: its run stops and its weights go."""
    def ui_page_closed(request: gr.Request) -> None:
        ctx.training.discard_owner(getattr(request, "session_hash", None))
    return ui_page_closed

