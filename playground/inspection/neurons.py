"""MLP neurons: their activations on a text, their direct effect on the output, the top ones at a token.

A *neuron* is one column of the GELU output in block ``l``'s feed-forward
(``trf_blocks[l].ff.layers[1]``, hook point ``trf_blocks.{l}.ff.hook_post``),
shape ``(T, 4E)``: neuron ``i`` of layer ``l`` is column ``i``.

Its *direct effect* is what its output weight vector ``w = ff.layers[2].weight[:, i]``
(shape ``E``) does to the logits when read straight through the final LayerNorm,
ignoring the divisor: ``out_head.weight @ (final_norm.scale * (w - mean(w)))``, one value
per vocabulary token; the tokens it raises most and lowers most.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps, rows_to_csv
from .inputs import (LabelFn, StopForward, TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare,
                     this_thread_only)


def post_hook_name(layer: int) -> str:
    return f"trf_blocks.{layer}.ff.hook_post"


def n_neurons(model: GPTModel) -> int:
    return int(model.trf_blocks[0].ff.layers[0].out_features)          # 4E


def check_layer(model: GPTModel, layer: int) -> int:
    n = model.cfg.n_layers
    if not 0 <= int(layer) < n:
        raise ValueError(f"layer {layer} is out of range: this model's layers are 0..{n - 1}")
    return int(layer)


def check_neuron(model: GPTModel, layer: int, neuron: int) -> tuple[int, int]:
    layer = check_layer(model, layer)
    n = n_neurons(model)
    if not 0 <= int(neuron) < n:
        raise ValueError(f"neuron {neuron} is out of range: each layer has neurons 0..{n - 1}")
    return layer, int(neuron)


def run_activations(model: GPTModel, ids: torch.Tensor, layers: tuple[int, ...]) -> torch.Tensor:
    """``(len(layers), B, T, 4E)`` GELU outputs of ``ids`` ``(B, T)``; the forward stops after the last
    layer asked for (no later blocks, no vocabulary head). Call under inference_mode / eval_mode."""
    out: dict[int, torch.Tensor] = {}
    last = max(layers)

    def keep(layer: int):
        def fn(x: torch.Tensor, name: str) -> None:                       # x: (B, T, 4E)
            out[layer] = x.detach()
            if layer == last:
                raise StopForward
        return this_thread_only(fn)

    with hooks(model, {post_hook_name(l): keep(l) for l in layers}):
        try:
            model(ids)
        except StopForward:
            pass
    return torch.stack([out[l] for l in layers])


# --------------------------------------------------------------------------- activations


@dataclass(frozen=True)
class NeuronActivations:
    """GELU outputs of every layer on one prompt: ``acts[l, t, i]`` is neuron i of layer l at token t."""

    acts: torch.Tensor               # (L, T, 4E)
    token_ids: tuple[int, ...]
    labels: tuple[str, ...]
    offset: int = 0
    note: str = ""

    def neuron(self, layer: int, neuron: int) -> torch.Tensor:
        """``(T,)`` one neuron's activation at each token."""
        return self.acts[layer, :, neuron]

    def rows(self, layer: int, neuron: int) -> list[dict]:
        return [{"position": t, "token": lab, "token_id": tid, "layer": layer, "neuron": neuron,
                 "activation": float(a)}
                for t, (lab, tid, a) in enumerate(zip(self.labels, self.token_ids, self.neuron(layer, neuron)))]

    def to_json(self, layer: int, neuron: int) -> str:
        return dumps({"layer": layer, "neuron": neuron, "labels": list(self.labels),
                      "token_ids": list(self.token_ids), "activations": self.neuron(layer, neuron),
                      "offset": self.offset, "note": self.note})

    def to_csv(self, layer: int, neuron: int) -> str:
        return rows_to_csv(self.rows(layer, neuron))


@torch.inference_mode()
def neuron_activations(model: GPTModel, tokens: TokenInput, *, tokenizer: TokenizerLike | None = None,
                       label_fn: LabelFn | None = None) -> NeuronActivations:
    """Every neuron of every layer on the prompt (one forward, stopped before the head)."""
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    with eval_mode(model):
        acts = run_activations(model, prep.ids, tuple(range(model.cfg.n_layers)))[:, 0]   # (L, T, 4E)
    return NeuronActivations(acts.float().cpu(), tuple(prep.token_ids), prep.labels, prep.offset, prep.note)


