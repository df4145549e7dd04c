"""Analytic parameter breakdown vs counted models (meta-device builds for the big presets)."""
from __future__ import annotations

import json

import pytest
import torch

from playground.config import GPT_CONFIG_124M, PRESETS, GPTConfig
from playground.inspection.params import check_parameters, param_breakdown
from playground.inspection.figures.params import params_bar, params_treemap
from playground.model import GPTModel

EXPECTED = {  # preset: (as configured, tied, untied)
    "book-124M": (163_009_536, 124_412_160, 163_009_536),
    "gpt2": (124_439_808, 124_439_808, 163_037_184),
    "gpt2-medium": (354_823_168, 354_823_168, None),
    "gpt2-large": (774_030_080, 774_030_080, None),
    "gpt2-xl": (1_557_611_200, 1_557_611_200, None),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_analytic_totals_for_the_presets(name):
    bd = param_breakdown(PRESETS[name])
    total, tied, untied = EXPECTED[name]
    assert bd.total == total and bd.total_tied == tied
    if untied is not None:
        assert bd.total_untied == untied
    assert bd.memory() == {"fp32": 4 * total, "bf16": 2 * total, "int8": total}


@pytest.mark.parametrize("name", list(PRESETS))
def test_analytic_equals_counted_for_every_preset(name):
    with torch.device("meta"):   # shapes without memory: gpt2-xl builds instantly
        model = GPTModel(PRESETS[name])
    check = check_parameters(model)
    assert check.ok, check.mismatches
    assert check.counted == EXPECTED[name][0]
    if PRESETS[name].tie_embeddings:
        assert ("tok_emb.weight", "out_head.weight") in check.shared


@pytest.mark.parametrize("cfg", [
    dict(vocab_size=100, context_length=16, emb_dim=8, n_heads=2, n_layers=2),
    dict(vocab_size=100, context_length=16, emb_dim=12, n_heads=3, n_layers=3, qkv_bias=True, tie_embeddings=True),
])
def test_analytic_equals_counted_on_real_small_models(cfg):
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(**cfg))
    check = check_parameters(model)
    assert check.ok and check.counted == model.num_parameters() == param_breakdown(model.cfg).total


def test_a_mismatch_is_reported_not_hidden():
    cfg = GPTConfig(vocab_size=100, context_length=16, emb_dim=8, n_heads=2, n_layers=2)
    model = GPTModel(cfg)
    model.out_head.weight = model.tok_emb.weight          # tied by hand, config says untied
    check = check_parameters(model)
    assert not check.ok
    assert any("output head" in m for m in check.mismatches)
    assert any(m.startswith("total") for m in check.mismatches)
    model.extra = torch.nn.Linear(2, 2)
    assert any("extra.weight" in m for m in check_parameters(model).mismatches)


def test_the_book_dict_and_the_derivation():
    bd = param_breakdown(GPT_CONFIG_124M)
    lines = bd.derivation()
    assert lines[0] == "token embedding (tok_emb): vocab_size x emb_dim = 50,257 x 768 = 38,597,376"
    assert "total without weight tying: 163,009,536" in lines
    assert "total with weight tying (head = token embedding): 124,412,160" in lines
    assert any("621.83 MiB" in line for line in lines)   # the book's "Total size of the model: 621.83 MB"
    assert bd.per_block == 7_085_568
    row = {r["name"]: r for r in bd.rows()}["feed-forward first layer (ff.layers[0])"]
    assert row["filled"] == "768 x 3,072 + 3,072" and row["total"] == 12 * 2_362_368


def test_export_and_figures():
    bd = param_breakdown(PRESETS["gpt2"])
    data = json.loads(bd.to_json())
    assert data["summary"]["total"] == 124_439_808 and len(data["lines"]) == len(bd.lines)
    assert bd.to_csv().splitlines()[0] == "group,part,name,formula,filled,count,repeat,total,share,note"
    tree = params_treemap(bd)
    t = tree.data[0]
    assert t.values[0] == bd.total and t.parents[0] == ""
    values = dict(zip(t.ids, t.values))
    for node, parent in zip(t.ids, t.parents):     # branchvalues="total": children sum to the parent
        if parent:
            kids = [values[k] for k, p in zip(t.ids, t.parents) if p == parent]
            assert sum(kids) == values[parent]
    assert "output head" not in t.ids                  # tied: no separate head box
    assert "output head" in params_treemap(param_breakdown(PRESETS["book-124M"])).data[0].ids
    bar = params_bar(bd)
    assert sum(sum(tr.x) for tr in bar.data) == bd.total
    assert {tr.name for tr in bar.data} == {"embeddings", "transformer blocks", "final norm"}
    assert json.loads(check_parameters(GPTModel(GPTConfig(vocab_size=10, context_length=4, emb_dim=4,
                                                          n_heads=1, n_layers=1))).to_json())["ok"]
