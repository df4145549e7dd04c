"""The page: tabs and components first, event wiring after.

Each ``ui_*`` function below is a thin adapter: raw component values in,
``handlers`` does the work, component updates out. Everything that runs the
model shares one queue (``concurrency_id="model"``, one at a time: inspection
attaches hooks to the shared model, so two passes must never overlap).
"""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from ..config import PRESETS
from ..checkpoints.hub import HUB_REPOS
from ..paths import WEIGHTS_DIR
from . import api, deeplink
from . import handlers as h
from ..examples import EXAMPLE_PROMPTS
from . import validate as v
from .figures import alternatives_figure
from .state import ModelHolder
from .theme import ABSOLUTE_LINK_JS, TOGGLE_PRESENTATION_JS, style_figure

EXAMPLES = EXAMPLE_PROMPTS
DEFAULT_PROMPT = EXAMPLES[0]
TAB_IDS = deeplink.TABS
LANG_CHOICES = [("English", "en"), ("中文", "zh")]
VIEW_CHOICES = [("single head", "head"), ("all heads of the layer", "layer"), ("mean & max over heads", "aggregate")]
SCORE_CHOICES = [(h.SCORE_LABELS[n], n) for n in ("previous_token", "first_token", "induction", "entropy",
                                                    "current_token")]
TEXT_EVERY_S = 0.1             # page updates while streaming, however fast the model is
TOKENS_EVERY_S = 0.5
ALTERNATIVES = 10
BADGE_REFRESH_S = 10.0        # how often open pages re-read which model is loaded
PARAM_FIELDS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "qkv_bias", "tie_embeddings")
SHARED_NOTE = ("The model is shared by everyone using this app: loading another one changes it for all "
               "open pages (each request keeps the model it started with).")


