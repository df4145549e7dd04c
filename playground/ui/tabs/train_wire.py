"""The Train tab's events: presets fill the settings, Start/Pause/Resume/Stop/Reset drive the page's run in
the server's training line, a timer redraws the live view while it trains, "Use this model" loads it for
every tab. None of them runs the shared model: they take the light queue."""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from ...training.live import LiveRun
from ...training.live_spec import DEFAULT_PRESET, PRESETS
from ..common import LIGHT, PRIVATE, AppContext, export_file, guarded
from ..i18n import current_lang
from ..theme import style_figure
from ..validate import InputError
from ..views import train as train_view
from ..views import train_draw as draw

TrainTab = Any           # tabs.train.TrainTab (not imported: that module imports this one)

TAB_ID = "train"
TASK_PRESET = {"copy": "induction-tiny", "text": "text-tiny"}
CONFIG_FIELDS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "qkv_bias", "tie_embeddings")


def render(t: TrainTab, ctx: AppContext, run: LiveRun | None, choice: Any, present_on: Any, drawn: Any) -> dict:
    """Every live output for ``run`` as it is now; only the timer and the status when nothing changed since
    ``drawn`` (the key of what the page shows). Downloads are written when the run pauses or ends."""
    line = ctx.training
    if run is None:
        empty = draw.empty_loss_plot(PRESETS[DEFAULT_PRESET])
        return {t.status: draw.status_markdown(None, line), t.timer: gr.update(active=False), t.drawn: None,
                t.loss: style_figure(empty, present_on)}
    key = (run.id, run.version, choice, bool(present_on), current_lang())
    timer = gr.update(active=not run.ended)
    if isinstance(drawn, (list, tuple)) and tuple(drawn[:5]) == key:
        return {t.timer: timer} if run.status != "waiting" else {t.status: draw.status_markdown(run, line),
                                                                  t.timer: timer}
    layer, head = draw.chosen_head(run, choice)
    out = {t.status: draw.status_markdown(run, line), t.loss: style_figure(draw.loss_plot(run), present_on),
           t.pattern: style_figure(draw.pattern_plot(run, layer, head), present_on),
           t.heads: style_figure(draw.heads_plot(run, (layer, head)), present_on),
           t.samples: draw.samples_markdown(run), t.pause: gr.update(visible=run.status == "running"),
           t.resume: gr.update(visible=run.status == "paused"), t.timer: timer}
    last_status = drawn[2] if isinstance(drawn, (list, tuple)) and len(drawn) > 5 else None
    if run.status in ("paused", "stopped", "finished", "failed") and run.step and last_status != run.status:
        out.update({t.json: export_file("train-run", "json", train_view.run_json(run)),
                    t.csv: export_file("train-curves", "csv", train_view.run_csv(run)),
                    t.weights: train_view.save_weights(run)})
    out[t.drawn] = (*key, run.status)
    return out


