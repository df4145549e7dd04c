"""Cross-check against the reference: random transformers GPT-2 models built locally."""
import json

import pytest
import torch
import transformers  # pinned in requirements-dev.txt: a broken install fails here, never skips the reference
from safetensors.torch import load_file, save_file

from playground.generation import generate
from playground.tokenizer import get_tokenizer
from playground.checkpoints import WeightsError, load_model

SHAPES = [
    dict(n_layer=2, n_head=4, n_embd=64, vocab_size=50257, n_positions=64),
    dict(n_layer=3, n_head=3, n_embd=48, vocab_size=50257, n_positions=48),
    dict(n_layer=2, n_head=2, n_embd=32, vocab_size=300, n_positions=40),
]


def hf_model(seed: int, tie: bool = True, **shape) -> "transformers.GPT2LMHeadModel":
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(**shape, tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0,
                                  pad_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # larger weights than the default init: sharper, more telling logits
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0, 0.3)
            elif "ln" not in name:
                p.normal_(0, 0.1)
    return model


@pytest.fixture(params=range(len(SHAPES)), ids=["2x4x64", "3x3x48", "2x2x32-v300"])
def saved_hf(request, tmp_path):
    shape = SHAPES[request.param]
    model = hf_model(request.param, **shape)
    model.save_pretrained(tmp_path)
    return model, tmp_path / "model.safetensors", shape


def test_logits_greedy_ids_and_text_match(saved_hf):
    ref, path, shape = saved_hf
    loaded = load_model(path)
    ours = loaded.model
    assert loaded.layout == "huggingface"
    assert ours.cfg.n_heads == shape["n_head"] and ours.cfg.n_layers == shape["n_layer"]
    assert ours.cfg.tie_embeddings and ours.cfg.qkv_bias
    idx = torch.randint(0, shape["vocab_size"], (2, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref(idx).logits
    torch.testing.assert_close(ours(idx), want, atol=1e-5, rtol=1e-5)

    prompt = idx[:1, :5]
    hf_ids = ref.generate(prompt, max_new_tokens=30, do_sample=False, min_new_tokens=30,
                          attention_mask=torch.ones_like(prompt))[0, 5:].tolist()
    our_ids = generate(ours, prompt[0].tolist(), 30, temperature=0, stop_at_eot=False).ids
    assert our_ids == hf_ids
    if shape["vocab_size"] == 50257:
        tok = get_tokenizer()
        assert tok.decode(our_ids) == tok.decode(hf_ids)


def test_without_prefix_and_with_lm_head(tmp_path):
    shape = SHAPES[0]
    ref = hf_model(7, tie=False, **shape)
    ref.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert "lm_head.weight" in state
    # the Hub's OpenAI files: no "transformer." prefix, causal-mask buffers included
    bare = {k.removeprefix("transformer."): v for k, v in state.items()}
    bare["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    bare["h.1.attn.masked_bias"] = torch.tensor(-1e4)
    out = tmp_path / "openai.safetensors"
    save_file(bare, out, metadata={"format": "pt"})
    ours = load_model(out).model
    assert not ours.cfg.tie_embeddings  # a separate head was stored
    idx = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), ref(idx).logits, atol=1e-5, rtol=1e-5)


def test_head_equal_to_embedding_is_retied(tmp_path):
    shape = SHAPES[2]
    ref = hf_model(3, **shape)
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    state["lm_head.weight"] = state["transformer.wte.weight"].clone()
    save_file(state, tmp_path / "m.safetensors")
    ours = load_model(tmp_path / "m.safetensors", n_heads=2).model
    assert ours.cfg.tie_embeddings and ours.out_head.weight is ours.tok_emb.weight


def test_heads_from_config_json_or_override(tmp_path):
    shape = SHAPES[1]  # 48 wide, 3 heads: not inferable from shapes
    hf_model(1, **shape).save_pretrained(tmp_path)
    assert load_model(tmp_path / "model.safetensors").model.cfg.n_heads == 3
    (tmp_path / "config.json").unlink()
    with pytest.raises(WeightsError, match="number of attention heads"):
        load_model(tmp_path / "model.safetensors")
    assert load_model(tmp_path / "model.safetensors", n_heads=3).model.cfg.n_heads == 3


def test_hf_wrong_shape_and_missing_key(tmp_path):
    shape = SHAPES[2]
    state = {k: v.contiguous() for k, v in hf_model(0, **shape).state_dict().items()
             if k != "lm_head.weight"}
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 2}))
    broken = dict(state)
    broken["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(32, 100)
    save_file(broken, tmp_path / "shape.safetensors")
    with pytest.raises(WeightsError, match=r"wrong shape for 'h.1.mlp.c_fc.weight'"):
        load_model(tmp_path / "shape.safetensors")
    missing = {k: v for k, v in state.items() if k != "transformer.h.0.ln_2.bias"}
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match=r"missing key 'h.0.ln_2.bias'"):
        load_model(tmp_path / "missing.safetensors")
