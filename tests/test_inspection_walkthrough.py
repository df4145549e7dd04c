"""The walkthrough, the KV-cache view, the sampling tree and their figures, on tiny seeded models."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from playground.generation import generate
from playground.hooks import capture
from playground.inspection.figures.walkthrough import (MIN_FONT, MIN_HEIGHT, kv_cache_figure,
                                                       sampling_tree_figure, step_figure)
from playground.inspection.kv_view import count_work, kv_cache_trace, work_from_shapes
from playground.inspection.sampling_tree import sampling_tree
from playground.inspection.walkthrough import (STEP_IDS, VIEW_FEATURES, VIEW_POSITIONS, code_line_numbers,
                                               missing_code_lines, walkthrough)
from playground.sampling import SamplingParams, sampling_distribution
from playground.tokenizer import get_tokenizer
from tests.factories import TINY, make_model

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "The cat sat on the mat"
LAYER, HEAD = 1, 2


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer()


@pytest.fixture(scope="module")
def wt(model, tok):
    return walkthrough(model, PROMPT, LAYER, HEAD, tokenizer=tok)


@pytest.fixture(scope="module")
def captured(model, tok):
    """The hook points' tensors on the same prompt, captured independently of the walkthrough."""
    ids = torch.tensor([tok.encode(PROMPT)])
    weights = ("att.hook_scores", "att.hook_masked_scores", "att.hook_pattern")

    def wanted(name: str) -> bool:
        # watching the scores forces the explicit attention path: only in the block shown, as the
        # walkthrough does, so both runs take the same path and the numbers agree to the bit
        return not name.endswith(weights) or name.startswith(f"trf_blocks.{LAYER}.")
    with torch.inference_mode(), capture(model, wanted) as store:
        model(ids)
    return dict(store)


def crop(t: torch.Tensor, cols: int = VIEW_FEATURES) -> list:
    return t[:VIEW_POSITIONS, :cols].tolist()


# --- walkthrough ------------------------------------------------------------------------------

def test_step_ids_complete_and_in_order(wt):
    expected = ("token_ids", "tok_emb", "pos_emb", "input_embeddings", "norm1", "queries", "keys", "values",
                "attn_scores", "masked_scores", "attn_weights", "context_vec", "out_proj", "shortcut_1",
                "norm2", "ff_expand", "gelu", "ff_contract", "shortcut_2", "other_blocks", "final_norm",
                "logits", "probas", "next_token")
    assert STEP_IDS == expected
    assert tuple(s.id for s in wt.steps) == expected
    assert [s["id"] for s in wt.data()["steps"]] == list(expected)


def test_values_equal_the_hooked_tensors(wt, captured):
    p = f"trf_blocks.{LAYER}."
    d = TINY.head_dim
    plain = {  # step -> the tensor its values are the (batch 0) crop of
        "tok_emb": captured["hook_tok_emb"][0], "pos_emb": captured["hook_pos_emb"],
        "input_embeddings": captured["hook_embed"][0], "norm1": captured[p + "hook_norm1"][0],
        "queries": captured[p + "att.hook_q"][0, HEAD], "keys": captured[p + "att.hook_k"][0, HEAD],
        "values": captured[p + "att.hook_v"][0, HEAD],
        "context_vec": captured[p + "att.hook_z"][0, :, HEAD * d:(HEAD + 1) * d],
        "out_proj": captured[p + "hook_attn_out"][0], "shortcut_1": captured[p + "hook_resid_mid"][0],
        "norm2": captured[p + "hook_norm2"][0], "ff_expand": captured[p + "ff.hook_pre"][0],
        "gelu": captured[p + "ff.hook_post"][0], "ff_contract": captured[p + "hook_ff_out"][0],
        "shortcut_2": captured[p + "hook_resid_post"][0], "final_norm": captured["hook_final_norm"][0],
        "logits": captured["hook_logits"][0], "probas": torch.softmax(captured["hook_logits"][0], dim=-1),
    }
    for sid, t in plain.items():
        assert wt.step(sid).values == crop(t), sid
    square = {"attn_scores": p + "att.hook_scores", "attn_weights": p + "att.hook_pattern"}
    for sid, name in square.items():
        assert wt.step(sid).values == crop(captured[name][0, HEAD], VIEW_POSITIONS), sid
    masked = crop(captured[p + "att.hook_masked_scores"][0, HEAD], VIEW_POSITIONS)
    assert wt.step("masked_scores").values == [[None if v == -math.inf else v for v in row] for row in masked]
    assert wt.step("shortcut_1").extra["before"] == crop(captured[p + "hook_resid_pre"][0])
    assert wt.step("shortcut_2").extra["before"] == crop(captured[p + "hook_resid_mid"][0])
    assert wt.step("gelu").extra["input"] == crop(captured[p + "ff.hook_pre"][0])
    assert wt.step("token_ids").values == list(wt.token_ids)
    norms = [float(captured[f"trf_blocks.{b}.hook_resid_post"][0].norm(dim=-1).mean()) for b in range(TINY.n_layers)]
    assert wt.step("other_blocks").values == pytest.approx(norms, rel=1e-6)


