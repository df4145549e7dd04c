"""The Circuit experiment's computation (and the ``/circuit`` endpoint): which heads and MLPs, connected how,
carry the difference between a clean and a corrupted prompt — scored by edge attribution patching, checked
by one exact patched forward per circuit size (:mod:`playground.inspection.circuits`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...inspection.circuit_graph import Graph
from ...inspection.circuit_result import Circuit
from ...inspection.circuits import DEFAULT_EDGES, MAX_TOKENS, find_circuit
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import LRU
from ..state import Snapshot
from .experiments import prompt_pair
from .learned import ask, one_token_text

GPT2_SIZED_LAYERS = 12        # IOI and greater-than need a model about GPT-2's size to show anything
_circuits = LRU(8)


@dataclass(frozen=True)
class CircuitExample:
    name: str
    clean: str
    corrupted: str
    target: str
    distractor: str
    note: str
    any_model: bool           # shows something on the bundled model too


EXAMPLES: dict[str, CircuitExample] = {ex.name: ex for ex in (
    CircuitExample(
        "induction",
        "Mr. Darcy walked into the garden and spoke to Elizabeth about the letter. Mr. Darcy walked into the "
        "garden and spoke to",
        "The old man rode quickly across the river and wrote to Emma about the storm. Mr. Darcy walked into the "
        "garden and spoke to",
        " Elizabeth", " her",
        "The text is shown twice; the corrupted prompt changes the first copy. Look at the edges into logits "
        "from the induction heads and at what feeds them from earlier layers: on a trained model a few heads "
        "carry most of the copy, on random weights nothing stands out.", True),
    CircuitExample(
        "ioi",
        "When Mary and John went to the store, John gave a drink to",
        "When Alice and Bob went to the store, Charlie gave a drink to",
        " Mary", " John",
        "Indirect-object identification: the model must name the person who was not repeated. Look for late "
        "heads writing ' Mary' into the logits and the earlier heads that notice the repeated ' John'.", False),
    CircuitExample(
        "greater-than",
        "The war lasted from the year 1732 to the year 17",
        "The war lasted from the year 1701 to the year 17",
        "50", "20",
        "Greater-than: the end year must come after 1732. Look at the late MLPs and the heads that read '32'.",
        False),
)}
DEFAULT_EXAMPLE = "induction"


def size_note(snap: Snapshot, example: str | None) -> str:
    """A line when the chosen example needs a larger model than the loaded one."""
    ex = EXAMPLES.get(example or "")
    if ex is None or ex.any_model or snap.model.cfg.n_layers >= GPT2_SIZED_LAYERS:
        return ""
    return (f"This example needs a model about GPT-2's size (12 layers or more); the loaded one has "
            f"{snap.model.cfg.n_layers}: expect a weak effect.")


def circuit_view(snap: Snapshot, clean: Any, corrupted: Any, target: Any, distractor: Any,
                 n_edges: Any = DEFAULT_EDGES, check_heads: Any = False) -> Circuit:
    """The circuit of the top ``n_edges`` edges, its recovered fraction and the curve over N (cached per
    model and request; the head check runs only when asked for)."""
    clean_ids, corrupted_ids = prompt_pair(snap, clean, corrupted, MAX_TOKENS,
                                           "Circuits keep a copy of the residual stream for every head")
    n_layers, n_heads = snap.model.cfg.n_layers, snap.model.cfg.n_heads
    total = Graph(n_layers, n_heads).n_edges
    n = v.whole(n_edges, "Edges in the circuit", 1, total, default=min(DEFAULT_EDGES, total))
    heads = v.flag(check_heads, "Check each head by patching", default=False)
    target_text, distractor_text = one_token_text(target, "Target"), one_token_text(distractor, "Distractor")
    key = (snap.uid, tuple(clean_ids), tuple(corrupted_ids), target_text, distractor_text, n, heads)

    return _circuits.get(key, lambda: ask(lambda: find_circuit(
        snap.model, clean_ids, corrupted_ids, target_text, distractor_text, n_edges=n, check_heads=heads,
        tokenizer=get_tokenizer())))

