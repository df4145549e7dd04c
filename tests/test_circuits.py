"""Circuits on tiny seeded models: edge scores, the decomposed forward, faithfulness, errors, export, figures.

Every number is checked against a computation written out from the
definitions (tests/circuit_reference.py: a slow forward pass node by node,
with module calls and explicit attention), not against the code under test.
"""
from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from playground.config import GPTConfig
from playground.inspection.circuit_forward import graph_of, logit_direction, run_plain
from playground.inspection.circuit_graph import Graph, edge_name, prune, top_edges
from playground.inspection.circuit_result import Circuit
from playground.inspection.circuits import (CURVE_NS, MAX_TOKENS, circuit_metrics, curve_points, edge_scores,
                                            faithfulness, find_circuit, head_check, prepare_pair, recovered_curve)
from playground.inspection.figures.circuits import (circuit_graph_figure, head_check_figure, node_positions,
                                                    recovered_curve_figure)
from playground.hooks import capture
from playground.inspection.patching import logit_diff_metric, patch_grid, z_name
from playground.model import GPTModel
from playground.tokenizer import get_tokenizer
from tests.circuit_reference import hand_forward, hand_scores
from tests.factories import make_model

SMALL = GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0,
                  qkv_bias=True, tie_embeddings=False)
VARIANTS = {
    "qkv-bias, untied": SMALL,
    "no qkv-bias, tied, 3 layers x 2 heads": SMALL.replace(qkv_bias=False, tie_embeddings=True, n_layers=3,
                                                           n_heads=2),
    "1 layer x 1 head": SMALL.replace(n_layers=1, n_heads=1, emb_dim=16),
    "dropout in config": SMALL.replace(drop_rate=0.3, n_heads=8),
}
CLEAN = [5, 17, 3, 88, 41, 9, 60, 23]
CORRUPT = [5, 17, 70, 88, 12, 9, 60, 23]      # positions 2 and 4 differ
TARGET, DISTRACTOR = 11, 42


@pytest.fixture(scope="module")
def model() -> GPTModel:
    return make_model(SMALL, seed=1)


@pytest.fixture(scope="module")
def circuit(model) -> Circuit:
    return find_circuit(model, CLEAN, CORRUPT, TARGET, DISTRACTOR, n_edges=12, check_heads=True)


# --------------------------------------------------------------------------- scores and the decomposition


@pytest.mark.parametrize("name", list(VARIANTS))
def test_edge_scores_equal_a_hand_written_autograd_computation(name):
    m = make_model(VARIANTS[name], seed=3)
    es = edge_scores(m, prepare_pair(m, CLEAN, CORRUPT, TARGET, DISTRACTOR))
    want = hand_scores(m, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    graph = es.graph
    expected = torch.zeros(graph.n_upstream, graph.n_downstream)
    for (up, down), s in want.items():
        expected[graph.up_index(up), graph.down_index(down)] = s
    assert len(want) == graph.n_edges
    torch.testing.assert_close(es.scores, expected, atol=2e-5, rtol=1e-4)
    assert es.scores.abs().max() > 1e-3                       # not trivially zero


@pytest.mark.parametrize("name", list(VARIANTS))
def test_decomposed_forward_gives_the_models_logits(name):
    m = make_model(VARIANTS[name], seed=4)
    ids = torch.tensor([CLEAN])
    with torch.no_grad():
        tr = run_plain(m, ids, logit_direction(m, TARGET, DISTRACTOR))
        logits = m.out_head(m.final_norm(tr.final))
        want = m.eval()(ids)
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=1e-5)
    assert float(tr.metric[0]) == pytest.approx(float(want[0, -1, TARGET] - want[0, -1, DISTRACTOR]), abs=1e-5)
    # the writers really sum to the final stream, out_proj biases aside
    biases = sum(b.att.out_proj.bias for b in m.trf_blocks)
    torch.testing.assert_close(tr.outputs.sum(0) + biases, tr.final, atol=1e-5, rtol=1e-5)


