"""Experiments on tiny seeded models: surprisal, ablation, attribution, patching, comparison.

Every result is checked against a computation written out by hand from the
weights, not against the code under test.
"""
from __future__ import annotations

import copy
import json
import math
import threading

import plotly.graph_objects as go
import pytest
import torch

from playground.config import GPTConfig
from playground.hooks import capture
from playground.inspection.ablation import ablate, ablated, parse_heads, parse_mlps
from playground.inspection.attribution import direct_logit_attribution, single_token_id
from playground.inspection.compare import compare_prompts
from playground.inspection.figures.experiments import (ablation_figure, attribution_figure, comparison_figure,
                                                       patching_figure, surprisal_figure, surprisal_html)
from playground.inspection.patching import (logit_diff_metric, patch_all_positions, patch_grid, patch_heads,
                                            patch_residual, resid_pre_name)
from playground.inspection.surprisal import surprisal
from playground.model import GPTModel
from playground.tokenizer import get_tokenizer
from tests.factories import make_model

SMALL = GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0,
                  qkv_bias=True, tie_embeddings=False)
IDS = [5, 17, 3, 88, 41, 9, 60, 23]
CLEAN = [5, 17, 3, 88, 41, 9, 60, 23]
CORRUPT = [5, 17, 70, 88, 12, 9, 60, 23]      # positions 2 and 4 differ
TARGET, DISTRACTOR = 11, 42


@pytest.fixture(scope="module")
def model() -> GPTModel:
    return make_model(SMALL, seed=1)


@pytest.fixture(scope="module")
def gpt2_tiny() -> GPTModel:
    return make_model()          # TINY: GPT-2's vocabulary, tied head


def layer_norm(x: torch.Tensor, ln) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return ln.scale * (x - mean) / torch.sqrt(var + ln.eps) + ln.shift


# --------------------------------------------------------------------------- surprisal


def test_surprisal_is_minus_log2_softmax_by_hand(model):
    s = surprisal(model, IDS, top_k=5)
    with torch.no_grad():
        logits = model(torch.tensor([IDS]))[0]                               # (T, V)
    probs = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    want = [-math.log2(float(probs[i - 1, IDS[i]])) for i in range(1, len(IDS))]
    assert s.surprisal_bits[0] is None and s.top[0] is None and s.rank[0] is None
    assert s.surprisal_bits[1:] == pytest.approx(want, abs=1e-4)
    assert s.mean_bits == pytest.approx(sum(want) / len(want), abs=1e-4)
    assert s.perplexity == pytest.approx(2 ** s.mean_bits)
    for i in range(1, len(IDS)):
        order = torch.argsort(probs[i - 1], descending=True).tolist()
        assert s.rank[i] == order.index(IDS[i]) + 1
        assert [g["token_id"] for g in s.top[i]] == order[:5]
        assert s.top[i][0]["prob"] == pytest.approx(float(probs[i - 1, order[0]]), abs=1e-6)
    data = s.data()
    assert set(data) == {"tokens", "token_ids", "surprisal_bits", "top", "rank", "mean_bits", "perplexity", "note"}
    json.dumps(data)


def test_surprisal_single_token_cropping_and_empty(model, gpt2_tiny):
    one = surprisal(model, [4])
    assert one.surprisal_bits == (None,) and one.mean_bits is None and one.perplexity is None and one.note
    cropped = surprisal(model, list(range(40)))
    assert cropped.n_tokens == 32 and "cropped" in cropped.note
    with pytest.raises(ValueError, match="at least one token"):
        surprisal(gpt2_tiny, "", tokenizer=get_tokenizer())


# --------------------------------------------------------------------------- parsing heads and MLPs


def test_parse_heads_and_mlps():
    assert parse_heads("L4H1, L3H2", 6, 4) == [(4, 1), (3, 2)]
    assert parse_heads("l0h3 L1H0,L1H0;  L2 H1", 6, 4) == [(0, 3), (1, 0), (2, 1)]
    assert parse_heads("  ", 6, 4) == [] and parse_mlps("", 6) == []
    assert parse_mlps("2, 5 L1 mlp0", 6) == [2, 5, 1, 0]


