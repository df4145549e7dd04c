"""The named API endpoints: plain JSON in, plain JSON out, the same checks as the page.

Registered with ``gr.api`` inside the Blocks, so their signatures (from the
type hints below) are what ``gradio_client`` shows in ``view_api()``. Values
arrive exactly as the caller sent them (strings for numbers, None, NaN, ...):
every one goes through :mod:`.validate` before the model is touched.
"""
from __future__ import annotations

from typing import Any, Iterator

import gradio as gr

from ..batching import Batcher
from ..inspection.neuron_index import IndexJob
from ..training.registry import TrainingLine
from . import validate as v
from .common import generate_queue, guarded
from .state import ModelHolder
from .views import attention as att_view
from .views import circuits as circuit_view
from .views import learned as learned_view
from .views import experiments as ex_view
from .views import generate as gen_view
from .views import logit_lens as lens_view
from .views import next_token as next_view
from .views import parameters as param_view
from .views import shapes as shape_view
from .views import train as train_view
from .views import walkthrough as walk_view

ENDPOINTS = ("generate", "attention", "trace", "params", "logit_lens", "next_token", "surprisal", "ablate",
             "attribution", "patch", "circuit", "saliency", "neuron", "embeddings", "qk", "walkthrough", "model_info",
             "train_start", "train_curves", "train_control")


