"""What the model has learned: neurons, embedding PCA, saliency, q.k — each against a hand computation."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from playground.hooks import capture, hook_points
from playground.inspection.attention import capture_attention
from playground.inspection.embeddings import (check_words, default_word_lists, nearest_neighbours, pca,
                                              positional_pca, residual_pca, token_embedding_pca)
from playground.inspection.neurons import (direct_effect_vector, neuron_activations, neuron_direct_effect,
                                           top_neurons_at)
from playground.inspection.qk import qk_breakdown
from playground.inspection.saliency import gradient_x_input, integrated_gradients
from playground.tokenizer import get_tokenizer
from tests.factories import make_model

PROMPT = [464, 3797, 3332, 319, 262, 2603, 13, 383, 3290, 10357, 13]   # "The cat sat on the mat. The dog slept."


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer()


def assert_untouched(model) -> None:
    assert not any(p.has_hooks() for p in hook_points(model).values())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------- neurons


def test_direct_effect_matches_hand_computation(tiny_model, tok):
    layer, neuron = 1, 17
    w = tiny_model.trf_blocks[layer].ff.layers[2].weight[:, neuron].double()
    hand = (tiny_model.out_head.weight.double() @ (tiny_model.final_norm.scale.double() * (w - w.mean()))).detach()
    torch.testing.assert_close(direct_effect_vector(tiny_model, layer, neuron).double(), hand, rtol=1e-5, atol=1e-5)
    eff = neuron_direct_effect(tiny_model, layer, neuron, tokenizer=tok)
    assert [r["token_id"] for r in eff.top] == torch.topk(hand, 10).indices.tolist()
    assert [r["token_id"] for r in eff.bottom] == torch.topk(-hand, 10).indices.tolist()
    assert eff.top[0]["value"] == pytest.approx(float(hand.max()), rel=1e-5)
    assert eff.bottom[0]["value"] == pytest.approx(float(hand.min()), rel=1e-5)
    assert eff.top[0]["token"] and len(list(csv.DictReader(io.StringIO(eff.to_csv())))) == 20
    assert json.loads(eff.to_json())["layer"] == layer


def test_activations_and_top_neurons_match_a_brute_force_capture(tiny_model):
    L = tiny_model.cfg.n_layers
    with capture(tiny_model, [f"trf_blocks.{l}.ff.hook_post" for l in range(L)]) as store:
        tiny_model(torch.tensor([PROMPT]))
    ref = torch.stack([store[f"trf_blocks.{l}.ff.hook_post"][0] for l in range(L)])   # (L, T, 4E)
    acts = neuron_activations(tiny_model, PROMPT)
    torch.testing.assert_close(acts.acts, ref)
    top = top_neurons_at(tiny_model, PROMPT, 4)
    flat = ref[:, 4].reshape(-1)
    want = torch.topk(flat, 20)
    width = ref.shape[-1]
    assert [(n["layer"], n["neuron"]) for n in top.neurons] == [(int(i) // width, int(i) % width) for i in want.indices]
    assert [n["activation"] for n in top.neurons] == pytest.approx(want.values.tolist())
    assert top_neurons_at(tiny_model, PROMPT, -1).position == len(PROMPT) - 1
    assert_untouched(tiny_model)


# --------------------------------------------------------------------------- embeddings


def _same_up_to_sign(a: np.ndarray, b: np.ndarray) -> None:
    for c in range(a.shape[1]):
        sign = np.sign(a[:, c] @ b[:, c]) or 1.0
        np.testing.assert_allclose(a[:, c], sign * b[:, c], rtol=1e-4, atol=1e-4)


def test_pca_matches_numpy_svd():
    x = torch.randn(40, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(3, 0.1, 16)
    fit = pca(x)
    xc = x.double().numpy() - x.double().numpy().mean(0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    _same_up_to_sign(fit.coords.numpy(), (xc @ vt[:3].T))
    np.testing.assert_allclose(fit.explained.numpy(), (s[:3] ** 2) / (s ** 2).sum(), rtol=1e-5)


def test_token_pca_points_and_neighbours(tiny_model, tok):
    lists = {"months": ["March", "April", "May"]}
    view = token_embedding_pca(tiny_model, prompt=PROMPT, word_lists=lists, neighbours_of=" cat", n_neighbours=5,
                               tokenizer=tok)
    assert view.groups.count("months") == 3
    ids = list(view.ids)
    w = tiny_model.tok_emb.weight.detach().double().numpy()[ids]
    xc = w - w.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    _same_up_to_sign(view.coords.numpy(), xc @ vt[:3].T)
    cat = tok.encode(" cat")[0]
    unit = tiny_model.tok_emb.weight.detach().double()
    unit = unit / unit.norm(dim=1, keepdim=True)
    cos = unit @ unit[cat]
    cos[cat] = -2
    assert [n["token_id"] for n in view.neighbours] == torch.topk(cos, 5).indices.tolist()
    assert view.neighbours[0]["cosine"] == pytest.approx(float(cos.max()), rel=1e-5)
    assert [i for i, _ in nearest_neighbours(tiny_model, cat, 3)] == torch.topk(cos, 3).indices.tolist()


def test_shipped_word_lists_are_single_tokens(tok):
    for name, words in default_word_lists().items():
        assert check_words(tok, words)[1] == [], name


def test_positional_and_residual_pca(tiny_model):
    pos = positional_pca(tiny_model)
    assert pos.coords.shape == (tiny_model.cfg.context_length, 3) and pos.ids[-1] == tiny_model.cfg.context_length - 1
    res = residual_pca(tiny_model, PROMPT)
    L, T = tiny_model.cfg.n_layers, len(PROMPT)
    assert res.coords.shape == (L + 1, T, 3) and res.stages[0] == "embed"
    names = ["hook_embed"] + [f"trf_blocks.{l}.hook_resid_post" for l in range(L)]
    with capture(tiny_model, names) as store:
        tiny_model(torch.tensor([PROMPT]))
    stream = torch.cat([store[n][0] for n in names]).double().numpy()           # ((L+1)*T, E)
    xc = stream - stream.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    _same_up_to_sign(res.coords.reshape(-1, 3).numpy(), xc @ vt[:3].T)
    assert res.explained == pytest.approx(((s[:3] ** 2) / (s ** 2).sum()).tolist(), rel=1e-4)
    assert res.line(2).shape == (L + 1, 3)
    assert_untouched(tiny_model)


# --------------------------------------------------------------------------- saliency


def test_gradient_x_input_matches_hand_autograd(tiny_model):
    m = tiny_model
    ids = torch.tensor([PROMPT])
    x0 = (m.tok_emb(ids[0]) + m.pos_emb(torch.arange(len(PROMPT)))).detach().requires_grad_(True)
    x = x0[None]
    for block in m.trf_blocks:
        x = block(x)
    logits = m.out_head(m.final_norm(x))[0, -1]
    target = int(logits.argmax())
    (grad,) = torch.autograd.grad(logits[target], x0)
    want = (x0 * grad).sum(-1).detach()
    sal = gradient_x_input(m, PROMPT)
    assert sal.target["token_id"] == target
    torch.testing.assert_close(sal.scores, want, rtol=1e-4, atol=1e-5)
    assert sal.f_input == pytest.approx(float(logits[target].detach()), rel=1e-5)
    other = gradient_x_input(m, PROMPT, target=5)
    assert other.target["token_id"] == 5
    assert_untouched(m)


def test_integrated_gradients_completeness_gap_shrinks():
    m = make_model()
    with torch.no_grad():   # small embeddings: LayerNorm's eps keeps f(alpha x0) smooth near alpha = 0
        m.tok_emb.weight.mul_(0.02)
        m.pos_emb.weight.mul_(0.02)
    coarse = integrated_gradients(m, PROMPT, n_steps=4)
    fine = integrated_gradients(m, PROMPT, n_steps=64, steps_per_batch=16)     # several batches
    change = abs(fine.f_input - fine.f_baseline)
    assert change > 1e-3
    assert abs(fine.completeness_gap) < abs(coarse.completeness_gap)
    assert abs(fine.completeness_gap) < 1e-2 * change
    # f(0) is the model with block 0's input all zeros.
    with torch.no_grad():
        x = torch.zeros(1, len(PROMPT), m.cfg.emb_dim)
        for block in m.trf_blocks:
            x = block(x)
        f0 = m.out_head(m.final_norm(x))[0, -1, fine.target["token_id"]]
    assert fine.f_baseline == pytest.approx(float(f0), rel=1e-4, abs=1e-5)
    assert json.loads(fine.to_json())["completeness_gap"] == pytest.approx(fine.completeness_gap)


def test_saliency_leaves_a_training_model_training(tiny_model):
    tiny_model.train()
    integrated_gradients(tiny_model, PROMPT, n_steps=2)
    with torch.inference_mode():    # called from an inference-mode caller, it still differentiates
        gradient_x_input(tiny_model, PROMPT)
    assert tiny_model.training
    assert_untouched(tiny_model)


# --------------------------------------------------------------------------- q.k


@pytest.mark.parametrize("layer,head,query", [(0, 0, 0), (0, 3, 5), (1, 2, 10), (1, 1, -1)])
def test_qk_row_equals_captured_pattern(tiny_model, layer, head, query):
    b = qk_breakdown(tiny_model, PROMPT, layer, head, query)
    cap = capture_attention(tiny_model, PROMPT, layers=[layer]).head(layer, head)
    t = query % len(PROMPT)
    torch.testing.assert_close(b.weights, cap[t].float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.products.sum(0) / b.head_dim ** 0.5, b.scores)
    assert b.mask.tolist() == [j > t for j in range(len(PROMPT))]
    assert float(b.weights[b.mask].sum()) == 0.0
    with capture(tiny_model, [f"trf_blocks.{layer}.att.hook_q"]) as store:
        tiny_model(torch.tensor([PROMPT]))
    torch.testing.assert_close(b.q, store[f"trf_blocks.{layer}.att.hook_q"][0, head, t])
    assert len(list(csv.DictReader(io.StringIO(b.to_csv())))) == len(PROMPT)
    assert_untouched(tiny_model)


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_say_what_is_wrong(tiny_model, tok):
    m = tiny_model
    with pytest.raises(ValueError, match=r"neurons 0\.\.127"):
        neuron_direct_effect(m, 0, 128)
    with pytest.raises(ValueError, match=r"layers are 0\.\.1"):
        neuron_direct_effect(m, 2, 0)
    with pytest.raises(ValueError, match="is 4 tokens"):
        gradient_x_input(m, PROMPT, target=" Kaleidoscope", tokenizer=tok)
    with pytest.raises(ValueError, match="Marchh"):
        token_embedding_pca(m, word_lists={"months": ["March", "Marchh"]}, tokenizer=tok)
    with pytest.raises(ValueError, match="at least one token"):
        top_neurons_at(m, [], 0)
    with pytest.raises(ValueError, match="at least one token"):
        integrated_gradients(m, "", tokenizer=tok)
    with pytest.raises(ValueError, match=r"query position 11 is out of range.*0\.\.10"):
        qk_breakdown(m, PROMPT, 0, 0, 11)
    with pytest.raises(ValueError, match=r"heads 0\.\.3"):
        qk_breakdown(m, PROMPT, 0, 4, 0)
    with pytest.raises(ValueError, match=r"position 20 is out of range"):
        top_neurons_at(m, PROMPT, 20)
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(m, PROMPT, n_steps=0)
    assert_untouched(m)
