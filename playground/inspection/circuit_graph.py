"""The computational graph of a GPTModel for circuit discovery: nodes, edges, top-N selection, pruning.

The shape is EAP-IG's ``Graph`` (hannamw/EAP-IG): a node writes into the
residual stream (``input``, every head ``L{l}H{h}``, every ``L{l} MLP``) or
reads from it (every head, every MLP, ``logits``), and an edge ``u -> v`` is
one writer feeding one reader. Scores live in one matrix ``[n_upstream x
n_downstream]``; an entry that is no edge (``u`` not upstream of ``v``) is 0
and ``False`` in :meth:`Graph.edge_mask`.

Indices. Upstream (writers), in the order they run::

    0 = input, then for each layer l: 1 + l(H+1) + h = L{l}H{h}, 1 + l(H+1) + H = L{l} MLP

Downstream (readers)::

    l(H+1) + h = L{l}H{h}, l(H+1) + H = L{l} MLP, L(H+1) = logits

so a node other than ``input``/``logits`` has downstream index = upstream index - 1,
and the writers that feed a reader are always a *prefix* of the upstream order
(:meth:`Graph.n_inputs`): heads of layer l read everything before layer l, the
MLP of layer l also reads the heads of its own layer, ``logits`` reads everything.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

INPUT, LOGITS = "input", "logits"


def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def mlp_name(layer: int) -> str:
    return f"L{layer} MLP"


def edge_name(upstream: str, downstream: str) -> str:
    return f"{upstream}->{downstream}"


@dataclass(frozen=True)
class Graph:
    n_layers: int
    n_heads: int

    @property
    def n_upstream(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    @property
    def n_downstream(self) -> int:
        return self.n_layers * (self.n_heads + 1) + 1

    # ----------------------------------------------------------------- indices

    def head_up(self, layer: int, head: int) -> int:
        return 1 + layer * (self.n_heads + 1) + head

    def mlp_up(self, layer: int) -> int:
        return 1 + layer * (self.n_heads + 1) + self.n_heads

    def head_down(self, layer: int, head: int) -> int:
        return layer * (self.n_heads + 1) + head

    def mlp_down(self, layer: int) -> int:
        return layer * (self.n_heads + 1) + self.n_heads

    @property
    def logits_down(self) -> int:
        return self.n_layers * (self.n_heads + 1)

    def n_inputs(self, down: int) -> int:
        """How many writers feed reader ``down``: they are upstream indices ``0 .. n_inputs - 1``."""
        if down == self.logits_down:
            return self.n_upstream
        layer, slot = divmod(down, self.n_heads + 1)
        return 1 + layer * (self.n_heads + 1) + (self.n_heads if slot == self.n_heads else 0)

    # ----------------------------------------------------------------- names

    @cached_property
    def upstream_names(self) -> tuple[str, ...]:
        names = [INPUT]
        for layer in range(self.n_layers):
            names += [head_name(layer, h) for h in range(self.n_heads)] + [mlp_name(layer)]
        return tuple(names)

    @cached_property
    def downstream_names(self) -> tuple[str, ...]:
        return self.upstream_names[1:] + (LOGITS,)

    @cached_property
    def node_names(self) -> tuple[str, ...]:
        """Every node once, in topological order: ``input``, heads and MLP layer by layer, ``logits``."""
        return self.upstream_names + (LOGITS,)

    def up_index(self, name: str) -> int:
        try:
            return self.upstream_names.index(name)
        except ValueError:
            raise ValueError(f"{name!r} writes to no edge; writers are input, L<l>H<h>, L<l> MLP") from None

    def down_index(self, name: str) -> int:
        try:
            return self.downstream_names.index(name)
        except ValueError:
            raise ValueError(f"{name!r} reads no edge; readers are L<l>H<h>, L<l> MLP, logits") from None

    # ----------------------------------------------------------------- edges

    @cached_property
    def _mask(self) -> torch.Tensor:
        prefix = torch.tensor([self.n_inputs(v) for v in range(self.n_downstream)])     # (n_down,)
        return torch.arange(self.n_upstream)[:, None] < prefix[None, :]                 # (n_up, n_down)

    def edge_mask(self) -> torch.Tensor:
        """``(n_upstream, n_downstream)`` bool, True where ``u -> v`` is an edge (a copy)."""
        return self._mask.clone()

    @property
    def n_edges(self) -> int:
        return int(self._mask.sum())

    def edge_index(self, name: str) -> tuple[int, int]:
        """``"L0H1->L1 MLP"`` -> ``(up, down)``, or a ValueError naming what is wrong."""
        up, sep, down = name.partition("->")
        if not sep:
            raise ValueError(f"an edge is written 'upstream->downstream', got {name!r}")
        u, v = self.up_index(up.strip()), self.down_index(down.strip())
        if not self._mask[u, v]:
            raise ValueError(f"{up.strip()} is not upstream of {down.strip()}: no such edge")
        return u, v

    def mask_of(self, edges: "list[str] | tuple[str, ...]") -> torch.Tensor:
        """The ``(n_up, n_down)`` bool mask of a list of edge names."""
        keep = torch.zeros(self.n_upstream, self.n_downstream, dtype=torch.bool)
        for name in edges:
            keep[self.edge_index(name)] = True
        return keep


# --------------------------------------------------------------------------- choosing a circuit


def edge_order(graph: Graph, scores: torch.Tensor) -> torch.Tensor:
    """Flat indices (into ``scores.flatten()``) of every edge, largest ``|score|`` first; ties keep
    the graph's order (stable), so the ranking is deterministic."""
    valid = graph.edge_mask().flatten().nonzero().squeeze(1)                       # (n_edges,)
    magnitude = scores.detach().flatten()[valid].abs().double().cpu()
    order = torch.sort(-magnitude, stable=True).indices
    return valid[order]