@pytest.mark.parametrize("text, message", [
    ("L99H0", "L99H0: this model has 6 layers, numbered 0 to 5."),
    ("L0H9", "L0H9: each layer has 4 heads, numbered 0 to 3."),
    ("X3", "'X3' is not a head: write heads as L{layer}H{head}, e.g. L4H1."),
    ("L1H2, 7", "'7' is not a head"),
])
def test_parse_heads_errors(text, message):
    with pytest.raises(ValueError) as err:
        parse_heads(text, 6, 4)
    assert message in str(err.value)


def test_parse_mlps_errors():
    with pytest.raises(ValueError, match="MLP 6: this model has 6 layers, numbered 0 to 5."):
        parse_mlps("1, 6", 6)
    with pytest.raises(ValueError, match="'x2' is not a layer number"):
        parse_mlps("x2", 6)


# --------------------------------------------------------------------------- ablation


def test_ablating_everything_leaves_embeddings_and_out_proj_biases(model):
    """All heads off: z = 0, so each attention output is just out_proj.bias; all MLPs off: 0."""
    cfg = model.cfg
    heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    mlps = list(range(cfg.n_layers))
    ids = torch.tensor([IDS])
    with torch.no_grad():
        x = model.tok_emb.weight[ids[0]] + model.pos_emb.weight[: len(IDS)]    # (T, E)
        for block in model.trf_blocks:
            x = x + block.att.out_proj.bias
        want = layer_norm(x, model.final_norm) @ model.out_head.weight.T     # (T, V)
        with ablated(model, heads, mlps):
            got = model(ids)[0]
        intact = model(ids)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(intact, want, atol=1e-3)                      # the hooks are gone again
    a = ablate(model, IDS, heads, mlps, top_k=5)
    p = torch.softmax(want[-1], -1)
    assert [r["token_id"] for r in a.after] == torch.topk(p, 5).indices.tolist()
    assert a.after[0]["prob"] == pytest.approx(float(p.max()), abs=1e-5)


