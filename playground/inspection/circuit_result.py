"""What a circuit search returns: the edges with their scores, the circuit, the curve, as JSON and CSV."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from .circuit_graph import Graph
from .export import dumps, rows_to_csv

EDGE_COLUMNS = ("rank", "edge", "upstream", "downstream", "score", "in_circuit")


@dataclass(frozen=True)
class Circuit:
    """One clean/corrupted pair's circuit.

    ``edges`` holds every edge of the graph, largest ``|score|`` first, as
    ``{rank, edge, upstream, downstream, score, in_circuit}``; ``in_circuit``
    marks the circuit (top ``n_edges`` or ``|score| >= threshold``, pruned to
    paths from ``input`` to ``logits``). ``score`` estimates how M moves when
    that edge alone carries the corrupted value (negative: the edge holds the
    clean answer up, when ``m_clean > m_corrupted``). ``recovered`` is exact
    (one patched forward), None when ``m_clean == m_corrupted``. ``curve``:
    ``{n_edges, n_kept, metric, recovered}`` per N. ``heads``:
    ``{name, layer, head, attribution, patched}`` when asked for, else empty.
    """

    n_layers: int
    n_heads: int
    tokens: tuple[str, ...]             # the corrupted prompt
    clean_tokens: tuple[str, ...]
    target: dict                        # {token, token_id}
    distractor: dict
    m_clean: float
    m_corrupted: float
    m_circuit: float
    recovered: float | None
    n_edges: int | None                 # as asked; None when chosen by threshold
    threshold: float | None
    edges: tuple[dict, ...]
    curve: tuple[dict, ...] = ()
    heads: tuple[dict, ...] = ()
    seconds: dict = field(default_factory=dict)
    note: str = ""

    @property
    def graph(self) -> Graph:
        return Graph(self.n_layers, self.n_heads)

    @property
    def metric(self) -> str:
        return f"logit('{self.target['token']}') - logit('{self.distractor['token']}')"

    def circuit_edges(self) -> list[dict]:
        """The circuit's edges, best first."""
        return [dict(e) for e in self.edges if e["in_circuit"]]

    def circuit_nodes(self) -> list[str]:
        """Nodes touched by a circuit edge, in the graph's order."""
        used = {n for e in self.edges if e["in_circuit"] for n in (e["upstream"], e["downstream"])}
        return [n for n in self.graph.node_names if n in used]

    def data(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        return dumps(self.data())

    @classmethod
    def from_json(cls, text: str) -> "Circuit":
        """Back from :meth:`to_json` (lists become tuples again)."""
        data = json.loads(text)
        for name in ("tokens", "clean_tokens", "edges", "curve", "heads"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)

    def to_csv(self, circuit_only: bool = False) -> str:
        """Every edge (or only the circuit's), one row each, columns :data:`EDGE_COLUMNS`."""
        rows = self.circuit_edges() if circuit_only else self.edges
        return rows_to_csv({k: e[k] for k in EDGE_COLUMNS} for e in rows)