def build_demo(holder: ModelHolder, *, weights_dir: Path = WEIGHTS_DIR, allow_model_change: bool = True,
               queue_size: int = 64, max_upload_mb: int | None = None) -> gr.Blocks:
    """The whole app around ``holder``'s model. Launch with ``theme.launch_kwargs()`` (the same
    ``max_upload_mb``, default ``$PLAYGROUND_MAX_UPLOAD_MB`` or 1024)."""
    upload_mb = max_upload_mb or v.upload_limit_mb()
    model_queue = dict(concurrency_id="model", concurrency_limit=1)
    light = dict(concurrency_id="light", concurrency_limit=None)
    private = dict(api_visibility="private")

    def need_model():
        return holder.require()

    def cfg_or_default():
        snap = holder.current()
        return snap.model.cfg if snap else PRESETS["gpt2"]

    # ------------------------------------------------------------------------------------------ layout
    with gr.Blocks(title="GPT-2 Playground", delete_cache=(3600, 3600)) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("# GPT-2 Playground\nSee how a GPT-2-style model works inside.", elem_id="title")
            badge = gr.Markdown(elem_id="model-badge")
            with gr.Column(scale=0, min_width=260):
                present = gr.Checkbox(label="Presentation mode (large text, high contrast)", value=False,
                                      elem_id="present")
                copy_link = gr.Button("Copy link to this view", size="sm", elem_id="copy-link")
        link_box = gr.Textbox(label="Link to this view", visible=False, buttons=["copy"], elem_id="link-box",
                              interactive=False)
        current_tab = gr.Textbox(value="generate", visible="hidden", elem_id="current-tab")

        with gr.Tabs(selected="generate", elem_id="tabs") as tabs:
            # ---------------------------------------------------------------- Generate
            with gr.Tab("Generate", id="generate", elem_id="tab-generate") as tab_gen:
                with gr.Row():
                    with gr.Column(scale=2):
                        gen_prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=3,
                                                max_length=v.MAX_PROMPT_CHARS, elem_id="gen-prompt")
                        gr.Examples(EXAMPLES, inputs=[gen_prompt], label="Example prompts",
                                    cache_examples=False, api_visibility="private")
                        with gr.Row():
                            max_new = gr.Slider(1, v.MAX_NEW_TOKENS, value=50, step=1, label="Max new tokens",
                                                elem_id="max-new")
                            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature",
                                                    info="0 = always the most likely token")
                        with gr.Row():
                            top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k", info="0 = off")
                            top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p", info="1 = off")
                        seed = gr.Number(value=-1, label="Seed (-1 = random; any other number repeats the same text)",
                                         precision=0, minimum=-1, maximum=v.MAX_SEED)
                        gen_precision = gr.Radio(
                            [(label, name) for name, label in h.PRECISION_LABELS.items()], value="fp32",
                            label="Precision of the fast decoder",
                            info="fp32 gives the book model's exact numbers; bf16 and int8 weights read fewer "
                                 "bytes per token, so they run faster, and greedy text can differ slightly.",
                            elem_id="gen-precision")
                        with gr.Row():
                            gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                    with gr.Column(scale=3):
                        gen_text = gr.Textbox(label="Text (prompt + continuation)", lines=6, interactive=False,
                                              elem_id="gen-text", buttons=["copy"])
                        gen_stats = gr.Markdown(elem_id="gen-stats")
                        gen_tokens = gr.HighlightedText(
                            label="Generated tokens, coloured by the probability they were drawn with",
                            color_map=h.PROB_COLORS, show_legend=True, show_inline_category=False,
                            combine_adjacent=False, elem_id="gen-tokens")
                        gr.Markdown("Click a token to see what else it could have been.",
                                    elem_classes="token-help")
                        alt_caption = gr.Markdown(elem_id="alt-caption")
                        with gr.Row():
                            alt_table = gr.Dataframe(headers=["rank", "token", "id", "probability", ""],
                                                     interactive=False, elem_id="alt-table", max_height=360)
                            alt_fig = gr.Plot(label="Alternatives", elem_id="alt-fig")
                        with gr.Row():
                            gen_json = gr.DownloadButton("Download JSON", size="sm")
                            gen_csv = gr.DownloadButton("Download CSV", size="sm")
                gen_state = gr.State(None)

            # ---------------------------------------------------------------- Attention
            with gr.Tab("Attention", id="attention", elem_id="tab-attention") as tab_att:
                with gr.Row():
                    att_prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt (follows the Generate prompt)",
                                            lines=2, scale=4, max_length=v.MAX_PROMPT_CHARS, elem_id="att-prompt")
                    att_btn = gr.Button("Show attention", variant="primary", scale=1, elem_id="att-btn")
                with gr.Row():
                    layer = gr.Slider(0, 11, value=0, step=1, label="Layer", elem_id="att-layer")
                    head = gr.Slider(0, 11, value=0, step=1, label="Head", elem_id="att-head")
                    view = gr.Radio(VIEW_CHOICES, value="head", label="View", elem_id="att-view")
                with gr.Accordion("Long prompts", open=False):
                    with gr.Row():
                        tokens_shown = gr.Slider(2, v.ATTENTION_TOKENS, value=64, step=1,
                                                 label="Tokens shown (the last N unless a start is set)")
                        window_start = gr.Number(value=None, precision=0, label="Window starts at token (empty = end)")
                        log_scale = gr.Checkbox(label="Log colour scale", value=False)
                        hide_first = gr.Checkbox(label="Hide the first-token column (attention sink)", value=False)
                att_note = gr.Markdown(elem_id="att-note")
                att_fig = gr.Plot(label="Attention weights", elem_id="att-fig")
                gr.Markdown("### Head scores: what kind of head is each one?\n"
                            "Click a cell of the table to open that head above. "
                            + " ".join(f"**{h.SCORE_LABELS[n]}**: {doc}." for n, doc in h.SCORE_DOCS.items()))
                score = gr.Radio(SCORE_CHOICES, value="previous_token", label="Score shown in the table")
                with gr.Row():
                    grid = gr.Dataframe(interactive=False, label="layer x head (click a cell)", elem_id="score-grid",
                                        max_height=420)
                    scores_fig = gr.Plot(label="Score grid", elem_id="scores-fig")
                with gr.Row():
                    att_json = gr.DownloadButton("Download JSON (weights + scores)", size="sm")
                    att_csv = gr.DownloadButton("Download CSV (this head)", size="sm")
                    scores_csv = gr.DownloadButton("Download CSV (head scores)", size="sm")
                att_scores = gr.State(None)
                att_key = gr.State(None)

            # ---------------------------------------------------------------- Shapes
            with gr.Tab("Shapes", id="shapes", elem_id="tab-shapes") as tab_shapes:
                with gr.Row():
                    trace_prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=2, scale=4,
                                              max_length=v.MAX_PROMPT_CHARS, elem_id="trace-prompt")
                    with gr.Column(scale=1):
                        lang = gr.Radio(LANG_CHOICES, value="en", label="Explanations", elem_id="trace-lang")
                        expand = gr.Checkbox(label="Expand every block", value=False)
                        trace_btn = gr.Button("Trace the forward pass", variant="primary", elem_id="trace-btn")
                trace_note = gr.Markdown()
                trace_table = gr.Dataframe(interactive=False, wrap=True, elem_id="trace-table", max_height=600,
                                           label="Steps (click a row for its explanation)",
                                           column_widths=["4%", "5%", "17%", "17%", "12%", "9%", "36%"])
                trace_detail = gr.Markdown(elem_id="trace-detail")
                trace_fig = gr.Plot(label="Data flow", elem_id="trace-fig")
                with gr.Row():
                    trace_json = gr.DownloadButton("Download JSON", size="sm")
                    trace_csv = gr.DownloadButton("Download CSV", size="sm")
                trace_rows = gr.State([])
                trace_key = gr.State(None)

            # ---------------------------------------------------------------- Parameters
            with gr.Tab("Parameters", id="parameters", elem_id="tab-parameters") as tab_params:
                gr.Markdown("Change any value: the count, the formulas and the figures follow at once.")
                with gr.Row():
                    preset_btns = [gr.Button(name, size="sm", elem_id=f"preset-{name}") for name in PRESETS]
                base = PRESETS["gpt2"]
                with gr.Row():
                    p_vocab = gr.Slider(1, 200_000, value=base.vocab_size, step=1, label="Vocabulary size",
                                        elem_id="p-vocab")
                    p_ctx = gr.Slider(1, 8192, value=base.context_length, step=1, label="Context length",
                                      elem_id="p-ctx")
                    p_emb = gr.Slider(1, 4096, value=base.emb_dim, step=1, label="Embedding dim", elem_id="p-emb")
                with gr.Row():
                    p_heads = gr.Slider(1, 64, value=base.n_heads, step=1, label="Heads", elem_id="p-heads")
                    p_layers = gr.Slider(1, 96, value=base.n_layers, step=1, label="Layers", elem_id="p-layers")
                    with gr.Column():
                        p_bias = gr.Checkbox(value=base.qkv_bias, label="QKV bias")
                        p_tie = gr.Checkbox(value=base.tie_embeddings, label="Tied output head")
                initial = h.params_view(base, None)
                p_summary = gr.Markdown(initial.summary_markdown(), elem_id="p-summary")
                p_compare = gr.Markdown(elem_id="p-compare")
                with gr.Row():
                    p_treemap = gr.Plot(initial.figures()[0], label="Where the parameters are")
                    p_bar = gr.Plot(initial.figures()[1], label="Per part")
                p_table = gr.Dataframe(initial.rows(), headers=h.PARAM_HEADERS, interactive=False, wrap=True,
                                       label="Step by step")
                p_derivation = gr.Textbox(initial.derivation(), label="The derivation, as in the book", lines=8,
                                          interactive=False, buttons=["copy"])
                with gr.Row():
                    p_json = gr.DownloadButton("Download JSON", size="sm")
                    p_csv = gr.DownloadButton("Download CSV", size="sm")

            # ---------------------------------------------------------------- Logit lens
            with gr.Tab("Logit lens", id="logit-lens", elem_id="tab-lens") as tab_lens:
                with gr.Row():
                    lens_prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=2, scale=4,
                                             max_length=v.MAX_PROMPT_CHARS, elem_id="lens-prompt")
                    with gr.Column(scale=1):
                        lens_pos = gr.Number(value=-1, precision=0, label="Follow the prediction at position (-1 = last)")
                        lens_btn = gr.Button("Show logit lens", variant="primary", elem_id="lens-btn")
                lens_note = gr.Markdown()
                lens_fig = gr.Plot(label="Logit lens", elem_id="lens-fig")
                lens_traj = gr.Plot(label="One prediction through the layers")
                with gr.Row():
                    lens_json = gr.DownloadButton("Download JSON", size="sm")
                    lens_csv = gr.DownloadButton("Download CSV", size="sm")
                lens_key = gr.State(None)

            # ---------------------------------------------------------------- Next token
            with gr.Tab("Next token", id="next-token", elem_id="tab-next") as tab_next:
                with gr.Row():
                    next_prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=2, scale=4,
                                             max_length=v.MAX_PROMPT_CHARS, elem_id="next-prompt")
                    next_btn = gr.Button("Show next-token distribution", variant="primary", scale=1,
                                         elem_id="next-btn")
                with gr.Row():
                    n_temp = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature")
                    n_topk = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)")
                    n_topp = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p (1 = off)")
                    n_show = gr.Slider(1, 50, value=10, step=1, label="Candidates shown")
                    n_stages = gr.Checkbox(label="Show every stage", value=False)
                next_summary = gr.Markdown()
                next_fig = gr.Plot(label="Next-token distribution", elem_id="next-fig")
                next_table = gr.Dataframe(headers=h.NEXT_HEADERS, interactive=False)
                with gr.Row():
                    next_json = gr.DownloadButton("Download JSON", size="sm")
                    next_csv = gr.DownloadButton("Download CSV", size="sm")
                next_key = gr.State(None)

            # ---------------------------------------------------------------- Model
            with gr.Tab("Model", id="model", elem_id="tab-model") as tab_model:
                model_info = gr.Markdown(elem_id="model-info")
                model_status = gr.Markdown(elem_id="model-status")
                with gr.Column(visible=allow_model_change):
                    gr.Markdown(f"**{SHARED_NOTE}**")
                    with gr.Row():
                        files = gr.Dropdown(h.weight_files(weights_dir), label=f"Weights in {weights_dir.name}/",
                                            scale=3, elem_id="weights-files")
                        refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
                        load_btn = gr.Button("Load", scale=1, elem_id="load-btn")
                    upload = gr.File(label=f"Upload a .safetensors file (our own or Hugging Face GPT-2 layout; "
                                           f"at most {upload_mb:,} MB). It is kept in a temporary folder, "
                                           "never in weights/.",
                                     file_types=[".safetensors"], type="filepath", elem_id="upload", height=140)
                    with gr.Row():
                        hub_size = gr.Dropdown(list(HUB_REPOS), value="gpt2", label="OpenAI GPT-2 from the Hub",
                                               scale=3)
                        hub_btn = gr.Button("Download and load", scale=1, elem_id="hub-btn")
                if not allow_model_change:
                    gr.Markdown("Changing the model is switched off on this server.")
                model_json = gr.DownloadButton("Download model info (JSON)", size="sm")

        # -------------------------------------------------------------------------------- handlers

        def ui_badge() -> str:
            snap = holder.current()
            if snap is None:
                return f"⚠️ **No model loaded.** {holder.missing_message()}"
            cfg = snap.model.cfg
            return (f"**Model:** {snap.name} · {snap.model.num_parameters() / 1e6:,.1f}M parameters · "
                    f"{cfg.n_layers} layers × {cfg.n_heads} heads · context {cfg.context_length} · "
                    f"{snap.device}")

        def ui_badge_if_changed(shown: str):
            now = ui_badge()
            return gr.skip() if now == shown else now

        def sliders_for_model() -> tuple[dict, dict]:
            cfg = cfg_or_default()
            return (gr.update(maximum=max(cfg.n_layers - 1, 1)), gr.update(maximum=max(cfg.n_heads - 1, 1)))

        # Generate ----------------------------------------------------------------------------------
        def ui_generate(prompt, max_new_tokens, temp, k, p, s, precision, present_on):
            snap = need_model()
            req = h.check_generate(snap, prompt, max_new_tokens, temp, k, p, s, ALTERNATIVES, precision)
            last_text = last_tokens = 0.0
            gv = None
            for gv in h.stream_generation(snap, req):
                if gv.stopped or gv.done:
                    break
                now = time.monotonic()
                if now - last_text < TEXT_EVERY_S:
                    continue
                last_text = now
                tokens = gr.skip()
                if now - last_tokens >= TOKENS_EVERY_S:     # the coloured tokens are the heavy part
                    tokens, last_tokens = gv.highlighted(), now
                yield (req.prompt + gv.text, tokens, gv.stats(), gv) + (gr.skip(),) * 5
            if gv is not None:
                gv.done = True
                yield (req.prompt + gv.text, gv.highlighted(), gv.stats(), gv) + finished(gv, present_on)

        def finished(gv: h.GenerationView, present_on: bool) -> tuple:
            caption, rows, fig = alternatives(gv, None, present_on)
            return (caption, rows, fig, h.export_file("generation", "json", gv.to_json()),
                    h.export_file("generation", "csv", gv.to_csv()))

        def alternatives(gv: h.GenerationView | None, step: int | None, present_on: bool):
            if gv is None:
                return "", [], None
            caption, rows = gv.alternatives(step)
            return caption, rows, style_figure(alternatives_figure(rows), present_on)

        def ui_pick_token(gv, present_on, evt: gr.SelectData):
            if gv is None or evt.index is None:
                return gr.skip(), gr.skip(), gr.skip()
            i = evt.index if isinstance(evt.index, int) else evt.index[0]
            if i == 0:          # the prompt itself
                return gr.skip(), gr.skip(), gr.skip()
            return alternatives(gv, i - 1, present_on)

        def ui_stopped(gv, present_on):
            """Stop: the running generation is cancelled (``cancels=``) and also told to stop, so that
            whichever ends it, the page shows what was generated so far, marked as stopped."""
            if gv is None or (gv.done and not gv.stopped):
                return (gr.skip(),) * 8
            gv.stopped = gv.done = True
            return (gv.prompt + gv.text, gv.highlighted(), gv.stats()) + finished(gv, present_on)

        # Attention ---------------------------------------------------------------------------------
        att_inputs = [att_prompt, layer, head, view, score, window_start, tokens_shown, log_scale, hide_first, present]
        att_outputs = [att_fig, att_note, grid, scores_fig, att_json, att_csv, scores_csv, att_scores, att_key]

        def ui_attention(prompt, lay, hd, kind, sc, start, shown, log, hide, present_on, key=None):
            snap = need_model()
            req = h.check_attention(snap, prompt, lay, hd, kind, sc, start, shown, log, hide)
            new_key = (snap.generation, req, bool(present_on))
            if key == new_key:
                return (gr.skip(),) * len(att_outputs)
            av = h.attention_view(snap, req)
            headers, rows = av.grid()
            note = av.note or f"{len(req.prompt_ids)} tokens."
            return (style_figure(av.figure, present_on), note, gr.update(value=rows, headers=headers),
                    style_figure(av.scores_figure, present_on),
                    h.export_file("attention", "json", av.to_json()),
                    h.export_file(f"attention-L{req.layer}-H{req.head}", "csv", av.to_csv()),
                    h.export_file("head-scores", "csv", av.scores.to_csv()),
                    av.scores, new_key)

        def ui_attention_if_stale(*args):
            return ui_attention(*args[:-1], key=args[-1])

        def ui_regrid(scores, sc):
            if scores is None:
                return gr.skip()
            name = v.choice(sc, "Score", h.SCORE_CHOICES, default="previous_token")
            headers = ["layer"] + [f"head {i}" for i in range(scores.n_heads)]
            rows = [[l] + [round(float(x), 3) for x in scores.score(name)[l]] for l in range(scores.n_layers)]
            return gr.update(value=rows, headers=headers)

        def ui_pick_head(evt: gr.SelectData):
            idx = evt.index
            if not isinstance(idx, (list, tuple)) or len(idx) != 2 or idx[1] < 1:
                return gr.skip(), gr.skip(), gr.skip()
            return idx[0], idx[1] - 1, "head"

        # Shapes ------------------------------------------------------------------------------------
        trace_inputs = [trace_prompt, lang, expand, present]
        trace_outputs = [trace_table, trace_fig, trace_note, trace_detail, trace_json, trace_csv, trace_rows,
                         trace_key]

        def ui_trace(prompt, language, full, present_on, key=None):
            snap = need_model()
            new_key = (snap.generation, prompt, language, bool(full), bool(present_on))
            if key == new_key:
                return (gr.skip(),) * len(trace_outputs)
            tv = h.trace_view(snap, prompt, language, full)
            table = tv.table()
            cols = ["order", "block", "step", "input", "output", "params", "explanation"]
            rows = [[r[c] for c in cols] for r in table]
            headers = (["#", "块", "步骤", "输入形状", "输出形状", "参数", "说明"] if tv.lang == "zh" else
                       ["#", "block", "step", "input shape", "output shape", "parameters", "explanation"])
            note = tv.note or (f"{len(tv.trace.token_ids)} 个词元；第 0 块展开。" if tv.lang == "zh" else
                               f"{len(tv.trace.token_ids)} tokens; block 0 expanded, the other blocks as one row.")
            return (gr.update(value=rows, headers=headers), style_figure(tv.figure, present_on), note, "",
                    h.export_file("shape-trace", "json", tv.to_json()),
                    h.export_file("shape-trace", "csv", tv.to_csv()), table, new_key)

        def ui_trace_if_stale(*args):
            return ui_trace(*args[:-1], key=args[-1])

        def ui_trace_detail(rows, evt: gr.SelectData):
            idx = evt.index
            i = idx[0] if isinstance(idx, (list, tuple)) else idx
            if not rows or not isinstance(i, int) or not 0 <= i < len(rows):
                return gr.skip()
            r = rows[i]
            return (f"**{r['step']}** — `{r['module']}` · {r['input']} → {r['output']} · "
                    f"`{r['symbolic']}`\n\n{r['explanation']}")

        # Parameters --------------------------------------------------------------------------------
        param_inputs = [p_vocab, p_ctx, p_emb, p_heads, p_layers, p_bias, p_tie, present]
        param_outputs = [p_summary, p_compare, p_treemap, p_bar, p_table, p_derivation, p_json, p_csv]

        def params_outputs(cfg, present_on):
            pv = h.params_view(cfg, holder.current())
            tree, bar = pv.figures()
            return (pv.summary_markdown(), pv.comparison, style_figure(tree, present_on),
                    style_figure(bar, present_on), pv.rows(), pv.derivation(),
                    h.export_file("parameters", "json", h.dumps(pv.data())),
                    h.export_file("parameters", "csv", pv.breakdown.to_csv()))

        def ui_params(vocab, ctx, emb, heads, layers, bias, tie, present_on):
            try:
                cfg = h.check_params(vocab, ctx, emb, heads, layers, bias, tie)
            except v.InputError as e:   # live updates: say it in place, no pop-up on every slider step
                return (f"## ⚠️ {e.message}",) + (gr.skip(),) * (len(param_outputs) - 1)
            return params_outputs(cfg, present_on)

        def ui_preset(name: str):
            def fn(present_on):
                cfg = PRESETS[name]
                return (cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_heads, cfg.n_layers, cfg.qkv_bias,
                        cfg.tie_embeddings) + params_outputs(cfg, present_on)
            return fn

        # Logit lens / next token -------------------------------------------------------------------
        lens_inputs = [lens_prompt, lens_pos, present]
        lens_outputs = [lens_fig, lens_traj, lens_note, lens_json, lens_csv, lens_key]

        def ui_lens(prompt, pos, present_on, key=None):
            snap = need_model()
            new_key = (snap.generation, prompt, pos, bool(present_on))
            if key == new_key:
                return (gr.skip(),) * len(lens_outputs)
            lv = h.lens_view(snap, prompt, 5, pos)
            return (style_figure(lv.figure, present_on), style_figure(lv.trajectory, present_on),
                    lv.note or f"{lv.lens.n_tokens} tokens.",
                    h.export_file("logit-lens", "json", lv.lens.to_json()),
                    h.export_file("logit-lens", "csv", lv.lens.to_csv()), new_key)

        def ui_lens_if_stale(*args):
            return ui_lens(*args[:-1], key=args[-1])

        next_inputs = [next_prompt, n_temp, n_topk, n_topp, n_show, n_stages, present]
        next_outputs = [next_fig, next_summary, next_table, next_json, next_csv, next_key]

        def ui_next(prompt, temp, k, p, show, stages, present_on, key=None):
            snap = need_model()
            new_key = (snap.generation, prompt, temp, k, p, show, stages, bool(present_on))
            if key == new_key:
                return (gr.skip(),) * len(next_outputs)
            nv = h.next_view(snap, prompt, temp, k, p, show, stages)
            return (style_figure(nv.figure, present_on), nv.summary(), nv.rows(),
                    h.export_file("next-token", "json", nv.dist.to_json()),
                    h.export_file("next-token", "csv", nv.dist.to_csv()), new_key)

        def ui_next_if_stale(*args):
            return ui_next(*args[:-1], key=args[-1])

        # Model -------------------------------------------------------------------------------------
        model_outputs = [model_status, model_info, badge, layer, head, model_json]

        def after_load(ok: bool, message: str):
            info = holder.info()
            lay, hd = sliders_for_model()
            return (message, h.model_markdown(info), ui_badge(), lay if ok else gr.skip(), hd if ok else gr.skip(),
                    h.export_file("model-info", "json", h.dumps(info)))

        def ui_load_file(name):
            if not allow_model_change:
                raise gr.Error("Changing the model is switched off on this server.")
            path = h.resolve_in(weights_dir, name)
            return after_load(*h.load_weights(holder, path, path.name))

        def ui_load_upload(path):
            if not allow_model_change:
                raise gr.Error("Changing the model is switched off on this server.")
            if not path:
                return (gr.skip(),) * len(model_outputs)
            checked = h.check_upload(path, upload_mb)
            return after_load(*h.load_weights(holder, checked, checked.name))

        def ui_download(size, progress=gr.Progress(track_tqdm=True)):
            if not allow_model_change:
                raise gr.Error("Changing the model is switched off on this server.")
            return after_load(*h.download_and_load(holder, size, progress))

        def ui_model_tab():
            info = holder.info()
            return (h.model_markdown(info), gr.update(choices=h.weight_files(weights_dir)),
                    h.export_file("model-info", "json", h.dumps(info)))

        # Page load and deep links ------------------------------------------------------------------
        load_outputs = [tabs, current_tab, gen_prompt, att_prompt, trace_prompt, lens_prompt, next_prompt,
                        layer, head, view, lang, present, badge, model_info,
                        p_vocab, p_ctx, p_emb, p_heads, p_layers, p_bias, p_tie] + param_outputs

        def ui_on_load(request: gr.Request):
            holder.ensure_loaded()
            link = deeplink.parse(dict(request.query_params) if request else {})
            cfg = cfg_or_default()
            lay_max, head_max = max(cfg.n_layers - 1, 1), max(cfg.n_heads - 1, 1)
            prompt = link.prompt
            prompt_update = prompt if prompt is not None else gr.skip()
            tab = link.tab or "generate"
            lay = gr.update(maximum=lay_max, value=min(link.layer, cfg.n_layers - 1) if link.layer is not None else 0)
            hd = gr.update(maximum=head_max, value=min(link.head, cfg.n_heads - 1) if link.head is not None else 0)
            preset = h.PRESET_CHOICES.get(link.preset.lower()) if link.preset else None
            if preset:
                cfg_p = PRESETS[preset]
                params = (cfg_p.vocab_size, cfg_p.context_length, cfg_p.emb_dim, cfg_p.n_heads, cfg_p.n_layers,
                          cfg_p.qkv_bias, cfg_p.tie_embeddings) + params_outputs(cfg_p, bool(link.present))
            else:
                params = (gr.skip(),) * (7 + len(param_outputs))
            return (gr.update(selected=tab), tab, *([prompt_update] * 5), lay, hd,
                    link.view or gr.skip(), link.lang or gr.skip(),
                    link.present if link.present is not None else gr.skip(),
                    ui_badge(), h.model_markdown(holder.info()), *params)

        def ui_link(tab, gen_p, att_p, trace_p, lens_p, next_p, lay, hd, kind, language, present_on):
            prompts = {"attention": att_p, "shapes": trace_p, "logit-lens": lens_p, "next-token": next_p}
            prompt = prompts.get(tab, gen_p) if isinstance(tab, str) else gen_p
            return gr.update(value=deeplink.build(tab, prompt, lay, hd, kind, language, bool(present_on)),
                             visible=True)

        # -------------------------------------------------------------------------------- wiring

        # Generate: the text streams; Stop cancels at once and keeps what was generated so far.
        gen_io = dict(fn=ui_generate, inputs=[gen_prompt, max_new, temperature, top_k, top_p, seed, gen_precision, present],
                      outputs=[gen_text, gen_tokens, gen_stats, gen_state, alt_caption, alt_table, alt_fig,
                               gen_json, gen_csv], **model_queue, **private)
        gen_event = gen_btn.click(**gen_io)
        gen_submit = gen_prompt.submit(**gen_io)
        stop_btn.click(ui_stopped, [gen_state, present], [gen_text, gen_tokens, gen_stats, alt_caption, alt_table,
                                                          alt_fig, gen_json, gen_csv],
                       cancels=[gen_event, gen_submit], **light, **private)
        gen_tokens.select(ui_pick_token, [gen_state, present], [alt_caption, alt_table, alt_fig], **light, **private)
        # The other tabs' prompts follow the Generate prompt (in the browser, no server round trip).
        gen_prompt.change(None, [gen_prompt], [att_prompt, trace_prompt, lens_prompt, next_prompt],
                          js="(p) => [p, p, p, p]", **private)

        # Attention
        for trigger in (att_btn.click, att_prompt.submit, layer.release, head.release, view.input,
                        tokens_shown.release, window_start.submit, log_scale.input, hide_first.input):
            trigger(ui_attention, att_inputs, att_outputs, trigger_mode="always_last", **model_queue, **private)
        score.input(ui_regrid, [att_scores, score], [grid], **light, **private)
        grid.select(ui_pick_head, None, [layer, head, view], **light, **private).then(
            ui_attention, att_inputs, att_outputs, **model_queue, **private)

        # Shapes
        for trigger in (trace_btn.click, trace_prompt.submit, lang.input, expand.input):
            trigger(ui_trace, trace_inputs, trace_outputs, trigger_mode="always_last", **model_queue, **private)
        trace_table.select(ui_trace_detail, [trace_rows], [trace_detail], **light, **private)

        # Parameters: live, no button. Pure arithmetic: not in the model queue.
        for comp in (p_vocab, p_ctx, p_emb, p_heads, p_layers):
            comp.input(ui_params, param_inputs, param_outputs, trigger_mode="always_last",
                       show_progress="hidden", **light, **private)
        for comp in (p_bias, p_tie):
            comp.input(ui_params, param_inputs, param_outputs, show_progress="hidden", **light, **private)
        for name, btn in zip(PRESETS, preset_btns):
            btn.click(ui_preset(name), [present], [p_vocab, p_ctx, p_emb, p_heads, p_layers, p_bias, p_tie]
                      + param_outputs, **light, **private)

        # Logit lens, next token
        for trigger in (lens_btn.click, lens_prompt.submit, lens_pos.submit):
            trigger(ui_lens, lens_inputs, lens_outputs, trigger_mode="always_last", **model_queue, **private)
        for trigger in (next_btn.click, next_prompt.submit, n_temp.release, n_topk.release, n_topp.release,
                        n_show.release, n_stages.input):
            trigger(ui_next, next_inputs, next_outputs, trigger_mode="always_last", **model_queue, **private)

        # Model
        refresh.click(lambda: gr.update(choices=h.weight_files(weights_dir)), None, [files], **light, **private)
        load_btn.click(ui_load_file, [files], model_outputs, concurrency_id="load", concurrency_limit=1, **private)
        upload.upload(ui_load_upload, [upload], model_outputs, concurrency_id="load", concurrency_limit=1, **private)
        hub_btn.click(ui_download, [hub_size], model_outputs, concurrency_id="load", concurrency_limit=1, **private)

        # Opening a tab computes its view if its inputs changed since it was last drawn.
        for tab_id, tab in zip(TAB_IDS, (tab_gen, tab_att, tab_shapes, tab_params, tab_lens, tab_next, tab_model)):
            tab.select(None, None, [current_tab], js=f"() => {tab_id!r}", **private)
        tab_att.select(ui_attention_if_stale, att_inputs + [att_key], att_outputs, **model_queue, **private)
        tab_shapes.select(ui_trace_if_stale, trace_inputs + [trace_key], trace_outputs, **model_queue, **private)
        tab_lens.select(ui_lens_if_stale, lens_inputs + [lens_key], lens_outputs, **model_queue, **private)
        tab_next.select(ui_next_if_stale, next_inputs + [next_key], next_outputs, **model_queue, **private)
        tab_model.select(ui_model_tab, None, [model_info, files, model_json], **light, **private)
        tab_params.select(ui_params, param_inputs, param_outputs, show_progress="hidden", **light, **private)

        # Presentation mode is a class on <body>; figures get larger fonts when next drawn.
        present.change(None, [present], None, js=TOGGLE_PRESENTATION_JS, **private)
        copy_link.click(ui_link, [current_tab, gen_prompt, att_prompt, trace_prompt, lens_prompt, next_prompt,
                                  layer, head, view, lang, present], [link_box], **light, **private).then(
            None, [link_box], [link_box], js=ABSOLUTE_LINK_JS, **private)

        # Page load: apply the deep link, then draw the linked tab's view (the others wait until opened).
        loaded = demo.load(ui_on_load, None, load_outputs, **light, **private)
        # Someone else may swap the shared model: every open page re-reads the header badge.
        badge_timer = gr.Timer(BADGE_REFRESH_S)
        badge_timer.tick(ui_badge_if_changed, [badge], [badge], show_progress="hidden", **light, **private)

        # One event in the model queue per page load; it returns at once unless the link named a tab
        # whose view needs the model.
        linked = [(att_outputs, att_inputs + [att_key], ui_attention_if_stale, "attention"),
                  (trace_outputs, trace_inputs + [trace_key], ui_trace_if_stale, "shapes"),
                  (lens_outputs, lens_inputs + [lens_key], ui_lens_if_stale, "logit-lens"),
                  (next_outputs, next_inputs + [next_key], ui_next_if_stale, "next-token")]

        def ui_linked_view(tab, *values):
            out, i = [], 0
            for outputs, inputs, fn, tab_id in linked:
                args = values[i:i + len(inputs)]
                i += len(inputs)
                out += list(fn(*args)) if tab == tab_id else [gr.skip()] * len(outputs)
            return tuple(out)

        linked_io = ([current_tab] + [c for _, inputs, _, _ in linked for c in inputs],
                     [c for outputs, _, _, _ in linked for c in outputs])
        loaded.then(ui_linked_view, *linked_io, **model_queue, **private)
        # Presentation mode redraws the open tab's figures with larger fonts (the others when opened).
        present.input(ui_linked_view, *linked_io, **model_queue, **private)

        api.register(holder, model_queue)

    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    return demo
