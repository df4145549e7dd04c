"""What the model has learned, for the Neurons, Embeddings, Saliency and "why this weight" views and their
endpoints (``/neuron``, ``/embeddings``, ``/saliency``, ``/qk``): every value checked, the library's own
ValueErrors about a request turned into the user's message, results cached per model and request."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch

from ...inspection.embeddings import (PointsPCA, ResidualPCA, default_word_lists, positional_pca, residual_pca,
                                      token_embedding_pca)
from ...inspection.neuron_index import IndexJob, NeuronContexts, neuron_index
from ...inspection.neurons import (DirectEffect, NeuronActivations, TopNeurons, n_neurons, neuron_activations,
                                   neuron_direct_effect, top_neurons_at)
from ...inspection.qk import QKBreakdown, qk_breakdown
from ...inspection.reference import reference_ids
from ...inspection.saliency import Saliency, gradient_x_input, integrated_gradients
from ...packed_linear import layout_unavailable
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import LRU
from ..state import Snapshot
from ..validate import InputError
from .experiments import noted, prompt_ids

T = TypeVar("T")
NEURON_TOKENS = 256            # activations and q.k on the last 256 tokens at most
SALIENCY_TOKENS = 64           # saliency on the last 64: integrated gradients costs 32 forward and backward passes
IG_STEPS_MAX = 256
BIG_MODEL = 50_000_000         # parameters from which the neuron index runs in bf16 (where the CPU has it)
EMBEDDING_VIEWS = ("tokens", "positions", "residual")
RESIDUAL_EXAMPLE = "The cat sat on the mat because it was warm"      # the residual view without a text of yours
WORD_LISTS = tuple(default_word_lists())
METHODS = {"integrated_gradients": "integrated_gradients", "ig": "integrated_gradients",
           "gradient_x_input": "gradient_x_input", "gradient x input": "gradient_x_input", "gxi": "gradient_x_input"}
_results = LRU(16)
_references = LRU(2)


def ask(fn: Callable[[], T]) -> T:
    """``fn()``; a ValueError the library raises about the request becomes the user's sentence."""
    try:
        return fn()
    except ValueError as e:
        text = str(e).strip()
        raise InputError((text[:1].upper() + text[1:]).rstrip(".") + ".") from None


def _ids(snap: Snapshot, prompt: Any, label: str = "Prompt") -> tuple[list[int], str]:
    return prompt_ids(snap, prompt, label, NEURON_TOKENS, "view")


def layer_neuron(snap: Snapshot, layer: Any, neuron: Any) -> tuple[int, int]:
    cfg = snap.model.cfg
    lay = v.whole(layer, "Layer", 0, cfg.n_layers - 1, default=0)
    return lay, v.whole(neuron, "Neuron", 0, n_neurons(snap.model) - 1, default=0)


def one_token_text(value: Any, label: str, required: bool = True) -> str | None:
    """The text of one token as typed (checked for one token later, with the tokenizer), or a clear message."""
    if value is None or (isinstance(value, str) and value == ""):
        if required:
            raise InputError(f"{label} is empty: type one token (a leading space matters).")
        return None
    if not isinstance(value, str):
        raise InputError(f"{label} must be text.")
    if len(value) > 100:
        raise InputError(f"{label} is too long: it must be one token.")
    return value


# --------------------------------------------------------------------------- neurons

def activations(snap: Snapshot, prompt: Any) -> NeuronActivations:
    ids, note = _ids(snap, prompt)
    got = _results.get(("acts", snap.uid, tuple(ids)),
                       lambda: neuron_activations(snap.model, ids, tokenizer=get_tokenizer()))
    return noted(got, note)


def direct_effect(snap: Snapshot, layer: Any, neuron: Any) -> DirectEffect:
    lay, i = layer_neuron(snap, layer, neuron)
    return _results.get(("effect", snap.uid, lay, i),
                        lambda: neuron_direct_effect(snap.model, lay, i, tokenizer=get_tokenizer()))


def top_neurons(snap: Snapshot, prompt: Any, position: Any) -> TopNeurons:
    ids, _ = _ids(snap, prompt)
    pos = v.whole(position, "Position", -len(ids), len(ids) - 1, default=-1)
    return _results.get(("top", snap.uid, tuple(ids), pos),
                        lambda: ask(lambda: top_neurons_at(snap.model, ids, pos, tokenizer=get_tokenizer())))


def index_job(snap: Snapshot) -> IndexJob:
    """The loaded model's neuron index over its reference text: ready, or building in the background."""
    name, ref = _references.get(snap.sha256 or snap.uid, lambda: reference_ids(snap.sha256))
    big = snap.model.num_parameters() >= BIG_MODEL and layout_unavailable("onednn", torch.bfloat16) is None
    return neuron_index(snap.model, ref, sha256=snap.sha256 or None, reference=name,
                        precision="bf16" if big else "fp32")


