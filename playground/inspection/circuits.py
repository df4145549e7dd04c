"""Circuits: which edges between nodes carry the difference between a clean and a corrupted prompt.

Metric ``M = logit(target) - logit(distractor)`` at the last position. The
nodes and edges are those of :mod:`.circuit_graph` (``input``, every head,
every MLP, ``logits``); the forward pass written as that graph is in
:mod:`.circuit_forward`.

1. Edge scores, EAP (edge attribution patching, as hannamw/EAP-IG)::

       score(u -> v) = sum over positions and dims of (z_u(corrupted) - z_u(clean)) * dM/d in_v

   with the gradient taken on the clean run with respect to v's own copy of its
   input (so it flows through v only): one clean forward and backward, one
   corrupted forward, no run per edge. It estimates how much M moves when that
   one edge carries the corrupted value.
2. The circuit: the top-N edges by ``|score|`` (or those over a threshold),
   pruned to those on some path ``input -> logits``.
3. Faithfulness, exact: one forward in which each reader's input is, edge by
   edge, the writer's output in this same forward (kept edge) or in the
   corrupted run (dropped edge). ``recovered = (M_circuit - M_corrupted) /
   (M_clean - M_corrupted)``: 1 with every edge, 0 with none.

Prompts are limited to :data:`MAX_TOKENS` tokens: each head holds its own copy
of the residual stream, ``n_heads x T x emb_dim`` values per layer, and the
faithfulness forward holds ``n_nodes x T x emb_dim`` differences per circuit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..model import GPTModel
from .attribution import single_token_id
from .circuit_result import Circuit
from .circuit_forward import (Trace, detached, graph_of, logit_direction, noise_heads, reader_grads, run_masked,
                              run_plain)
from .circuit_graph import Graph, edge_order, edge_name, head_name, prune, top_edges
from .inputs import LabelFn, Prepared, TokenInput, TokenizerLike, check_token_id, make_label_fn, prepare, to_id_list

MAX_TOKENS = 256
DEFAULT_EDGES = 30
CURVE_NS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)   # and "all"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class CircuitPair:
    """Two prompts of the same length and the two tokens of the metric, checked."""

    clean: Prepared
    corrupted: Prepared
    target: dict                        # {token, token_id}
    distractor: dict

    @property
    def target_id(self) -> int:
        return int(self.target["token_id"])

    @property
    def distractor_id(self) -> int:
        return int(self.distractor["token_id"])


def _token_id(model: GPTModel, value: "int | str", what: str, tokenizer: TokenizerLike | None) -> int:
    if isinstance(value, str):
        if tokenizer is None:
            raise ValueError(f"{what} {value!r} is text: pass tokenizer= or give its token id")
        return check_token_id(model, single_token_id(tokenizer, value, what), what.lower())
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(f"{what} must be one token: its id or its text, got {value!r}")
    return check_token_id(model, int(value), what.lower())


def prepare_pair(model: GPTModel, clean: TokenInput, corrupted: TokenInput, target: "int | str",
                 distractor: "int | str", *, tokenizer: TokenizerLike | None = None,
                 label_fn: LabelFn | None = None, max_tokens: int = MAX_TOKENS) -> CircuitPair:
    """Validate everything a circuit needs, or raise a ValueError that says what to change."""
    limit = min(max_tokens, model.cfg.context_length)
    why = ("the model's context length" if limit == model.cfg.context_length
           else "each head holds its own copy of the residual stream")
    prepared = {}
    for what, tokens in (("clean", clean), ("corrupted", corrupted)):
        ids = to_id_list(tokens, tokenizer)
        if not ids:
            raise ValueError(f"the {what} prompt is empty: give at least one token")
        if len(ids) > limit:
            raise ValueError(f"the {what} prompt has {len(ids)} tokens; circuits take at most {limit} ({why})")
        prepared[what] = prepare(model, ids, tokenizer=tokenizer, label_fn=label_fn)
    a, b = prepared["clean"], prepared["corrupted"]
    if a.n_tokens != b.n_tokens:
        raise ValueError(f"the clean and corrupted prompts must have the same number of tokens: "
                         f"clean has {a.n_tokens}, corrupted has {b.n_tokens}")
    if a.token_ids == b.token_ids:
        raise ValueError("the clean and corrupted prompts are identical: there is no difference to explain, "
                         "and the recovered fraction would be 0/0")
    t = _token_id(model, target, "Target", tokenizer)
    d = _token_id(model, distractor, "Distractor", tokenizer)
    if t == d:
        raise ValueError("the target and the distractor are the same token: the metric would always be 0")
    label = make_label_fn(model, tokenizer, label_fn)
    return CircuitPair(a, b, {"token": label(t), "token_id": t}, {"token": label(d), "token_id": d})


# --------------------------------------------------------------------------- edge scores


@dataclass(frozen=True)
class EdgeScores:
    """EAP scores of every edge, and what evaluating circuits needs from the two runs."""

    graph: Graph
    scores: torch.Tensor                # (n_up, n_down) float32 on CPU, 0 where no edge
    head_attribution: torch.Tensor      # (L, H) (z_h(corr) - z_h(clean)) . dM/dz_h, summed
    m_clean: float
    m_corrupted: float
    clean: Trace                        # the clean run (detached)
    corrupted: Trace                    # the corrupted run, reused by every faithfulness forward
    direction: torch.Tensor             # (E,) out_head[target] - out_head[distractor]
    seconds: float

    def score(self, edge: str) -> float:
        return float(self.scores[self.graph.edge_index(edge)])


def edge_scores(model: GPTModel, pair: CircuitPair) -> EdgeScores:
    """One clean forward with gradients, one corrupted forward; every edge's score from the two."""
    start = time.perf_counter()
    graph = graph_of(model)
    with torch.inference_mode(False), torch.enable_grad():                  # callers may be in inference mode
        direction = logit_direction(model, pair.target_id, pair.distractor_id).clone()
        clean = run_plain(model, pair.clean.ids.clone(), direction, track=True)
        grads, head_grads = reader_grads(clean, graph)                    # (n_down, T, E), (L, H, T, E)
    with torch.no_grad():
        corrupted = run_plain(model, pair.corrupted.ids.clone(), direction)
        delta = (corrupted.outputs - clean.outputs.detach())[:, 0].float()   # (n_up, T, E)
        scores = torch.einsum("ute,vte->uv", delta, grads.float()).cpu()     # (n_up, n_down)
        scores = scores * graph.edge_mask()
        n_l, n_h = graph.n_layers, graph.n_heads
        heads = delta[1:].view(n_l, n_h + 1, *delta.shape[1:])[:, :n_h]      # (L, H, T, E)
        head_attr = (heads * head_grads.float()).sum((-1, -2)).cpu()         # (L, H)
    return EdgeScores(graph, scores, head_attr, float(clean.metric.detach()[0]), float(corrupted.metric[0]),
                      detached(clean), corrupted, direction, time.perf_counter() - start)