def test_head_attribution_is_the_sum_of_its_outgoing_edge_scores(model):
    es = edge_scores(model, prepare_pair(model, CLEAN, CORRUPT, TARGET, DISTRACTOR))
    g = es.graph
    for l in range(g.n_layers):
        for h in range(g.n_heads):
            assert float(es.head_attribution[l, h]) == pytest.approx(float(es.scores[g.head_up(l, h)].sum()),
                                                                     abs=1e-4)


# --------------------------------------------------------------------------- faithfulness


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_edge_gives_the_clean_metric_and_no_edge_the_corrupted_one(name):
    m = make_model(VARIANTS[name], seed=5)
    pair = prepare_pair(m, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    es = edge_scores(m, pair)
    graph = es.graph
    with torch.no_grad():
        clean, corr = m(torch.tensor([CLEAN]))[0, -1], m(torch.tensor([CORRUPT]))[0, -1]
    m_clean, m_corr = float(clean[TARGET] - clean[DISTRACTOR]), float(corr[TARGET] - corr[DISTRACTOR])
    everything = circuit_metrics(m, pair, es, torch.stack([graph.edge_mask(), ~graph.edge_mask()]))
    assert everything[0] == pytest.approx(m_clean, abs=1e-4)
    assert everything[1] == pytest.approx(m_corr, abs=1e-4)
    assert faithfulness(m, pair, es, graph.edge_mask()) == pytest.approx(1.0, abs=1e-4)
    assert faithfulness(m, pair, es, ~graph.edge_mask()) == pytest.approx(0.0, abs=1e-4)


def test_faithfulness_of_any_circuit_equals_the_hand_written_patched_forward(model):
    pair = prepare_pair(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    es = edge_scores(model, pair)
    graph = es.graph
    gen = torch.Generator().manual_seed(0)
    keeps = (torch.rand(3, graph.n_upstream, graph.n_downstream, generator=gen) < 0.5) & graph.edge_mask()
    got = circuit_metrics(model, pair, es, keeps)
    with torch.no_grad():
        _, corrupted, _ = hand_forward(model, CORRUPT, TARGET, DISTRACTOR)
        for keep, m in zip(keeps, got):
            edges = {(graph.upstream_names[u], graph.downstream_names[v]): True for u, v in keep.nonzero().tolist()}
            want, _, _ = hand_forward(model, CLEAN, TARGET, DISTRACTOR, keep=edges, corrupted=corrupted)
            assert m == pytest.approx(float(want), abs=1e-4)


def test_pruning_never_changes_the_recovered_fraction(model):
    pair = prepare_pair(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    es = edge_scores(model, pair)
    for n in (1, 3, 8, 20, 40):
        raw = top_edges(es.graph, es.scores, n=n)
        pruned = prune(es.graph, raw)
        assert pruned.sum() <= raw.sum()
        a, b = circuit_metrics(model, pair, es, torch.stack([raw, pruned]))
        assert a == pytest.approx(b, abs=1e-5)


def test_prune_keeps_only_paths_from_input_to_logits():
    g = Graph(2, 2)
    keep = g.mask_of(["input->L0H0", "L0H0->logits", "L0H1->L1H0", "input->L1 MLP"])
    assert prune(g, keep).equal(g.mask_of(["input->L0H0", "L0H0->logits"]))
    assert g.n_edges == 2 * 1 + (1 + 2) + 2 * (1 + 3) + (1 + 3 + 2) + (1 + 2 * 3)   # readers L0H*, L0 MLP, L1H*, L1 MLP, logits


def single_path_model() -> GPTModel:
    """Only L0H1 and L1H2 write anything: every other head's out_proj slice and every MLP's output is zero."""
    m = make_model(SMALL, seed=7)
    d = m.cfg.head_dim
    with torch.no_grad():
        for l, block in enumerate(m.trf_blocks):
            live = {0: 1, 1: 2}[l]
            for h in range(m.cfg.n_heads):
                if h != live:
                    block.att.out_proj.weight[:, h * d:(h + 1) * d] = 0
            block.ff.layers[2].weight.zero_()
            block.ff.layers[2].bias.zero_()
    return m


def test_a_model_with_one_path_puts_that_path_on_top_and_recovers_everything():
    m = single_path_model()
    c = find_circuit(m, CLEAN, CORRUPT, TARGET, DISTRACTOR, n_edges=5)
    path = {"input->L0H1", "L0H1->L1H2", "input->L1H2", "L1H2->logits", "L0H1->logits"}
    nonzero = {e["edge"] for e in c.edges if abs(e["score"]) > 1e-6}
    assert {"input->L1H2", "L1H2->logits"} <= nonzero <= path
    assert {e["edge"] for e in c.edges[:len(nonzero)]} == nonzero       # they rank on top
    assert c.recovered == pytest.approx(1.0, abs=1e-4)
    assert {e["edge"] for e in c.circuit_edges()} == nonzero
    assert abs(c.m_clean - c.m_corrupted) > 1e-2
    # without its edges into logits the path carries nothing
    pair = prepare_pair(m, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    es = edge_scores(m, pair)
    inner = sorted(e for e in nonzero if not e.endswith("->logits"))
    assert faithfulness(m, pair, es, es.graph.mask_of(inner)) == pytest.approx(0, abs=1e-4)


# --------------------------------------------------------------------------- curve and per-head check


def test_curve_runs_each_n_by_the_exact_forward(model, circuit):
    g = circuit.graph
    assert [p["n_edges"] for p in circuit.curve] == curve_points(g, CURVE_NS)
    assert circuit.curve[-1]["n_edges"] == g.n_edges and circuit.curve[-1]["recovered"] == pytest.approx(1, abs=1e-4)
    pair = prepare_pair(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    es = edge_scores(model, pair)
    again = recovered_curve(model, pair, es, ns=[3])
    assert again[0]["recovered"] == pytest.approx(faithfulness(model, pair, es, prune(g, top_edges(g, es.scores, n=3))),
                                                  abs=1e-6)
    assert curve_points(Graph(1, 1), [1, 2, 50]) == [1, 2, 6]          # 1 + 2 + 3 edges


def test_head_check_patching_matches_dropping_the_heads_outgoing_edges(model, circuit):
    pair = prepare_pair(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    es = edge_scores(model, pair)
    g = es.graph
    assert len(circuit.heads) == g.n_layers * g.n_heads
    masks = []
    for h in circuit.heads:
        keep = g.edge_mask()
        keep[g.head_up(h["layer"], h["head"])] = False        # the head's output comes from the corrupted run
        masks.append(keep)
    dropped = circuit_metrics(model, pair, es, torch.stack(masks))
    for h, m in zip(circuit.heads, dropped):
        assert h["patched"] == pytest.approx(m - es.m_clean, abs=1e-4)
        assert h["attribution"] == pytest.approx(float(es.head_attribution[h["layer"], h["head"]]))
    assert head_check(model, pair, es) == circuit.heads


def test_head_check_matches_patch_grid_on_the_models_own_forward(model, circuit):
    """The same noising, done by patching.patch_grid: the clean prompt, one head's hook_z slice from the corrupted run."""
    d, n_l, n_h = model.cfg.head_dim, model.cfg.n_layers, model.cfg.n_heads
    with torch.no_grad(), capture(model, [z_name(l) for l in range(n_l)]) as z:
        model(torch.tensor([CORRUPT]))

    def patch(act, layer, head):                                          # act: (T, E) one row's z
        act[:, head * d:(head + 1) * d] = z[z_name(layer)][0, :, head * d:(head + 1) * d]

    metric = logit_diff_metric(TARGET, DISTRACTOR)
    grid = patch_grid(model, torch.tensor([CLEAN]), range(n_l), range(n_h), z_name, patch, metric)
    for h in circuit.heads:
        assert h["patched"] == pytest.approx(float(grid[h["layer"], h["head"]]) - circuit.m_clean, abs=1e-4)


# --------------------------------------------------------------------------- the model is left alone


def test_model_is_left_unchanged():
    m = make_model(SMALL.replace(drop_rate=0.2), seed=2)
    m.train()
    m.trf_blocks[0].att.W_query.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    flags = [p.requires_grad for p in m.parameters()]
    with torch.inference_mode():                                           # a caller in inference mode
        c = find_circuit(m, CLEAN, CORRUPT, TARGET, DISTRACTOR, check_heads=True)
    assert m.training and [p.requires_grad for p in m.parameters()] == flags
    assert all(p.grad is None for p in m.parameters())
    assert all(v.equal(m.state_dict()[k]) for k, v in before.items())
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())
    m.eval()
    with torch.no_grad():
        last = m(torch.tensor([CLEAN]))[0, -1]
    assert c.recovered is not None and c.m_clean == pytest.approx(float(last[TARGET] - last[DISTRACTOR]), abs=1e-4)


# --------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match="same number of tokens: clean has 8, corrupted has 7"):
        find_circuit(model, CLEAN, CORRUPT[:7], TARGET, DISTRACTOR)
    with pytest.raises(ValueError, match="identical"):
        find_circuit(model, CLEAN, list(CLEAN), TARGET, DISTRACTOR)
    with pytest.raises(ValueError, match="clean prompt is empty"):
        find_circuit(model, [], CORRUPT, TARGET, DISTRACTOR)
    with pytest.raises(ValueError, match="same token"):
        find_circuit(model, CLEAN, CORRUPT, TARGET, TARGET)
    n = graph_of(model).n_edges
    for bad in (0, n + 1, -3, 2.5, True):
        with pytest.raises(ValueError, match=rf"1\.\.{n}"):
            find_circuit(model, CLEAN, CORRUPT, TARGET, DISTRACTOR, n_edges=bad)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        find_circuit(model, CLEAN, CORRUPT, TARGET, DISTRACTOR, threshold=-1.0)
    with pytest.raises(ValueError, match="not both"):
        find_circuit(model, CLEAN, CORRUPT, TARGET, DISTRACTOR, n_edges=3, threshold=0.1)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        find_circuit(model, CLEAN, CORRUPT, 500, DISTRACTOR)
    with pytest.raises(ValueError, match="pass tokenizer"):
        find_circuit(model, CLEAN, CORRUPT, " Paris", DISTRACTOR)


def test_prompts_over_the_limit_are_refused():
    m = make_model(SMALL.replace(context_length=MAX_TOKENS + 8, n_layers=1), seed=0)
    long = [1] * (MAX_TOKENS + 1)
    with pytest.raises(ValueError, match=rf"clean prompt has {MAX_TOKENS + 1} tokens; circuits take at most {MAX_TOKENS}"):
        find_circuit(m, long, [2] + long[1:], TARGET, DISTRACTOR)
    with pytest.raises(ValueError, match="at most 32 .the model's context length"):
        find_circuit(make_model(SMALL), [1] * 33, [2] * 33, TARGET, DISTRACTOR)


def test_text_prompts_and_targets_need_exactly_one_token():
    m = make_model()                                                       # GPT-2's vocabulary
    tok = get_tokenizer()
    clean, corrupt = "When Mary and John went to the store, John gave a drink to", \
        "When Alice and Bob went to the store, Bob gave a drink to"
    with pytest.raises(ValueError, match="is 2 tokens"):
        find_circuit(m, clean, corrupt, " Mary Ann", " John", tokenizer=tok)
    with pytest.raises(ValueError, match="Distractor is empty"):
        find_circuit(m, clean, corrupt, " Mary", "", tokenizer=tok)
    c = find_circuit(m, clean, corrupt, " Mary", " John", tokenizer=tok, n_edges=5, curve=[1, 5])
    assert c.target == {"token": "\u2423Mary", "token_id": tok.encode(" Mary")[0]}
    assert len(c.clean_tokens) == len(tok.encode(clean))


def test_equal_metrics_give_an_undefined_recovered_fraction_not_a_division_by_zero():
    m = make_model(SMALL, seed=1)
    with torch.no_grad():
        m.out_head.weight[DISTRACTOR] = m.out_head.weight[TARGET]          # M is 0 on every prompt
    c = find_circuit(m, CLEAN, CORRUPT, TARGET, DISTRACTOR, n_edges=4)
    assert c.recovered is None and all(p["recovered"] is None for p in c.curve)
    assert "undefined" in c.note
    json.loads(c.to_json())
    recovered_curve_figure(c)


# --------------------------------------------------------------------------- export


def test_json_and_csv_round_trip_the_edges(circuit):
    again = Circuit.from_json(circuit.to_json())
    assert again == circuit
    rows = list(csv.DictReader(io.StringIO(circuit.to_csv())))
    assert [r["edge"] for r in rows] == [e["edge"] for e in circuit.edges]
    assert [float(r["score"]) for r in rows] == [e["score"] for e in circuit.edges]
    assert [r["in_circuit"] == "True" for r in rows] == [e["in_circuit"] for e in circuit.edges]
    only = list(csv.DictReader(io.StringIO(circuit.to_csv(circuit_only=True))))
    assert [r["edge"] for r in only] == [e["edge"] for e in circuit.circuit_edges()]
    data = json.loads(circuit.to_json())
    assert len(data["edges"]) == circuit.graph.n_edges
    assert [e["rank"] for e in data["edges"]] == list(range(1, circuit.graph.n_edges + 1))
    assert all(abs(a["score"]) >= abs(b["score"]) for a, b in zip(data["edges"], data["edges"][1:]))


def test_edge_names_are_the_graphs(circuit):
    g = circuit.graph
    for e in circuit.edges[:10]:
        assert e["edge"] == edge_name(e["upstream"], e["downstream"])
        assert g.edge_index(e["edge"]) == (g.up_index(e["upstream"]), g.down_index(e["downstream"]))
    with pytest.raises(ValueError, match="not upstream"):
        g.edge_index("L1H0->L0 MLP")


# --------------------------------------------------------------------------- figures


def test_graph_figure_draws_each_circuit_edge_once_with_its_score(circuit):
    fig = circuit_graph_figure(circuit)
    lines = [t for t in fig.data if t.meta == "edges"]
    assert sum(list(t.x).count(None) for t in lines) == len(circuit.circuit_edges())
    (hover,) = [t for t in fig.data if t.meta == "edge hover"]
    assert len(hover.x) == len(circuit.circuit_edges())
    for e, text in zip(circuit.circuit_edges(), hover.text):
        assert f"{e['score']:+.4g}" in text and e["upstream"] in text and e["downstream"] in text
    (heads,) = [t for t in fig.data if t.meta == "heads"]
    assert len(heads.x) == circuit.n_layers * circuit.n_heads
    assert [list(c) for c in heads.customdata][:2] == [[0, 0], [0, 1]]
    (others,) = [t for t in fig.data if t.meta == "other nodes"]
    assert len(others.x) == circuit.n_layers + 2
    colours = {t.line.color for t in lines}
    assert colours <= {"#2166ac", "#b2182b"}
    pos = node_positions(circuit.n_layers, circuit.n_heads)
    assert pos["input"][1] < pos["L0H0"][1] < pos["L0 MLP"][1] < pos["L1H0"][1] < pos["logits"][1]


def test_curve_and_scatter_figures(circuit):
    fig = recovered_curve_figure(circuit)
    assert list(fig.data[0].x) == [p["n_edges"] for p in circuit.curve]
    assert list(fig.data[1].y) == [circuit.recovered]
    fig = head_check_figure(circuit)
    line, dots = fig.data
    assert line.x[0] == line.y[0] and line.x[1] == line.y[1]
    assert len(dots.x) == len(circuit.heads)
    assert list(dots.x) == [h["attribution"] for h in circuit.heads]
    assert [list(c) for c in dots.customdata] == [[h["layer"], h["head"]] for h in circuit.heads]
    empty = head_check_figure(find_circuit(make_model(SMALL, seed=1), CLEAN, CORRUPT, TARGET, DISTRACTOR, curve=None))
    assert "check_heads=True" in empty.layout.annotations[0].text