def contexts(snap: Snapshot, layer: Any, neuron: Any) -> NeuronContexts | IndexJob:
    """The neuron's top contexts, or the job still building them (its ``progress`` says how far)."""
    lay, i = layer_neuron(snap, layer, neuron)
    job = index_job(snap)
    if job.error:
        raise RuntimeError(f"the neuron index could not be built: {job.error}")
    if not job.ready:
        return job
    return job.result().contexts(lay, i, label_fn=get_tokenizer().token_text)


# --------------------------------------------------------------------------- embeddings

def embeddings(snap: Snapshot, view: Any = "tokens", prompt: Any = "", lists: Any = None,
               neighbours_of: Any = "", positions: Any = None, words: Any = "") -> PointsPCA | ResidualPCA:
    """``view`` "tokens": the prompt's tokens, the chosen word ``lists``, your own ``words`` (comma-separated,
    each one token with its leading space) and the nearest neighbours of ``neighbours_of``; "positions": the
    first ``positions`` positional embeddings; "residual": the prompt's residual stream after every block."""
    kind = v.choice(view, "View", {n: n for n in EMBEDDING_VIEWS} | {"position": "positions", "residual stream": "residual"},
                    default="tokens")
    if kind == "positions":
        n = v.whole(positions, "Positions", 2, snap.model.cfg.context_length, default=snap.model.cfg.context_length)
        return _results.get(("pos", snap.uid, n), lambda: positional_pca(snap.model, n))
    if kind == "residual":
        ids, _ = _ids(snap, prompt if isinstance(prompt, str) and prompt.strip() else RESIDUAL_EXAMPLE)
        if len(ids) < 2:
            raise InputError("The residual stream view needs a prompt of at least 2 tokens.")
        return _results.get(("resid", snap.uid, tuple(ids)),
                            lambda: residual_pca(snap.model, ids, tokenizer=get_tokenizer()))
    names = _lists(lists)
    near = one_token_text(neighbours_of, "Neighbours of", required=False)
    text = prompt if isinstance(prompt, str) and prompt.strip() else None
    ids = tuple(_ids(snap, text)[0]) if text is not None else None
    all_lists = default_word_lists()
    chosen = {n: all_lists[n] for n in names}
    own = _own_words(words)
    if own:
        chosen["your words"] = list(own)
    return _results.get(("tokens", snap.uid, ids, names, own, near), lambda: ask(lambda: token_embedding_pca(
        snap.model, prompt=list(ids) if ids else None, word_lists=chosen, neighbours_of=near,
        tokenizer=get_tokenizer())))


def _own_words(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if not isinstance(value, str):
        raise InputError("Your words must be text: words separated by commas.")
    if len(value) > 2_000:
        raise InputError(f"Your words are too long ({len(value):,} characters; at most 2,000).")
    return tuple(dict.fromkeys(w.strip() for w in value.split(",") if w.strip()))


def _lists(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise InputError(f"Word lists must be names from: {', '.join(WORD_LISTS)}.")
    unknown = [x for x in items if x not in WORD_LISTS]
    if unknown:
        raise InputError(f"Unknown word lists: {', '.join(unknown)}. Choose from: {', '.join(WORD_LISTS)}.")
    return tuple(dict.fromkeys(items))


# --------------------------------------------------------------------------- saliency and q.k

def saliency(snap: Snapshot, prompt: Any, target: Any = "", method: Any = "integrated_gradients",
             steps: Any = 32) -> Saliency:
    ids, note = prompt_ids(snap, prompt, "Prompt", SALIENCY_TOKENS, "saliency view")
    kind = v.choice(method, "Method", METHODS, default="integrated_gradients")
    tgt = one_token_text(target, "Target", required=False)
    n = v.whole(steps, "Steps", 1, IG_STEPS_MAX, default=32)
    tok = get_tokenizer()
    if kind == "gradient_x_input":
        run = lambda: gradient_x_input(snap.model, ids, tgt, tokenizer=tok)      # noqa: E731
    else:
        run = lambda: integrated_gradients(snap.model, ids, tgt, n_steps=n, tokenizer=tok)   # noqa: E731
    return noted(_results.get(("saliency", snap.uid, tuple(ids), kind, tgt, n), lambda: ask(run)), note)


def qk(snap: Snapshot, prompt: Any, layer: Any, head: Any, query: Any) -> QKBreakdown:
    ids, _ = _ids(snap, prompt)
    cfg = snap.model.cfg
    lay = v.whole(layer, "Layer", 0, cfg.n_layers - 1, default=0)
    hd = v.whole(head, "Head", 0, cfg.n_heads - 1, default=0)
    q = v.whole(query, "Query position", -len(ids), len(ids) - 1, default=-1)
    return _results.get(("qk", snap.uid, tuple(ids), lay, hd, q),
                        lambda: ask(lambda: qk_breakdown(snap.model, ids, lay, hd, q, tokenizer=get_tokenizer())))