# --------------------------------------------------------------------------- faithfulness


def recovered_fraction(m: float, m_clean: float, m_corrupted: float) -> float | None:
    """``(m - M_corrupted) / (M_clean - M_corrupted)``, or None when the two metrics are equal (0/0)."""
    span = m_clean - m_corrupted
    if abs(span) <= 1e-6 * max(1.0, abs(m_clean), abs(m_corrupted)):
        return None
    return (m - m_corrupted) / span


def circuit_metrics(model: GPTModel, pair: CircuitPair, es: EdgeScores, keep: torch.Tensor) -> list[float]:
    """Exact metric of the clean prompt run with only the ``keep`` edges clean (others corrupted).

    ``keep``: ``(n_up, n_down)`` or a batch ``(K, n_up, n_down)`` of bool masks; non-edges are ignored.
    """
    graph = es.graph
    if keep.shape[-2:] != (graph.n_upstream, graph.n_downstream):
        raise ValueError(f"an edge mask is ({graph.n_upstream}, {graph.n_downstream}), got {tuple(keep.shape)}")
    batch = (keep if keep.ndim == 3 else keep.unsqueeze(0)).bool().cpu() & graph.edge_mask()
    return [float(m) for m in run_masked(model, pair.clean.ids, batch, es.corrupted, es.direction)]


def faithfulness(model: GPTModel, pair: CircuitPair, es: EdgeScores, keep: torch.Tensor) -> float | None:
    """Recovered fraction of one circuit (``keep``: ``(n_up, n_down)`` bool); None when it is undefined."""
    return recovered_fraction(circuit_metrics(model, pair, es, keep)[0], es.m_clean, es.m_corrupted)


def curve_points(graph: Graph, ns: Sequence[int] = CURVE_NS) -> list[int]:
    """The N of a recovered-fraction curve: ``ns`` capped at the number of edges, then all of them."""
    if any(isinstance(n, bool) or int(n) != n or n < 1 for n in ns):
        raise ValueError(f"every N of the curve must be a positive integer, got {list(ns)}")
    return sorted({min(int(n), graph.n_edges) for n in ns} | {graph.n_edges})


def _circuits(graph: Graph, scores: torch.Tensor, ns: Sequence[int]) -> torch.Tensor:
    return torch.stack([prune(graph, top_edges(graph, scores, n=n)) for n in ns])    # (K, n_up, n_down)


def recovered_curve(model: GPTModel, pair: CircuitPair, es: EdgeScores,
                    ns: Sequence[int] = CURVE_NS) -> tuple[dict, ...]:
    """``[{n_edges, n_kept, metric, recovered}]`` for the top-N circuits, pruned, N from :func:`curve_points`;
    all in one batched faithfulness forward."""
    points = curve_points(es.graph, ns)
    keeps = _circuits(es.graph, es.scores, points)
    metrics = circuit_metrics(model, pair, es, keeps)
    return tuple({"n_edges": n, "n_kept": int(k.sum()), "metric": m,
                  "recovered": recovered_fraction(m, es.m_clean, es.m_corrupted)}
                 for n, k, m in zip(points, keeps, metrics))


# --------------------------------------------------------------------------- per-head check


