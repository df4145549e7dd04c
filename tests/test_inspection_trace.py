"""Shape trace on tiny seeded models: real shapes, execution order, collapsing, both languages."""
from __future__ import annotations

import json

import pytest
import torch

from playground.config import GPTConfig
from playground.inspection.trace import shape_trace
from playground.inspection.figures.trace import trace_figure
from playground.inspection.trace_text import STEPS
from playground.model import GPTModel


def tiny_model(seed: int = 0, **overrides) -> GPTModel:
    cfg = dict(vocab_size=100, context_length=32, emb_dim=16, n_heads=2, n_layers=3)
    cfg.update(overrides)
    torch.manual_seed(seed)
    return GPTModel(GPTConfig(**cfg)).eval()


BLOCK_STEPS = ["norm1", "query", "key", "value", "split_heads", "scores", "mask", "softmax", "context",
               "out_proj", "resid_mid", "norm2", "ff_hidden", "gelu", "ff_out", "resid_post"]


@pytest.mark.parametrize("cfg,t", [
    (dict(), 1),
    (dict(), 7),
    (dict(emb_dim=24, n_heads=3, n_layers=2, vocab_size=50, qkv_bias=True), 5),
    (dict(emb_dim=8, n_heads=1, n_layers=1, context_length=12, tie_embeddings=True), 12),
])
def test_shapes_match_the_config(cfg, t):
    m = tiny_model(**cfg)
    c = m.cfg
    b, e, h, d, v = 1, c.emb_dim, c.n_heads, c.head_dim, c.vocab_size
    tr = shape_trace(m, list(range(t)))
    keys = [r.key for r in tr.rows]
    assert keys == ["token_ids", "tok_emb", "pos_emb", "embed"] + BLOCK_STEPS * c.n_layers + ["final_norm", "logits"]
    assert [r.order for r in tr.rows] == list(range(len(tr.rows)))
    expected_out = {
        "token_ids": [(b, t)], "tok_emb": [(b, t, e)], "pos_emb": [(t, e)], "embed": [(b, t, e)],
        "norm1": [(b, t, e)], "query": [(b, t, e)], "key": [(b, t, e)], "value": [(b, t, e)],
        "split_heads": [(b, h, t, d)], "scores": [(b, h, t, t)], "mask": [(b, h, t, t)],
        "softmax": [(b, h, t, t)], "context": [(b, t, e)], "out_proj": [(b, t, e)],
        "resid_mid": [(b, t, e)], "norm2": [(b, t, e)], "ff_hidden": [(b, t, 4 * e)],
        "gelu": [(b, t, 4 * e)], "ff_out": [(b, t, e)], "resid_post": [(b, t, e)],
        "final_norm": [(b, t, e)], "logits": [(b, t, v)],
    }
    for r in tr.rows:
        assert list(r.outputs) == expected_out[r.key], r.key
    rows = {r.key: r for r in tr.rows if r.block in (None, 0)}
    assert rows["tok_emb"].inputs == ((b, t),) and rows["pos_emb"].inputs == ((t,),)
    assert rows["split_heads"].inputs == ((b, t, e),) * 3
    assert rows["split_heads"].input_text() == f"3 × ({b}, {t}, {e})"
    assert rows["scores"].inputs == ((b, h, t, d), (b, h, t, d))
    assert rows["context"].inputs == ((b, h, t, t), (b, h, t, d))
    assert rows["ff_out"].inputs == ((b, t, 4 * e),)
    assert rows["query"].params == e * e + (e if c.qkv_bias else 0)
    assert rows["ff_hidden"].params == e * 4 * e + 4 * e
    assert rows["logits"].params == (0 if c.tie_embeddings else e * v)
    assert tr.total_params == m.num_parameters()