def test_shapes_are_the_full_tensors(wt, captured):
    p = f"trf_blocks.{LAYER}."
    t = len(wt.token_ids)
    assert wt.step("token_ids").shape == (1, t)
    assert wt.step("queries").shape == tuple(captured[p + "att.hook_q"].shape) == (1, TINY.n_heads, t, TINY.head_dim)
    assert wt.step("attn_weights").shape == (1, TINY.n_heads, t, t)
    assert wt.step("ff_expand").shape == (1, t, 4 * TINY.emb_dim)
    assert wt.step("logits").shape == wt.step("probas").shape == (1, t, TINY.vocab_size)


def test_attention_weights_recomputed_by_hand(wt, captured):
    p = f"trf_blocks.{LAYER}."
    q, k = captured[p + "att.hook_q"][0, HEAD], captured[p + "att.hook_k"][0, HEAD]     # (T, D)
    t = q.shape[0]
    scores = q @ k.T
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), -torch.inf)
    weights = torch.softmax(scores / math.sqrt(q.shape[-1]), dim=-1)
    got = torch.tensor(wt.step("attn_weights").values)
    torch.testing.assert_close(got, weights[:VIEW_POSITIONS, :VIEW_POSITIONS])
    assert got.sum(-1).tolist() == pytest.approx([1.0] * t, abs=1e-5)
    assert wt.step("attn_weights").extra["row_sums"] == pytest.approx([1.0] * t, abs=1e-5)