def head_check(model: GPTModel, pair: CircuitPair, es: EdgeScores) -> tuple[dict, ...]:
    """Per head: the attribution estimate beside exact activation patching, for a scatter.

    ``attribution`` = ``(z_h(corrupted) - z_h(clean)) . dM/dz_h`` summed (from :func:`edge_scores`; it
    equals the sum of the head's outgoing edge scores). ``patched`` = ``M - M_clean`` when the clean
    prompt is run with that head's output replaced by its corrupted value: the *noising* direction,
    the one the estimate approximates (``patching.patch_heads`` does the opposite, clean into
    corrupted). Exact, by :func:`.circuit_forward.noise_heads`: one batched forward per layer,
    starting at that layer; the tests check it against ``patching.patch_grid`` on the model's own
    forward (its ``hook_z`` slice replaced), which does the same on whole forwards.
    """
    patched = noise_heads(model, es.clean, es.corrupted, es.direction) - es.m_clean          # (L, H)
    return tuple({"name": head_name(l, h), "layer": l, "head": h,
                  "attribution": float(es.head_attribution[l, h]), "patched": float(patched[l, h])}
                 for l in range(es.graph.n_layers) for h in range(es.graph.n_heads))


# --------------------------------------------------------------------------- everything at once


def _edge_rows(es: EdgeScores, kept: torch.Tensor) -> tuple[dict, ...]:
    graph = es.graph
    n_down = graph.n_downstream
    flat = es.scores.flatten().tolist()
    rows = []
    for rank, i in enumerate(edge_order(graph, es.scores).tolist(), start=1):
        u, v = divmod(i, n_down)
        up, down = graph.upstream_names[u], graph.downstream_names[v]
        rows.append({"rank": rank, "edge": edge_name(up, down), "upstream": up, "downstream": down,
                     "score": flat[i], "in_circuit": bool(kept[u, v])})
    return tuple(rows)


def find_circuit(model: GPTModel, clean: TokenInput, corrupted: TokenInput, target: "int | str",
                 distractor: "int | str", *, n_edges: int | None = None, threshold: float | None = None,
                 curve: Sequence[int] | None = CURVE_NS, check_heads: bool = False,
                 tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None) -> Circuit:
    """Scores, the circuit (top ``n_edges``, default :data:`DEFAULT_EDGES`, or ``|score| >= threshold``),
    its exact recovered fraction, the curve over ``curve`` (None: no curve), and with ``check_heads``
    the per-head attribution-vs-patching pairs. Everything a view shows, in one :class:`Circuit`."""
    start = time.perf_counter()
    graph = graph_of(model)
    if n_edges is not None and threshold is not None:
        raise ValueError("give either a number of edges or a score threshold, not both")
    if threshold is not None and not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise ValueError(f"the score threshold must be >= 0, got {threshold!r}")
    if threshold is None:
        n_edges = min(DEFAULT_EDGES, graph.n_edges) if n_edges is None else n_edges
        if isinstance(n_edges, bool) or int(n_edges) != n_edges or not 1 <= n_edges <= graph.n_edges:
            raise ValueError(f"the number of edges must be an integer in 1..{graph.n_edges} "
                             f"(this model's graph has {graph.n_edges} edges), got {n_edges!r}")
    points = curve_points(graph, curve) if curve else []
    pair = prepare_pair(model, clean, corrupted, target, distractor, tokenizer=tokenizer, label_fn=label_fn)
    es = edge_scores(model, pair)
    t_curve = time.perf_counter()
    kept = prune(graph, top_edges(graph, es.scores, n=n_edges, threshold=threshold))
    keeps = torch.cat([kept.unsqueeze(0), _circuits(graph, es.scores, points)]) if points else kept.unsqueeze(0)
    metrics = circuit_metrics(model, pair, es, keeps)
    rows = tuple({"n_edges": n, "n_kept": int(k.sum()), "metric": m,
                  "recovered": recovered_fraction(m, es.m_clean, es.m_corrupted)}
                 for n, k, m in zip(points, keeps[1:], metrics[1:]))
    seconds = {"scores": es.seconds, "faithfulness": time.perf_counter() - t_curve}
    heads: tuple[dict, ...] = ()
    if check_heads:
        t_heads = time.perf_counter()
        heads = head_check(model, pair, es)
        seconds["heads"] = time.perf_counter() - t_heads
    recovered = recovered_fraction(metrics[0], es.m_clean, es.m_corrupted)
    note = "" if recovered is not None else (
        f"the clean and corrupted prompts give the same metric ({es.m_clean:.4g}): "
        "the recovered fraction is undefined")
    seconds["total"] = time.perf_counter() - start
    return Circuit(
        n_layers=graph.n_layers, n_heads=graph.n_heads, tokens=pair.corrupted.labels,
        clean_tokens=pair.clean.labels, target=pair.target, distractor=pair.distractor,
        m_clean=es.m_clean, m_corrupted=es.m_corrupted, m_circuit=metrics[0], recovered=recovered,
        n_edges=None if threshold is not None else int(n_edges), threshold=threshold,
        edges=_edge_rows(es, kept), curve=rows, heads=heads, seconds=seconds, note=note)