def test_twelve_layers_collapse_blocks_1_to_11():
    m = tiny_model(emb_dim=8, n_heads=2, n_layers=12)
    tr = shape_trace(m, [1, 2, 3, 4])
    rows = tr.collapsed()
    assert [r.key for r in rows] == ["token_ids", "tok_emb", "pos_emb", "embed"] + BLOCK_STEPS + \
        ["blocks", "final_norm", "logits"]
    group = rows[4 + len(BLOCK_STEPS)]
    assert group.repeat == 11 and group.title == "blocks 1-11 (x 11)" and "x 11" in group.title_zh
    assert len(group.children) == 11 * len(BLOCK_STEPS)
    assert {r.block for r in group.children} == set(range(1, 12))
    per_block = sum(r.params for r in tr.block_rows(0))
    assert group.params == 11 * per_block
    assert group.inputs == ((1, 4, 8),) and group.outputs == ((1, 4, 8),)
    assert sum(r.params for r in rows) == m.num_parameters()
    assert len(tr.table()) == len(rows) and len(tr.table(expand=True)) == len(tr.rows)
    assert len(shape_trace(tiny_model(n_layers=1), [1]).collapsed()) == 4 + len(BLOCK_STEPS) + 2


def test_explanations_in_english_and_chinese():
    tr = shape_trace(tiny_model(tie_embeddings=True), [5, 6])
    en, zh = tr.table(lang="en"), tr.table(lang="zh")
    for a, b in zip(en, zh):
        assert a["explanation"] and b["explanation"] and a["explanation"] != b["explanation"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in b["explanation"])
    assert "tied" in en[-1]["explanation"] and "共享" in zh[-1]["explanation"]
    assert all(s.en.endswith(".") and s.zh.endswith("。") for s in STEPS.values())


def test_long_prompt_is_cropped_with_a_note():
    tr = shape_trace(tiny_model(), list(range(50)))
    assert tr.cropped and tr.offset == 18 and "cropped" in tr.note
    assert tr.rows[0].outputs == ((1, 32),)
    assert shape_trace(tiny_model(), list(range(50)), max_tokens=5).rows[0].outputs == ((1, 5),)


def test_no_hooks_left_and_export():
    m = tiny_model()
    tr = shape_trace(m, [1, 2, 3])
    assert all(not mod._forward_hooks for mod in m.modules())
    data = json.loads(tr.to_json())
    assert data["total_params"] == m.num_parameters() and data["rows_zh"][0]["step"] == "词元 id"
    csv = tr.to_csv().splitlines()
    assert csv[0].startswith("order,block,step,module,input,output,symbolic,params")
    df = tr.to_dataframe()
    assert list(df["output"])[-1] == "(1, 3, 100)"


def test_figure_has_one_box_per_row_and_hover_in_both_languages():
    tr = shape_trace(tiny_model(n_layers=4), [1, 2, 3])
    n = len(tr.collapsed())
    fig = trace_figure(tr)
    boxes = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(boxes) == n and len(fig.data[0].hovertext) == n
    assert "(1, 2, 3, 3)" in " ".join(a.text for a in fig.layout.annotations)
    assert len([s for s in fig.layout.shapes if s.type == "path"]) == 2   # two shortcuts of block 0
    zh = trace_figure(tr, lang="zh")
    assert "词元" in zh.layout.title.text and "注意力" in " ".join(zh.data[0].hovertext)
    assert len([s for s in trace_figure(tr, expand=True).layout.shapes if s.type == "rect"]) == len(tr.rows)


def test_the_shapes_of_the_meta_pass_are_those_of_the_real_pass(monkeypatch):
    """The trace runs the model's code on the meta device (no arithmetic); its every row equals the rows of a
    real forward pass, and a model whose modules are not its class's own gets the real pass."""
    from playground.inspection import trace as trace_mod
    model = tiny_model()
    ids = list(range(3, 20))
    twin_rows = trace_mod.shape_trace(model, ids).rows
    assert trace_mod._shape_twin(model) is not None
    monkeypatch.setattr(trace_mod, "_shape_twin", lambda m: None)
    assert trace_mod.shape_trace(model, ids).rows == twin_rows
    monkeypatch.undo()
    changed = tiny_model()
    changed.trf_blocks[0].ff.layers[1] = torch.nn.ReLU()
    assert trace_mod._shape_twin(changed) is None
