"""Circuits by hand, for the tests: the forward pass node by node, from the definitions.

Module calls and explicit softmax attention, one head at a time; no code of
``playground.inspection.circuit*`` is used except the node names and the graph's
list of which writer feeds which reader.
"""
from __future__ import annotations

import math

import torch

from playground.inspection.circuit_graph import Graph
from playground.model import GPTModel


def one_head(block, x: torch.Tensor, h: int) -> torch.Tensor:
    """Head h of ``block`` reading ``x (1, T, E)``: its slices, explicit softmax attention, its slice of out_proj."""
    att = block.att
    d = att.head_dim
    hx = block.norm1(x)
    q, k, v = (lin(hx)[..., h * d:(h + 1) * d] for lin in (att.W_query, att.W_key, att.W_value))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    t = x.shape[1]
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), -torch.inf)
    return torch.softmax(scores, -1) @ v @ att.out_proj.weight[:, h * d:(h + 1) * d].T


def hand_forward(model: GPTModel, ids: list[int], target: int, distractor: int, *, reader: str | None = None,
                 keep: dict | None = None, corrupted: dict | None = None):
    """``(M, outputs by node, reader's input copy)``.

    ``reader``: that node reads a detached copy of its input that requires grad (so dM/d copy
    flows through it only). ``keep``/``corrupted``: every reader's input is the sum over its
    writers of this run's output (edge kept) or the corrupted run's, plus the out_proj biases.
    """
    idx = torch.tensor([ids])
    x0 = model.tok_emb(idx) + model.pos_emb(torch.arange(len(ids)))
    outs, order, copy = {"input": x0}, ["input"], None
    bias = torch.zeros_like(x0)

    def input_of(name: str) -> torch.Tensor:
        nonlocal copy
        if keep is None:
            x = sum(outs[u] for u in order) + bias
        else:
            x = sum(outs[u] if keep.get((u, name)) else corrupted[u] for u in order) + bias
        if name == reader:
            copy = x.detach().clone().requires_grad_(True)
            return copy
        return x

    for l, block in enumerate(model.trf_blocks):
        heads = {f"L{l}H{h}": one_head(block, input_of(f"L{l}H{h}"), h) for h in range(model.cfg.n_heads)}
        outs.update(heads)
        order += list(heads)
        bias = bias + block.att.out_proj.bias
        outs[f"L{l} MLP"] = block.ff(block.norm2(input_of(f"L{l} MLP")))
        order.append(f"L{l} MLP")
    logits = model.out_head(model.final_norm(input_of("logits")))[0, -1]
    return logits[target] - logits[distractor], outs, copy


def hand_scores(model: GPTModel, clean_ids: list[int], corrupt_ids: list[int], target: int,
                distractor: int) -> dict[tuple[str, str], float]:
    """Every edge's score, one hand forward with a gradient per reader."""
    with torch.no_grad():
        _, clean, _ = hand_forward(model, clean_ids, target, distractor)
        _, corr, _ = hand_forward(model, corrupt_ids, target, distractor)
    graph = Graph(model.cfg.n_layers, model.cfg.n_heads)
    out = {}
    for v, reader in enumerate(graph.downstream_names):
        m, _, copy = hand_forward(model, clean_ids, target, distractor, reader=reader)
        (grad,) = torch.autograd.grad(m, copy)
        for u in range(graph.n_inputs(v)):
            up = graph.upstream_names[u]
            out[(up, reader)] = float(((corr[up] - clean[up]) * grad).sum())
    return out