def register(holder: ModelHolder, model_queue: dict[str, Any], batcher: Batcher,
             training: TrainingLine | None = None) -> None:
    """Add the endpoints to the Blocks being built. ``model_queue`` is the shared
    ``concurrency_id``/``concurrency_limit`` of everything that runs the model with hooks;
    ``/generate`` decodes in ``batcher``'s shared batch, in the queue of the page's Generate;
    ``/train_*`` drive runs in ``training``, the Train tab's line."""

    def generate(prompt: str, max_new_tokens: int = 50, temperature: float = 1.0, top_k: int = 50,
                 top_p: float = 1.0, seed: int | None = None, alternatives: int = 5,
                 precision: str = "fp32") -> Iterator[dict]:
        """Stream a continuation of `prompt`, one message per token: {"done": false, "step", "token",
        "token_id", "prob", "alternatives": [[id, token, prob], ...], "text" (all generated text so far),
        "cropped"}. The last message has "done": true and the whole record (settings, steps,
        tokens_per_second, crop_started_at). temperature 0 = greedy; top_k 0 = off; seed null = random.
        precision: "fp32" (exact, the default), "bf16" (faster) or "int8" (int8 weights, fastest)."""
        snap = holder.require()
        req = gen_view.check_generate(snap, prompt, max_new_tokens, temperature, top_k, top_p, seed, alternatives,
                               precision)
        for view in gen_view.stream_generation(snap, req, batcher):
            if view.done:
                yield {"done": True, **view.record()}
            else:
                s = view.steps[-1]
                yield {"done": False, "step": s["step"], "token": s["token"], "token_id": s["id"],
                       "prob": s["prob"], "alternatives": s["top"], "text": view.text, "cropped": s["cropped"]}

    def attention(prompt: str, layer: int = 0, head: int = 0, view: str = "single head") -> dict:
        """Attention weights of one head ("single head": T x T), of every head of a layer ("all heads":
        H x T x T) or their mean and max ("mean & max"), with the token labels, and the layer x head
        score grids (previous_token, first_token, current_token, induction, entropy, and prompt_induction:
        induction measured on the prompt's own repeated tokens, null where none repeats). Prompts are capped
        at 256 tokens (the last ones; "note" says so)."""
        snap = holder.require()
        req = att_view.check_attention(snap, prompt, layer, head, view)
        return _json(att_view.attention_view(snap, req, figures=False).to_json())

    def trace(prompt: str, language: str = "en", expand: bool = False) -> dict:
        """Every step of a real forward pass on `prompt`: input and output shapes, parameters and an
        explanation ("en" or "zh"). Blocks 1.. are one row unless `expand`."""
        snap = holder.require()
        tv = shape_view.trace_view(snap, prompt, language, expand, figures=False)
        return {"rows": tv.table(), "total_params": tv.trace.total_params, "n_layers": tv.trace.n_layers,
                "token_ids": list(tv.trace.token_ids), "tokens": list(tv.trace.labels), "note": tv.note}

    def params(vocab_size: int = 50257, context_length: int = 1024, emb_dim: int = 768, n_heads: int = 12,
               n_layers: int = 12, qkv_bias: bool = False, tie_embeddings: bool = False,
               preset: str = "") -> dict:
        """Parameter count of a config, line by line with formulas, totals tied/untied and memory.
        A non-empty `preset` (book-124M, gpt2, gpt2-medium, gpt2-large, gpt2-xl) replaces the other
        values. No model needed; "comparison" relates it to the loaded model."""
        cfg = param_view.preset_config(preset) if preset else param_view.check_params(
            vocab_size, context_length, emb_dim, n_heads, n_layers, qkv_bias, tie_embeddings)
        return param_view.params_view(cfg, holder.current()).data()

    def logit_lens(prompt: str, top_k: int = 5) -> dict:
        """The model's top-k prediction after the embeddings and after every block, at every position
        (the last 64 tokens of a long prompt)."""
        snap = holder.require()
        return lens_view.lens_view(snap, prompt, top_k, figures=False).data()

    def next_token(prompt: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   show: int = 10) -> dict:
        """The `show` most likely next tokens and their probability before and after temperature,
        top-k and top-p (what sampling draws from)."""
        snap = holder.require()
        return next_view.next_view(snap, prompt, temperature, top_k, top_p, show, figures=False).data()

    def surprisal(prompt: str) -> dict:
        """Surprisal of every token of `prompt` under the loaded model: {tokens, token_ids, surprisal_bits
        (surprisal_bits[i] = -log2 p(token i | the tokens before it), null for the first token), top (each
        position's top-5 predictions [{token, token_id, prob}]), rank (the true token's rank, 1 = top),
        mean_bits, perplexity, note}."""
        return ex_view.surprisal_view(holder.require(), prompt).data()

    def ablate(prompt: str, heads: str = "", mlps: str = "") -> dict:
        """The top-10 next tokens before and after ablating `heads` ("L4H1, L3H2": that head's context
        vector set to zero at every position) and `mlps` ("2, 5": that FeedForward's output set to zero):
        {before, after: [{token, token_id, prob}], kl_bits (KL(before || after)), heads, mlps,
        greedy_before, greedy_after (20 greedy tokens each), note}."""
        return ex_view.ablation_view(holder.require(), prompt, heads, mlps).data()

    def attribution(prompt: str, target: str, distractor: str = "") -> dict:
        """Direct logit attribution at the last position: {components: [{name, value}] (embed, L{l}H{h},
        "L{l} out_proj bias", "L{l} MLP", "final_norm shift"), total, actual = logit(target) -
        logit(distractor) (or logit(target)), target, distractor, metric, head_grid, note}. Target and
        distractor are one token each."""
        return ex_view.attribution_view(holder.require(), prompt, target, distractor).data()

    def patch(clean: str, corrupted: str, target: str, distractor: str) -> dict:
        """Activation patching of the residual stream: {tokens, clean_tokens, layers, restored, ld_clean,
        ld_corrupted, ...}; restored[l][t] = (LD_patched - LD_corrupted) / (LD_clean - LD_corrupted) with
        LD = logit(target) - logit(distractor) at the last position, patching resid_pre of block l at
        position t from the clean run. The prompts must have the same number of tokens (64 at most)."""
        return ex_view.patching_view(holder.require(), clean, corrupted, target, distractor).data()

    def circuit(clean: str, corrupted: str, target: str, distractor: str, edges: int = 30,
                check_heads: bool = False) -> dict:
        """The circuit that carries M = logit(target) - logit(distractor) at the last position from the
        corrupted prompt to the clean one (same number of tokens, 256 at most): {edges: [{rank, edge, upstream,
        downstream, score, in_circuit}] (every edge of the graph input -> heads/MLPs -> logits, largest |score|
        first; score = sum over positions and dims of (z_u(corrupted) - z_u(clean)) * dM/d(v's own input), taken
        on the clean run), m_clean, m_corrupted, m_circuit, recovered ((M_circuit - M_corrupted) / (M_clean -
        M_corrupted), exact: one forward where every edge outside the circuit carries its corrupted value; null
        when M_clean = M_corrupted), curve: [{n_edges, n_kept, metric, recovered}], heads (with check_heads:
        [{name, layer, head, attribution, patched}]), note}. The circuit: the top `edges` edges by |score|,
        pruned to paths from input to logits."""
        return circuit_view.circuit_view(holder.require(), clean, corrupted, target, distractor, edges,
                                         check_heads).data()

    def walkthrough(prompt: str, layer: int = 0, head: int = 0) -> dict:
        """One forward pass step by step: {tokens, token_ids, note, steps: [{id, title, code, shape, values,
        explanation: {en, zh}, ...}]} in the order token_ids, tok_emb, pos_emb, input_embeddings, norm1,
        queries, keys, values, attn_scores, masked_scores, attn_weights, context_vec, out_proj, shortcut_1,
        norm2, ff_expand, gelu, ff_contract, shortcut_2, other_blocks, final_norm, logits, probas,
        next_token; block `layer`, head `head`; the first 8 tokens, 16 features; masked scores are null."""
        return walk_view.walkthrough_view(holder.require(), prompt, layer, head).data()

    def model_info() -> dict:
        """The loaded model: name, file, layout, config, parameters, dtype, device, size, sha256."""
        return holder.info()

    gr.api(guarded(generate), api_name="generate", **generate_queue(batcher))
    for fn in (attention, trace, logit_lens, next_token, surprisal, ablate, attribution, patch, circuit,
               *learned_endpoints(holder), walkthrough):
        gr.api(guarded(fn), api_name=fn.__name__, **model_queue)
    gr.api(guarded(params), api_name="params", concurrency_id="light", concurrency_limit=None)
    for fn in train_endpoints(training or TrainingLine()):
        gr.api(guarded(fn), api_name=fn.__name__, concurrency_id="light", concurrency_limit=None)
    gr.api(guarded(model_info), api_name="model_info", concurrency_id="light", concurrency_limit=None)