def test_gelu_recomputed_by_hand(wt):
    x = torch.tensor(wt.step("gelu").extra["input"])
    gelu = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    torch.testing.assert_close(torch.tensor(wt.step("gelu").values), gelu, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_logits_recomputed_by_hand(model, wt, captured):
    x = captured[f"trf_blocks.{TINY.n_layers - 1}.hook_resid_post"][0]                # (T, E)
    norm = model.final_norm
    mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
    normed = norm.scale * (x - mean) / torch.sqrt(var + norm.eps) + norm.shift
    logits = normed @ model.out_head.weight.T                                          # (T, V)
    got = torch.tensor(wt.step("logits").values)
    torch.testing.assert_close(got, logits[:VIEW_POSITIONS, :VIEW_FEATURES], rtol=1e-4, atol=1e-4)
    best = int(logits[-1].argmax())
    nxt = wt.step("next_token").values
    assert nxt["id"] == best
    assert nxt["prob"] == pytest.approx(float(torch.softmax(logits[-1], -1)[best]), rel=1e-4)
    assert nxt["text"] == get_tokenizer().token_text(best)


def test_masked_cells_are_exactly_the_future(wt):
    for i, row in enumerate(wt.step("masked_scores").values):
        assert [v is None for v in row] == [j > i for j in range(len(row))]


def test_code_lines_exist_verbatim_in_the_source(wt):
    assert missing_code_lines() == []
    model_text = (ROOT / "playground/model.py").read_text(encoding="utf-8").splitlines()
    for step in wt.steps:
        assert step.code, step.id
        text = (ROOT / step.source).read_text(encoding="utf-8").splitlines()
        assert step.source == "playground/model.py" or step.id in ("probas", "next_token")
        numbers = code_line_numbers(step)
        assert list(step.lines) == numbers and len(numbers) == len(step.code), step.id
        for line, n in zip(step.code, numbers):
            assert line == line.strip() and line
            assert text[n - 1].strip() == line, (step.id, line)
        if step.source == "playground/model.py":
            assert all(any(r.strip() == line for r in model_text) for line in step.code)


def test_explanations_in_both_languages(wt):
    for step in wt.steps:
        en, zh = step.explanation["en"], step.explanation["zh"]
        assert en.strip() and zh.strip(), step.id
        assert any("\u4e00" <= c <= "\u9fff" for c in zh), step.id
        assert step.title and step.title_zh
    assert f"{TINY.emb_dim} numbers" in wt.step("tok_emb").explanation["en"]


def test_json_serialisable(wt):
    text = json.dumps(wt.data(), allow_nan=False)
    back = json.loads(text)
    assert set(back) >= {"tokens", "token_ids", "layer", "head", "note", "steps"}
    assert set(back["steps"][0]) >= {"id", "title", "code", "shape", "values", "explanation", "lines"}
    assert back["layer"] == LAYER and back["head"] == HEAD


def test_long_prompt_uses_its_first_8_tokens(model, tok):
    ids = list(range(100, 123))
    w = walkthrough(model, ids, tokenizer=tok)
    assert w.token_ids == tuple(ids[:8])
    assert w.note == "The walkthrough uses the first 8 tokens of your prompt (it has 23)."
    assert walkthrough(model, ids[:5], tokenizer=tok).note == ""
    short_ctx = make_model(TINY.__class__(**{**TINY.to_dict(), "context_length": 6}))
    w6 = walkthrough(short_ctx, ids)
    assert w6.token_ids == tuple(ids[:6]) and "first 6 tokens" in w6.note
    json.dumps(w.data(), allow_nan=False)


def test_one_block_model_and_bad_arguments(tok):
    one = make_model(TINY.__class__(**{**TINY.to_dict(), "n_layers": 1}))
    w = walkthrough(one, [1, 2, 3], 0, 0)
    assert w.step("other_blocks").extra["other_blocks"] == []
    assert len(w.step("other_blocks").values) == 1
    with pytest.raises(ValueError):
        walkthrough(one, [1, 2], layer=1)
    with pytest.raises(ValueError):
        walkthrough(one, [1, 2], head=TINY.n_heads)


# --- KV cache view ----------------------------------------------------------------------------

def _spy_cache(model, monkeypatch) -> list:
    made = []
    real = model.new_cache

    def spy(*args, **kwargs):
        cache = real(*args, **kwargs)
        made.append(cache)
        return cache
    monkeypatch.setattr(model, "new_cache", spy)
    return made


def test_kv_view_numbers_are_the_cache_objects(model, tok, monkeypatch):
    prompt = tok.encode(PROMPT)
    made = _spy_cache(model, monkeypatch)
    trace = kv_cache_trace(model, prompt, 5, tokenizer=tok)
    (cache,) = made
    p = len(prompt)
    assert cache.max_len == trace.max_len == p + 5
    assert cache.length == trace.steps[-1].cache_length == p + 5
    k = cache.layers[0].keys                                                          # (1, H, max_len, D)
    per_position = sum(t[:, :, :1].numel() * t.element_size() for layer in cache.layers
                       for t in (layer.keys, layer.values))
    allocated = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert [s.cache_length for s in trace.steps] == [p + i for i in range(6)]
    for s in trace.steps:
        assert s.kv_shape == (len(cache.layers), 2, k.shape[1], s.cache_length, k.shape[3])
        assert s.bytes_used == s.cache_length * per_position
        assert s.bytes_allocated == allocated
    # the cache holds exactly what an uncached run of the whole sequence computes
    full = torch.tensor([prompt + list(trace.generated_ids)])
    with torch.inference_mode(), capture(model, ["trf_blocks.0.att.hook_k"]) as store:
        model(full)
    torch.testing.assert_close(cache.layers[0].keys[:, :, :cache.length], store["trf_blocks.0.att.hook_k"])
    json.dumps(trace.data(), allow_nan=False)


def test_kv_view_work_counts(model, tok):
    prompt = tok.encode(PROMPT)
    trace = kv_cache_trace(model, prompt, 3, tokenizer=tok)
    h, d, layers = TINY.n_heads, TINY.head_dim, TINY.n_layers
    prefill, step = trace.steps[0], trace.steps[2]
    assert prefill.work.total == prefill.work.total_recompute
    t = step.cache_length
    assert (step.work.n_query, step.work.n_key) == (1, t)
    assert step.work.attention == layers * 2 * h * 1 * t * d
    assert step.work.attention_per_head == 2 * t * d and step.work.attention_per_head_recompute == 2 * t * t * d
    # the book's loop: re-run the whole sequence; count a real uncached forward pass
    full = torch.tensor([prompt + list(trace.generated_ids[:2])])
    assert full.shape[1] == t
    with torch.inference_mode(), count_work(model) as seen:
        model(full)
    real = work_from_shapes(seen)
    assert (step.work.attention_recompute, step.work.linear_recompute) == (real.attention, real.linear)
    assert step.work.linear * t == step.work.linear_recompute
    assert step.work.total < step.work.total_recompute


def test_kv_view_greedy_equals_generate(model, tok):
    prompt = tok.encode(PROMPT)
    trace = kv_cache_trace(model, prompt, 6, tokenizer=tok)
    expected = generate(model, prompt, 6, tokenizer=tok, temperature=0, stop_at_eot=False).ids
    assert list(trace.generated_ids) == expected
    assert not trace.stopped_at_context


def test_kv_view_stops_at_the_context(model, monkeypatch):
    ctx = TINY.context_length
    made = _spy_cache(model, monkeypatch)
    trace = kv_cache_trace(model, list(range(1, ctx - 3)), 10)
    assert trace.stopped_at_context
    assert len(trace.generated_ids) == 4 and trace.steps[-1].cache_length == ctx == made[0].max_len
    assert "Stopped at the context length" in trace.note and "generate_text_simple" in trace.note
    assert trace.note_zh
    with pytest.raises(ValueError):
        kv_cache_trace(model, [1, 2], -1)


# --- sampling tree ----------------------------------------------------------------------------

def test_tree_probabilities(model, tok):
    prompt = tok.encode("The cat sat")
    params = SamplingParams(temperature=0.8, top_k=None, top_p=0.95)
    tree = sampling_tree(model, prompt, depth=2, branch=3, temperature=0.8, top_p=0.95, tokenizer=tok)
    for node in tree.nodes():
        if node.token_id is None:
            continue
        parent = prompt + list(node.path[:-1])
        with torch.inference_mode():
            dist = sampling_distribution(model(torch.tensor([parent]))[:, -1], params)[0]
        assert node.prob == pytest.approx(float(dist[node.token_id]), rel=1e-4, abs=1e-7)
        assert node.depth == len(node.path)
    for node in tree.nodes():
        for c in node.children:
            assert c.path_prob == pytest.approx(node.path_prob * c.prob)
            assert c.path[:-1] == node.path
        probs = [c.prob for c in node.children]
        assert probs == sorted(probs, reverse=True)
    leaves = tree.leaves()
    assert len(leaves) == 9
    for leaf in leaves:
        product = 1.0
        for i in range(1, len(leaf.path) + 1):
            product *= next(n.prob for n in tree.nodes() if n.path == leaf.path[:i])
        assert leaf.path_prob == pytest.approx(product)
    assert tree.leaf_paths()[0] == prompt + list(leaves[0].path)
    assert tree.leaf_paths(include_prompt=False)[0] == list(leaves[0].path)
    json.dumps(tree.data(), allow_nan=False)


def test_tree_children_are_the_top_of_the_sampling_distribution(model):
    tree = sampling_tree(model, [464, 3797], depth=1, branch=3, temperature=1.3, top_k=2)
    with torch.inference_mode():
        dist = sampling_distribution(model(torch.tensor([[464, 3797]]))[:, -1],
                                     SamplingParams(temperature=1.3, top_k=2))[0]
    top = torch.topk(dist, 2)
    assert [c.token_id for c in tree.root.children] == top.indices.tolist()   # top-k 2: a third can't be drawn
    assert sum(c.prob for c in tree.root.children) == pytest.approx(1.0, abs=1e-6)


def test_tree_greedy_path_equals_greedy_generation(model, tok):
    prompt = tok.encode("The cat sat")
    tree = sampling_tree(model, prompt, depth=3, branch=2, temperature=1.5, top_k=40, tokenizer=tok)
    expected = generate(model, prompt, 3, tokenizer=tok, temperature=0, stop_at_eot=False).ids
    assert list(tree.greedy_ids) == expected
    greedy = [n for n in tree.nodes() if n.greedy and n.token_id is not None]
    assert [n.token_id for n in sorted(greedy, key=lambda n: n.depth)] == expected
    assert sorted(n.depth for n in greedy) == [1, 2, 3]


def test_tree_batches_one_forward_per_level(model):
    calls = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    try:
        sampling_tree(model, [1, 2, 3], depth=3, branch=3)
    finally:
        handle.remove()
    assert calls == [(1, 3), (3, 4), (9, 5)]


# --- figures ----------------------------------------------------------------------------------

def _font_sizes(obj, path=""):
    """Every font size set anywhere in a figure's JSON, with where it was."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.endswith("font") and isinstance(value, dict) and "size" in value:
                sizes = value["size"] if isinstance(value["size"], list) else [value["size"]]
                yield from ((f"{path}.{key}", s) for s in sizes)
            yield from _font_sizes(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _font_sizes(v, path)


def _check_readable(fig):
    spec = fig.to_plotly_json()
    assert spec["layout"]["font"]["size"] >= MIN_FONT
    assert spec["layout"]["height"] >= MIN_HEIGHT
    small = [(where, s) for where, s in _font_sizes(spec) if s < MIN_FONT]
    assert not small, small


def test_figures_build_for_every_step(wt):
    for sid in STEP_IDS:
        _check_readable(step_figure(wt, sid))
    masked = step_figure(wt, "masked_scores")
    assert any(tr.name == "masked" for tr in masked.data)
    weights = step_figure(wt, "attn_weights")
    assert any("Σ = 1.000" in " ".join(tr.text) for tr in weights.data if tr.type == "scatter")
    gelu = step_figure(wt, "gelu")
    assert [tr.mode for tr in gelu.data] == ["lines", "markers"]
    assert len(step_figure(wt, "shortcut_1").data) == 2
    with pytest.raises(KeyError):
        step_figure(wt, "nope")


def test_kv_and_tree_figures(model, tok):
    prompt = tok.encode(PROMPT)
    _check_readable(kv_cache_figure(kv_cache_trace(model, prompt, 4, tokenizer=tok)))
    tree = sampling_tree(model, prompt, depth=2, branch=3, tokenizer=tok)
    fig = sampling_tree_figure(tree)
    _check_readable(fig)
    red = [tr for tr in fig.data if tr.mode == "lines" and tr.line.width == 5]
    assert red and red[0].x.count(None) == 2          # two greedy edges for depth 2