def test_one_head_through_hooks_equals_zeroed_out_proj_columns(model):
    layer, head = 1, 2
    d = model.cfg.head_dim
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        by_hand.trf_blocks[layer].att.out_proj.weight[:, head * d:(head + 1) * d] = 0
        ids = torch.tensor([IDS])
        with ablated(model, [(layer, head)]):
            got = model(ids)
        want, intact = by_hand(ids), model(ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(intact, want, atol=1e-3)
    a = ablate(model, IDS, [(layer, head)])
    p, q = torch.softmax(intact[0, -1].double(), -1), torch.softmax(want[0, -1].double(), -1)
    assert a.kl_bits == pytest.approx(float((p * (p / q).log2()).sum()), abs=1e-5)
    assert a.kl_bits > 0 and a.data()["heads"] == ["L1H2"]


def test_ablating_one_mlp_equals_the_block_without_it(model):
    ids = torch.tensor([IDS])
    with torch.no_grad():
        x = model.tok_emb(ids) + model.pos_emb(torch.arange(len(IDS)))
        b0, b1 = model.trf_blocks
        x = b0(x)
        x = x + b1.att(b1.norm1(x))                                          # block 1 with no MLP
        want = model.out_head(model.final_norm(x))
        with ablated(model, mlps=[1]):
            got = model(ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_nothing_ablated_and_greedy_continuation_under_hooks(model):
    same = ablate(model, IDS, [], [])
    assert same.kl_bits == pytest.approx(0.0, abs=1e-9) and same.before == same.after and same.note

    def rerun_greedy(n: int) -> list[int]:
        seq = list(IDS)
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
        return seq[len(IDS):]

    a = ablate(model, IDS, [(0, 1), (1, 3)], [0], continue_tokens=6)
    with torch.no_grad():
        want_before = rerun_greedy(6)
        with ablated(model, [(0, 1), (1, 3)], [0]):
            want_after = rerun_greedy(6)
    assert a.greedy_before["token_ids"] == want_before
    assert a.greedy_after["token_ids"] == want_after       # the hooks fired on every cached step
    assert want_before != want_after
    capped = ablate(model, list(range(30)), [(0, 0)], continue_tokens=10)
    assert len(capped.greedy_after["token_ids"]) == 2 and "Continued 2" in capped.note
    with pytest.raises(ValueError, match="L5H0: this model has 2 layers"):
        ablate(model, IDS, [(5, 0)])


def test_ablation_on_the_fast_decoders_weights_equals_the_hooked_model():
    """With the fp32 fast weights prepared, both continuations run on them (row 1 edited as the hooks edit):
    the same top tokens, KL and greedy ids as through the hooks, for heads and MLPs, and the same refusals."""
    from playground.fast_decode import fast_weights
    from playground.inspection.fast_ablation import fast_pair_forward
    m = make_model(SMALL, seed=4)
    hooked = [ablate(m, IDS, heads, mlps, continue_tokens=8) for heads, mlps in (([(0, 1), (1, 3)], [0]),
                                                                                  ([(1, 0)], []), ([], [1]))]
    fast_weights(m, "fp32")
    assert fast_pair_forward(m, len(IDS) + 3, [(1, 0)], []) is not None              # the fast path is taken
    fast = [ablate(m, IDS, heads, mlps, continue_tokens=8) for heads, mlps in (([(0, 1), (1, 3)], [0]),
                                                                                ([(1, 0)], []), ([], [1]))]
    for a, b in zip(hooked, fast):
        assert a.greedy_before == b.greedy_before and a.greedy_after == b.greedy_after
        assert [r["token_id"] for r in a.after] == [r["token_id"] for r in b.after]
        assert a.kl_bits == pytest.approx(b.kl_bits, abs=1e-4)
    assert any(a.greedy_before != a.greedy_after for a in fast)
    with pytest.raises(ValueError, match="L5H0: this model has 2 layers"):
        ablate(m, IDS, [(5, 0)])


def test_ablation_hooks_act_only_in_the_thread_that_attached_them(model):
    ids = torch.tensor([IDS])
    with torch.no_grad():
        intact = model(ids)
        seen = {}
        with ablated(model, [(0, 0), (1, 1)], [0]):
            worker = threading.Thread(target=lambda: seen.setdefault("other", model(ids)))
            worker.start()
            worker.join()
            mine = model(ids)
    torch.testing.assert_close(seen["other"], intact)
    assert not torch.allclose(mine, intact, atol=1e-3)


def test_ablation_text_and_empty_prompt(gpt2_tiny):
    tok = get_tokenizer()
    a = ablate(gpt2_tiny, "The cat sat on the", [(0, 0)], tokenizer=tok, continue_tokens=3)
    assert a.greedy_after["text"] == tok.decode(a.greedy_after["token_ids"]) and len(a.before) == 10
    json.dumps(a.data())
    with pytest.raises(ValueError, match="at least one token"):
        ablate(gpt2_tiny, "", [(0, 0)], tokenizer=tok)


# --------------------------------------------------------------------------- attribution


@pytest.mark.parametrize("distractor", [DISTRACTOR, None])
def test_attribution_parts_sum_to_the_logit_difference(model, distractor):
    attr = direct_logit_attribution(model, IDS, TARGET, distractor)
    with torch.no_grad():
        logits = model(torch.tensor([IDS]))[0, -1]
    want = float(logits[TARGET] - (logits[distractor] if distractor is not None else 0))
    assert attr.actual == pytest.approx(want, abs=1e-4)
    assert attr.total == pytest.approx(attr.actual, abs=1e-4)
    names = [c["name"] for c in attr.components]
    assert names[:6] == ["embed", "L0H0", "L0H1", "L0H2", "L0H3", "L0 out_proj bias"]
    assert names[6] == "L0 MLP" and names[-1] == "final_norm shift" and len(names) == 1 + 2 * (4 + 2) + 1
    grid = attr.head_grid()
    assert len(grid) == 2 and len(grid[0]) == 4 and grid[1][3] == attr.value("L1H3")
    json.dumps(attr.data())


def test_one_heads_attribution_by_hand(model):
    layer, head = 1, 2
    d = model.cfg.head_dim
    attr = direct_logit_attribution(model, IDS, TARGET, DISTRACTOR)
    with torch.no_grad(), capture(model, [f"trf_blocks.{layer}.att.hook_z", "trf_blocks.1.hook_resid_post"]) as got:
        model(torch.tensor([IDS]))
    z = got[f"trf_blocks.{layer}.att.hook_z"][0, -1, head * d:(head + 1) * d]          # (D,)
    w = model.trf_blocks[layer].att.out_proj.weight[:, head * d:(head + 1) * d].detach()  # (E, D)
    c = z @ w.T                                                                         # (E,)
    resid = got["trf_blocks.1.hook_resid_post"][0, -1]
    sigma = torch.sqrt(((resid - resid.mean()) ** 2).mean() + 1e-5)
    with torch.no_grad():
        direction = model.out_head.weight[TARGET] - model.out_head.weight[DISTRACTOR]
        want = float(((c - c.mean()) / sigma * model.final_norm.scale) @ direction)
    assert attr.value(f"L{layer}H{head}") == pytest.approx(want, abs=1e-4)
    assert want != 0


def test_attribution_on_gpt2_vocab_with_text(gpt2_tiny):
    tok = get_tokenizer()
    target = single_token_id(tok, " mat")
    attr = direct_logit_attribution(gpt2_tiny, "The cat sat on the", target, single_token_id(tok, " dog"),
                                    tokenizer=tok)
    assert attr.total == pytest.approx(attr.actual, abs=1e-4)
    assert attr.target == {"token": "\u2423mat", "token_id": target}


def test_single_token_errors():
    tok = get_tokenizer()
    assert single_token_id(tok, " Paris") == tok.encode(" Paris")[0]
    with pytest.raises(ValueError) as err:
        single_token_id(tok, " Paris France")
    assert str(err.value).startswith('Target " Paris France" is 2 tokens: [" Paris", " France"] — give one token')
    assert '" mat" and "mat" differ' in str(err.value)
    with pytest.raises(ValueError, match="Distractor is empty"):
        single_token_id(tok, "", what="Distractor")


# --------------------------------------------------------------------------- patching


def test_patching_every_position_restores_everything(model):
    for layer in range(model.cfg.n_layers):
        assert patch_all_positions(model, CLEAN, CORRUPT, layer, TARGET, DISTRACTOR) == pytest.approx(1.0, abs=1e-4)


def test_patching_grid_by_hand_and_nothing_restores_nothing(model):
    p = patch_residual(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    assert p.layers == (0, 1) and len(p.restored) == 2 and len(p.restored[0]) == len(CLEAN)
    # Block 0's input is the embedding: where the tokens agree, patching changes nothing.
    for t in range(len(CLEAN)):
        if CLEAN[t] == CORRUPT[t]:
            assert p.restored[0][t] == pytest.approx(0.0, abs=1e-5)
    assert any(abs(v) > 1e-3 for v in p.restored[0])
    # One cell by hand: replace the corrupted embedding at position 2 by the clean one.
    with torch.no_grad():
        def run(ids, swap=None):
            x = model.tok_emb(torch.tensor([ids])) + model.pos_emb(torch.arange(len(ids)))
            if swap is not None:
                x[0, swap] = model.tok_emb.weight[CLEAN[swap]] + model.pos_emb.weight[swap]
            for block in model.trf_blocks:
                x = block(x)
            logits = model.out_head(model.final_norm(x))[0, -1]
            return float(logits[TARGET] - logits[DISTRACTOR])
        clean, corrupt, patched = run(CLEAN), run(CORRUPT), run(CORRUPT, swap=2)
    assert p.ld_clean == pytest.approx(clean, abs=1e-4) and p.ld_corrupted == pytest.approx(corrupt, abs=1e-4)
    assert p.restored[0][2] == pytest.approx((patched - corrupt) / (clean - corrupt), abs=1e-4)
    # A patch that writes nothing restores nothing.
    ids = torch.tensor([CORRUPT])
    grid = patch_grid(model, ids, [0, 1], range(len(CORRUPT)), resid_pre_name, lambda act, l, t: None,
                      logit_diff_metric(TARGET, DISTRACTOR))
    torch.testing.assert_close(grid, torch.full_like(grid, p.ld_corrupted), atol=1e-5, rtol=0)


def test_batched_and_one_by_one_patching_agree(model):
    batched = patch_residual(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    chunked = patch_residual(model, CLEAN, CORRUPT, TARGET, DISTRACTOR, batch_size=3)
    single = patch_residual(model, CLEAN, CORRUPT, TARGET, DISTRACTOR, one_by_one=True)
    for other in (chunked, single):
        torch.testing.assert_close(torch.tensor(other.restored), torch.tensor(batched.restored), atol=1e-4, rtol=0)
    assert single.mode == "one by one" and single.forwards == 2 + 2 * len(CLEAN)
    # clean, corrupted, the corrupted cache, then one packed pass per layer (each runs only what its patch changes)
    assert batched.forwards == 3 + 2
    heads = patch_heads(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)
    heads_single = patch_heads(model, CLEAN, CORRUPT, TARGET, DISTRACTOR, one_by_one=True)
    assert len(heads.restored) == 2 and len(heads.restored[0]) == 4
    torch.testing.assert_close(torch.tensor(heads.restored), torch.tensor(heads_single.restored), atol=1e-4, rtol=0)
    json.dumps(batched.data())


@pytest.mark.parametrize("rows, fast", [(None, False), (1, False), (4, False), (None, True), (2, True)])
def test_patching_from_the_corrupted_cache_equals_whole_forwards(rows, fast, clean_acts):
    """The packed suffix passes (blocks from the patched layer, positions from the patched one, keys and values
    before it from the corrupted run) give every cell of the whole-forward grid, on 4 layers with qkv bias."""
    cfg = GPTConfig(vocab_size=97, context_length=32, emb_dim=48, n_heads=6, n_layers=4, drop_rate=0.0,
                    qkv_bias=True)
    m = make_model(cfg, seed=3)
    if fast:                                                  # the suffix passes on the fast decoder's weights
        from playground.fast_decode import fast_weights
        from playground.fast_decode import ready_fast_weights
        fast_weights(m, "fp32")
        assert ready_fast_weights(m, "fp32") is not None
    clean = [5, 17, 3, 88, 41, 9, 60, 23, 7, 7, 2, 90]
    corrupt = [5, 17, 3, 88, 41, 9, 61, 23, 8, 7, 2, 90]     # agree up to position 5
    fast = patch_residual(m, clean, corrupt, TARGET, DISTRACTOR, batch_size=rows)
    whole = patch_grid(m, torch.tensor([corrupt]), range(4), range(len(corrupt)), resid_pre_name,
                       lambda act, l, t: act.__setitem__(t, clean_acts[l][t]), logit_diff_metric(TARGET, DISTRACTOR))
    restored = (whole.double() - fast.ld_corrupted) / (fast.ld_clean - fast.ld_corrupted)
    torch.testing.assert_close(torch.tensor(fast.restored, dtype=torch.float64), restored, atol=1e-4, rtol=0)
    # Where the prompts still agree, the patch writes what was there: nothing is run and nothing restored.
    assert all(fast.restored[l][t] == 0.0 for l in range(4) for t in range(6))
    assert any(abs(fast.restored[l][t]) > 1e-3 for l in range(4) for t in range(6, 12))


@pytest.fixture(scope="module")
def clean_acts():
    cfg = GPTConfig(vocab_size=97, context_length=32, emb_dim=48, n_heads=6, n_layers=4, drop_rate=0.0,
                    qkv_bias=True)
    m = make_model(cfg, seed=3)
    with capture(m, [resid_pre_name(l) for l in range(4)]) as got:
        with torch.no_grad():
            m(torch.tensor([[5, 17, 3, 88, 41, 9, 60, 23, 7, 7, 2, 90]]))
    return {l: got[resid_pre_name(l)][0] for l in range(4)}


def test_patching_errors(model, gpt2_tiny):
    tok = get_tokenizer()
    with pytest.raises(ValueError) as err:
        patch_residual(gpt2_tiny, "The cat sat on the mat", "A cat sat on a big mat", 0, 1, tokenizer=tok)
    msg = str(err.value)
    assert msg.startswith("The two prompts must have the same number of tokens: clean has 6 (")
    assert "corrupted has 7 (" in msg and "\u2423mat" in msg
    with pytest.raises(ValueError, match="nothing to restore"):
        patch_residual(model, CLEAN, CLEAN, TARGET, DISTRACTOR)
    with pytest.raises(ValueError, match="at least one token"):
        patch_residual(gpt2_tiny, "", "", 0, 1, tokenizer=tok)


# --------------------------------------------------------------------------- comparison


def test_compare_prompts(model):
    c = compare_prompts(model, CLEAN, CORRUPT, top_k=5)
    with torch.no_grad():
        pa = torch.softmax(model(torch.tensor([CLEAN]))[0, -1].double(), -1)
        pb = torch.softmax(model(torch.tensor([CORRUPT]))[0, -1].double(), -1)
    assert c.kl_bits == pytest.approx(float((pa * (pa / pb).log2()).sum()), abs=1e-6)
    assert [r["token_id"] for r in c.a.top] == torch.topk(pa, 5).indices.tolist()
    assert [d["position"] for d in c.diff] == [2, 4] and c.common_prefix == 2
    delta = (pb - pa).abs()
    assert c.moved[0]["token_id"] == int(delta.argmax()) and len(c.moved) == 10
    assert [abs(m["delta"]) for m in c.moved] == sorted((abs(m["delta"]) for m in c.moved), reverse=True)
    assert len(c.a.lens) == 3 and c.a.lens[-1]["token_id"] == c.a.top[0]["token_id"]
    json.dumps(c.data())
    same = compare_prompts(model, CLEAN, CLEAN)
    assert same.kl_bits == pytest.approx(0.0, abs=1e-9) and same.diff == () and same.note
    unequal = compare_prompts(model, CLEAN, CLEAN[:5])
    assert unequal.diff is None and unequal.common_prefix == 5 and "different lengths" in unequal.note


def test_compare_empty_prompt(gpt2_tiny):
    with pytest.raises(ValueError, match="at least one token"):
        compare_prompts(gpt2_tiny, "Hello", "", tokenizer=get_tokenizer())


# --------------------------------------------------------------------------- figures


def _readable(fig: go.Figure) -> None:
    assert isinstance(fig, go.Figure)
    layout = fig.layout
    assert layout.height >= 360 and layout.font.size >= 16 and layout.title.font.size >= 16
    for axis in [a for a in dir(layout) if a.startswith(("xaxis", "yaxis"))]:
        ax = getattr(layout, axis)
        if ax is not None and ax.tickfont.size is not None:
            assert ax.tickfont.size >= 16
    for trace in fig.data:
        if getattr(trace, "textfont", None) is not None and trace.textfont.size is not None:
            assert trace.textfont.size >= 16
    fig.to_dict()


def test_figures_build(model):
    s = surprisal(model, IDS)
    attr = direct_logit_attribution(model, IDS, TARGET, DISTRACTOR)
    figs = [surprisal_figure(s), surprisal_figure(surprisal(model, list(range(30)))),
            ablation_figure(ablate(model, IDS, [(0, 1)], [1])), attribution_figure(attr),
            attribution_figure(direct_logit_attribution(model, IDS, TARGET)),
            patching_figure(patch_residual(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)),
            patching_figure(patch_heads(model, CLEAN, CORRUPT, TARGET, DISTRACTOR)),
            comparison_figure(compare_prompts(model, CLEAN, CORRUPT))]
    for fig in figs:
        _readable(fig)
    assert figs[3].data[0].zmid == 0 and figs[5].data[0].zmin == -1 and figs[5].data[0].zmax == 1


def test_surprisal_html_escapes_and_shows_whitespace(model, gpt2_tiny):
    labels = {5: "<script>alert(1)</script>", 17: " the", 3: '"quoted"'}
    s = surprisal(model, IDS, label_fn=lambda i: labels.get(i, f"t{i}"))
    out = surprisal_html(s)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "\u2423the" in out and "&quot;quoted&quot;" in out
    assert out.count("<span title=") == len(IDS) and "rank" in out
    html_text = surprisal_html(surprisal(gpt2_tiny, "a <b>bold</b>\nline", tokenizer=get_tokenizer()))
    assert "<b>" not in html_text and "\u21b5" in html_text