def top_edges(graph: Graph, scores: torch.Tensor, n: int | None = None,
              threshold: float | None = None) -> torch.Tensor:
    """``(n_up, n_down)`` bool: the ``n`` edges of largest ``|score|``, or those with ``|score| >= threshold``.

    Exactly one of ``n`` and ``threshold`` is given; ``n`` is in ``0 .. graph.n_edges``.
    """
    if (n is None) == (threshold is None):
        raise ValueError("give either a number of edges or a score threshold (one of the two)")
    keep = torch.zeros(graph.n_upstream * graph.n_downstream, dtype=torch.bool)
    order = edge_order(graph, scores)
    if n is not None:
        if isinstance(n, bool) or int(n) != n or not 0 <= n <= graph.n_edges:
            raise ValueError(f"the number of edges must be an integer in 0..{graph.n_edges} "
                             f"(this model's graph has {graph.n_edges} edges), got {n!r}")
        keep[order[:int(n)]] = True
    else:
        if not threshold >= 0:                      # also catches NaN
            raise ValueError(f"the score threshold must be >= 0, got {threshold!r}")
        flat = scores.detach().flatten().cpu()
        keep[order[flat[order].abs() >= threshold]] = True
    return keep.view(graph.n_upstream, graph.n_downstream)


def prune(graph: Graph, keep: torch.Tensor) -> torch.Tensor:
    """The edges of ``keep`` that lie on some path ``input -> ... -> logits`` using only edges of ``keep``.

    Dropping the others changes no faithfulness value: a node no kept path reaches from
    ``input`` reads only corrupted values, so its output *is* its corrupted output, and
    a node with no kept path on to ``logits`` feeds nothing that is measured.
    """
    keep = keep.detach().bool().cpu() & graph.edge_mask()                        # (n_up, n_down)
    n_up = graph.n_upstream
    # node ids: upstream index for writers, n_up for logits; reader v is node v + 1
    reached = torch.zeros(n_up + 1, dtype=torch.bool)
    reached[0] = True
    for node in range(1, n_up + 1):
        reached[node] = bool((keep[:, node - 1] & reached[:n_up]).any())
    leads_on = torch.zeros(n_up + 1, dtype=torch.bool)
    leads_on[n_up] = True
    for node in range(n_up - 1, -1, -1):
        leads_on[node] = bool((keep[node] & leads_on[1:]).any())
    return keep & reached[:n_up, None] & leads_on[None, 1:]