def learned_endpoints(holder: ModelHolder) -> tuple:
    """What the model has learned: /saliency, /neuron, /embeddings, /qk (in the model queue)."""

    def saliency(prompt: str, target: str = "", method: str = "integrated_gradients", steps: int = 32) -> dict:
        """Which input tokens drove the logit f of `target` (one token; empty = the top prediction) at the last
        position: {method, scores (one per token: gradient x input s_i = sum_d x0[i,d] df/dx0[i,d]; integrated
        gradients s_i = sum_d x0[i,d] (1/n) sum_k df/dx0[i,d] at a_k x0, a_k = (k - 0.5)/n, from x0 = 0),
        target, f_input, f_baseline, completeness_gap (IG: sum_i s_i - (f(x0) - f(0))), labels, token_ids}."""
        return _json(learned_view.saliency(holder.require(), prompt, target, method, steps).to_json())

    def neuron(prompt: str, layer: int, neuron: int) -> dict:
        """One MLP neuron (the GELU output of trf_blocks[layer].ff, column `neuron`): {activations (on each
        token of `prompt`), labels, direct_effect: {top, bottom: [{token_id, token, value}]} (out_head.weight @
        (final_norm.scale * (w - mean w)), w = ff.layers[2].weight[:, neuron]), contexts (its top 20 contexts
        over the reference text, 12 tokens before and 4 after the peak; null with "index_progress" while the
        index is still being built in the background)}."""
        snap = holder.require()
        acts = learned_view.activations(snap, prompt)
        lay, i = learned_view.layer_neuron(snap, layer, neuron)
        found = learned_view.contexts(snap, lay, i)
        ready = not isinstance(found, IndexJob)
        return {**_json(acts.to_json(lay, i)), "direct_effect": _json(learned_view.direct_effect(snap, lay, i).to_json()),
                "contexts": _json(found.to_json()) if ready else None,
                "index_progress": 1.0 if ready else round(found.progress, 3)}

    def embeddings(view: str = "tokens", prompt: str = "", lists: list[str] | None = None, neighbours: str = "",
                   words: str = "", positions: int | None = None) -> dict:
        """PCA (exact, SVD of the centred points; explained variance per component) of "tokens" (the
        prompt's tokens, the word `lists` (numbers, months, days, colours, countries), your comma-separated
        `words` and the nearest neighbours by cosine of `neighbours`), "positions" (pos_emb rows) or
        "residual" (each token of `prompt` after the embeddings and after every block, one fit): {kind,
        explained, points: [{id, label, group, pc1, pc2, pc3}], neighbours: [{token_id, token, cosine}]}."""
        return _json(learned_view.embeddings(holder.require(), view, prompt, lists, neighbours, positions,
                                             words).to_json())

    def qk(prompt: str, layer: int = 0, head: int = 0, query: int = -1) -> dict:
        """Why one attention row is what it is (head `head` of block `layer`, query position `query`, -1 =
        the last): {q (head_dim), keys (T x head_dim), products (q * k_j per dim), scores (sum / sqrt(head_dim)),
        mask, weights (softmax: equals the captured pattern's row)}."""
        return _json(learned_view.qk(holder.require(), prompt, layer, head, query).to_json())
    return saliency, neuron, embeddings, qk