def wire(t: TrainTab, ctx: AppContext, others: list, on_loaded: Callable[[bool], dict]) -> None:
    line = ctx.training
    fields = [t.fields[f] for f in train_view.FIELDS]
    live = t.drawn_outputs()
    events = dict(show_progress="hidden", **LIGHT, **PRIVATE)

    def filled(name: str) -> dict:
        values = train_view.preset_values(name)
        cfg = PRESETS[name].config
        return {**{t.fields[f]: values[f] for f in train_view.FIELDS}, t.preset: name,
                t.params: train_view.parameters_line(cfg),
                t.head_choice: gr.update(choices=draw.head_choices(cfg.n_layers, cfg.n_heads), value="best-induction")}
    preset_outputs = fields + [t.preset, t.params, t.head_choice]

    @guarded
    def ui_train_preset(name):
        return filled(name)

    @guarded
    def ui_train_task(task):
        return filled(TASK_PRESET.get(task, "induction-tiny"))

    t.preset.input(ui_train_preset, [t.preset], preset_outputs, **events)
    t.task.input(ui_train_task, [t.task], preset_outputs, **events)

    @guarded
    def ui_train_params(*values):
        got = dict(zip(CONFIG_FIELDS, values))
        try:
            cfg = train_view.check_config({**got, "drop_rate": 0.0})
        except InputError as e:                    # typed live: said in place, no pop-up
            return {t.params: f"⚠️ {e.message}"}
        return {t.params: train_view.parameters_line(cfg),
                t.head_choice: gr.update(choices=draw.head_choices(cfg.n_layers, cfg.n_heads))}
    for name in CONFIG_FIELDS:
        t.fields[name].input(ui_train_params, [t.fields[f] for f in CONFIG_FIELDS], [t.params, t.head_choice],
                             trigger_mode="always_last", **events)

    @guarded
    def ui_train_start(*args, request: gr.Request = None):
        *values, choice, present_on = args
        spec = train_view.check_spec(line, *values)
        run = train_view.start(line, spec, owner=getattr(request, "session_hash", None))
        cfg = spec.config
        return {t.run_id: run.id, t.use_note: "",
                t.head_choice: gr.update(choices=draw.head_choices(cfg.n_layers, cfg.n_heads)),
                **render(t, ctx, run, choice, present_on, None)}
    t.start.click(ui_train_start, fields + [t.head_choice, ctx.present], [t.run_id, t.use_note, t.head_choice] + live,
                  **LIGHT, **PRIVATE)

    @guarded
    def ui_train_tick(run_id, drawn, choice, present_on, open_tab=None):
        """The timer's tick (and a change of head or presentation): the live view, redrawn when something
        changed. On another tab the run is only kept alive (reading it is the sign of life), not drawn."""
        run = train_view.find(line, run_id, required=False)
        if run is not None and open_tab not in (None, "", TAB_ID):
            return {t.timer: gr.update(active=not run.ended)}
        return render(t, ctx, run, choice, present_on, drawn)

    @guarded
    def ui_train_opened(run_id, drawn, choice, present_on):
        return render(t, ctx, train_view.find(line, run_id, required=False), choice, present_on, drawn)
    view_inputs = [t.run_id, t.drawn, t.head_choice, ctx.present]
    tick_inputs = view_inputs + ([ctx.current_tab] if ctx.current_tab is not None else [])
    t.timer.tick(ui_train_tick, tick_inputs, live, **events)
    t.head_choice.input(ui_train_opened, view_inputs, live, **events)
    ctx.present.input(ui_train_tick, tick_inputs, live, **events)
    t.tab.select(ui_train_opened, view_inputs, live, **events)

    def control(action: str):
        @guarded
        def ui_train_control(run_id, drawn, choice, present_on):
            run = train_view.control(line, run_id, action) if run_id else None
            if run is None:
                raise InputError("There is no run to control yet: press Start.")
            return render(t, ctx, run, choice, present_on, drawn)
        ui_train_control.__name__ = f"ui_train_{action}"
        return ui_train_control
    for button, action in ((t.pause, "pause"), (t.resume, "resume"), (t.stop, "stop")):
        button.click(control(action), view_inputs, live, **LIGHT, **PRIVATE)

    @guarded
    def ui_train_reset(run_id, present_on):
        line.discard(run_id)
        return {t.run_id: None, t.drawn: None, t.loss: style_figure(draw.empty_loss_plot(PRESETS[DEFAULT_PRESET]),
                                                                   present_on),
                t.pattern: None, t.heads: None, t.samples: "",
                t.use_note: "", t.json: None, t.csv: None, t.weights: None, t.timer: gr.update(active=False),
                t.pause: gr.update(visible=False), t.resume: gr.update(visible=False),
                t.status: draw.status_markdown(None, line)}
    t.reset.click(ui_train_reset, [t.run_id, ctx.present], [t.run_id, t.use_note] + live, **LIGHT, **PRIVATE)

    @guarded
    def ui_train_use(run_id):
        run = train_view.find(line, run_id, required=False)
        if run is None:
            raise InputError("There is no trained model yet: press Start, and use it once it has learned something.")
        ok, message = train_view.use_model(ctx.holder, run, ctx.allow_model_change)
        return {t.use_note: message, **on_loaded(ok)}
    t.use.click(ui_train_use, [t.run_id], [t.use_note, *others], concurrency_id="load", concurrency_limit=1,
                **PRIVATE)