# --------------------------------------------------------------------------- direct effect


@dataclass(frozen=True)
class DirectEffect:
    """The tokens one neuron's output weights raise and lower most, read straight to the logits."""

    layer: int
    neuron: int
    top: tuple[dict, ...]            # [{token_id, token, value}], largest value first
    bottom: tuple[dict, ...]         # most negative first

    def rows(self) -> list[dict]:
        return ([{"direction": "raises", "rank": r, **d} for r, d in enumerate(self.top, 1)]
                + [{"direction": "lowers", "rank": r, **d} for r, d in enumerate(self.bottom, 1)])

    def to_json(self) -> str:
        return dumps({"layer": self.layer, "neuron": self.neuron, "top": self.top, "bottom": self.bottom})

    def to_csv(self) -> str:
        return rows_to_csv({"layer": self.layer, "neuron": self.neuron, **r} for r in self.rows())


def direct_effect_vector(model: GPTModel, layer: int, neuron: int) -> torch.Tensor:
    """``(V,)`` ``out_head.weight @ (final_norm.scale * (w - mean(w)))`` with ``w = ff.layers[2].weight[:, i]``."""
    layer, neuron = check_neuron(model, layer, neuron)
    with torch.no_grad():
        w = model.trf_blocks[layer].ff.layers[2].weight[:, neuron].float()       # (E,)
        v = model.final_norm.scale.float() * (w - w.mean())                      # (E,)
        return model.out_head.weight.float() @ v                                 # (V,)


def neuron_direct_effect(model: GPTModel, layer: int, neuron: int, k: int = 10, *,
                         tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None) -> DirectEffect:
    """The ``k`` tokens the neuron raises most and the ``k`` it lowers most (ids, texts, values)."""
    effect = direct_effect_vector(model, layer, neuron)
    k = min(int(k), effect.numel())
    label = make_label_fn(model, tokenizer, label_fn)
    up = torch.topk(effect, k)
    down = torch.topk(-effect, k)

    def rows(idx: torch.Tensor, sign: float, vals: torch.Tensor) -> tuple[dict, ...]:
        return tuple({"token_id": int(i), "token": label(int(i)), "value": sign * float(v)} for i, v in zip(idx, vals))
    return DirectEffect(int(layer), int(neuron), rows(up.indices, 1.0, up.values), rows(down.indices, -1.0, down.values))


# --------------------------------------------------------------------------- top neurons at a token


@dataclass(frozen=True)
class TopNeurons:
    """The neurons (over all layers) with the largest activation at one token of the prompt."""

    position: int
    token: str
    neurons: tuple[dict, ...]        # [{layer, neuron, activation}], largest first
    labels: tuple[str, ...] = ()
    note: str = ""

    def to_json(self) -> str:
        return dumps({"position": self.position, "token": self.token, "neurons": self.neurons,
                      "labels": self.labels, "note": self.note})

    def to_csv(self) -> str:
        return rows_to_csv({"position": self.position, "token": self.token, "rank": r, **n}
                           for r, n in enumerate(self.neurons, 1))


def top_neurons_at(model: GPTModel, tokens: TokenInput, position: int, k: int = 20, *,
                   tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None) -> TopNeurons:
    """The ``k`` (layer, neuron, activation) with the largest activation at ``position`` (negative
    positions count from the end; positions are in the prompt after cropping)."""
    acts = neuron_activations(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    T = acts.acts.shape[1]
    if not -T <= int(position) < T:
        raise ValueError(f"position {position} is out of range: the prompt has tokens 0..{T - 1}")
    t = int(position) % T
    at = acts.acts[:, t, :]                                                     # (L, 4E)
    width = at.shape[1]
    top = torch.topk(at.reshape(-1), min(int(k), at.numel()))
    rows = tuple({"layer": int(i) // width, "neuron": int(i) % width, "activation": float(v)}
                 for i, v in zip(top.indices, top.values))
    return TopNeurons(t, acts.labels[t], rows, acts.labels, acts.note)