def train_endpoints(line: TrainingLine) -> tuple:
    """Training runs (the Train tab's engine and line; they never touch the loaded model)."""

    def train_start(train_preset: str = "induction-tiny", task: str | None = None, vocab_size: int | None = None,
                    context_length: int | None = None, emb_dim: int | None = None, n_heads: int | None = None,
                    n_layers: int | None = None, drop_rate: float | None = None, qkv_bias: bool | None = None,
                    tie_embeddings: bool | None = None, seed: int | None = None, lr: float | None = None,
                    train_steps: int | None = None, batch_size: int | None = None, min_len: int | None = None,
                    max_len: int | None = None, text: str | None = None, text_tokens: int | None = None,
                    sample_every: int | None = None) -> dict:
        """Start training the book's GPTModel: the preset `train_preset` (induction-tiny, induction-one-layer,
        text-tiny, bundled-shape) with any field given here in its place. task "copy": random sequences of
        min_len..max_len tokens repeated (the induction task); "text": GPT-2 tokens of `text`, or of the bundled
        corpus sample when `text` is null. One training runs per server; others wait in line ("position").
        Returns {run_id, status, position}. Read it with /train_curves at least every 2 minutes, or it stops."""
        given = dict(task=task, vocab_size=vocab_size, context_length=context_length, emb_dim=emb_dim,
                     n_heads=n_heads, n_layers=n_layers, drop_rate=drop_rate, qkv_bias=qkv_bias,
                     tie_embeddings=tie_embeddings, seed=seed, lr=lr, train_steps=train_steps, batch_size=batch_size,
                     min_len=min_len, max_len=max_len, text_tokens=text_tokens, sample_every=sample_every)
        values = {**train_view.preset_values(train_preset), **{k: x for k, x in given.items() if x is not None}}
        if text is not None:
            values.update(text=text, text_source="yours")
        spec = train_view.check_spec(line, *(values[f] for f in train_view.FIELDS))
        run = train_view.start(line, spec)
        return {"run_id": run.id, "status": run.status, "position": line.position(run)}

    def train_curves(run_id: str, since: int = 0) -> dict:
        """A run's state and record: {run_id, status (waiting, running, paused, stopped, finished, failed),
        message, position, step, total_steps, seconds, curves: {step, seconds, loss, first_copy, repeats} (per
        step after step `since`; first_copy/repeats: copying only, the loss on the first copy and on the copies
        after it), probe_steps, previous_token and induction ([probe][layer][head], the Attention tab's scores on
        a fixed probe), phase_change ({step, seconds}: the running mean of 20 losses on the copies fell below
        ln(V)/2 after sitting near ln V), samples, settings, parameters}."""
        run = train_view.find(line, run_id)
        since = v.whole(since, "since", 0, 10**9, default=0)
        return {**train_view.curves_data(run, since), "position": line.position(run)}

    def train_control(run_id: str, action: str) -> dict:
        """`action`: "pause", "resume" or "stop" the run. Returns {run_id, status, step}."""
        run = train_view.control(line, run_id, action)
        return {"run_id": run.id, "status": run.status, "step": run.step}
    return train_start, train_curves, train_control


def _json(text: str) -> dict:
    import json
    return json.loads(text)
