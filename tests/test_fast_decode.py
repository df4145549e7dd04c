import pytest
import torch

from playground import fast_decode
from playground.fast_decode import fast_path_allowed, fast_weights, invalidate, precision_for
from playground.generation import generate, generate_text_simple, stream_ids
from playground.hooks import capture, hooks
from playground.sampling import SamplingParams
from tests.factories import TINY, make_model

PROMPT = [15496, 11, 314, 716, 257, 1402, 2746]  # "Hello, I am a small model"


def fast_logits(model, ids, precision="fp32", split=4):
    """Logits at every position from ``split`` on: a prefill, then one token at a time."""
    fw = fast_weights(model, precision)
    cache = fw.new_cache(ids.shape[0], ids.shape[1])
    out = [fw.forward(ids[:, :split], cache)]
    for i in range(split, ids.shape[1]):
        out.append(fw.forward(ids[:, i:i + 1], cache))
    return torch.stack(out, dim=1)                                   # (B, T - split + 1, V)


def explicit_logits(model, ids):
    model.set_explicit_attention(True)
    try:
        with torch.no_grad():
            return model(ids)
    finally:
        model.set_explicit_attention(False)


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(qkv_bias=False, tie_embeddings=False)],
                         ids=["openai-style", "book-style"])
def test_fp32_logits_equal_explicit_path(cfg):
    """fp32 equals the model's own forward on both layouts (bf16 and int8 agree on both: see below)."""
    model = make_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 20), generator=torch.Generator().manual_seed(1))
    ref = explicit_logits(model, ids)[:, 3:]
    torch.testing.assert_close(fast_logits(model, ids), ref, rtol=1e-5, atol=1e-5)


def test_chunk_after_cached_tokens_is_causal(tiny_model):
    ids = torch.randint(0, TINY.vocab_size, (1, 12), generator=torch.Generator().manual_seed(2))
    fw = fast_weights(tiny_model, "fp32")
    cache = fw.new_cache(1, 12)
    fw.forward(ids[:, :5], cache)
    got = fw.forward(ids[:, 5:], cache)
    torch.testing.assert_close(got, explicit_logits(tiny_model, ids)[:, -1], rtol=1e-5, atol=1e-5)


def test_fast_greedy_ids_equal_book_loop(tiny_model):
    assert precision_for(tiny_model, None) == "fp32"
    result = generate(tiny_model, PROMPT, 20, temperature=0, stop_at_eot=False, precision="fp32")
    book = generate_text_simple(tiny_model, torch.tensor([PROMPT]), 20, context_size=TINY.context_length)
    assert result.ids == book[0, len(PROMPT):].tolist()


def test_fast_path_is_what_generation_runs(tiny_model, monkeypatch):
    calls = []
    original = fast_decode.FastWeights.forward

    def spy(self, idx, cache):
        calls.append(idx.shape)
        return original(self, idx, cache)

    monkeypatch.setattr(fast_decode.FastWeights, "forward", spy)
    generate(tiny_model, PROMPT, 5, temperature=0, stop_at_eot=False)
    assert calls == [(1, len(PROMPT))] + [(1, 1)] * 4


BOOK = TINY.replace(qkv_bias=False, tie_embeddings=False)    # the book's layout: no qkv bias, separate head


@pytest.mark.parametrize("cfg", [TINY, BOOK], ids=["openai-style", "book-style"])
@pytest.mark.parametrize("precision,min_agree", [("bf16", 0.9), ("int8", 0.8)])
def test_low_precision_runs_and_mostly_agrees(cfg, precision, min_agree):
    tiny_model = make_model(cfg)
    ids = torch.randint(0, TINY.vocab_size, (2, 24), generator=torch.Generator().manual_seed(3))
    ref = fast_logits(tiny_model, ids, "fp32")
    got = fast_logits(tiny_model, ids, precision)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    differ = got.argmax(-1) != ref.argmax(-1)
    assert (~differ).float().mean().item() >= min_agree
    # Where the top token differs, fp32's best two were closer than the rounding error
    # measured at that position (both logits may move by up to that much).
    top2 = ref.topk(2, dim=-1).values
    gap = top2[..., 0] - top2[..., 1]
    err = (got - ref).abs().amax(dim=-1)
    assert bool((gap[differ] <= 2 * err[differ]).all())
    result = generate(tiny_model, PROMPT, 10, temperature=0, stop_at_eot=False, precision=precision)
    assert len(result.ids) == 10


def test_batch_decode_equals_one_by_one(tiny_model):
    prompts = torch.randint(0, TINY.vocab_size, (3, 6), generator=torch.Generator().manual_seed(4))
    params = SamplingParams(temperature=0)
    batched = torch.stack([s.ids for s in stream_ids(tiny_model, prompts, 8, params)], dim=1)
    for row in range(3):
        alone = torch.stack([s.ids for s in stream_ids(tiny_model, prompts[row:row + 1], 8, params)], dim=1)
        assert batched[row].tolist() == alone[0].tolist()


def test_hooks_see_every_step_and_results_agree(tiny_model):
    fast = generate(tiny_model, PROMPT, 6, temperature=0, stop_at_eot=False).ids
    seen = []
    with hooks(tiny_model, {"trf_blocks.1.att.hook_pattern": lambda t, name: seen.append(t.shape)}):
        assert not fast_path_allowed(tiny_model)
        assert precision_for(tiny_model, "bf16") is None  # a hook wins over a precision choice
        hooked = generate(tiny_model, PROMPT, 6, temperature=0, stop_at_eot=False, precision="bf16").ids
    assert hooked == fast
    assert len(seen) == 6 and seen[0][-1] == len(PROMPT)  # prefill + 5 decode steps, all through the model
    assert fast_path_allowed(tiny_model)


def test_capture_during_generation_sees_the_model_path(tiny_model):
    with capture(tiny_model, ["hook_logits"]) as store:
        generate(tiny_model, PROMPT, 2, temperature=0, stop_at_eot=False)
    assert store["hook_logits"].shape == (1, 1, TINY.vocab_size)


def test_training_mode_and_explicit_attention_use_the_model():
    model = make_model()
    model.train()
    assert not fast_path_allowed(model)
    model.eval()
    model.set_explicit_attention(True)
    assert precision_for(model, "fp32") is None
    model.set_explicit_attention(False)
    assert precision_for(model, "fp32") == "fp32"


def test_prepared_weights_follow_parameter_changes(tiny_model):
    before = generate(tiny_model, PROMPT, 5, temperature=0, stop_at_eot=False).ids
    first = fast_weights(tiny_model, "fp32")
    assert fast_weights(tiny_model, "fp32") is first  # cached
    with torch.no_grad():
        tiny_model.trf_blocks[0].att.W_key.weight.mul_(-3.0)
        tiny_model.out_head.weight.add_(0.5 * torch.randn_like(tiny_model.out_head.weight))
    assert fast_weights(tiny_model, "fp32") is not first
    after = generate(tiny_model, PROMPT, 5, temperature=0, stop_at_eot=False).ids
    book = generate_text_simple(tiny_model, torch.tensor([PROMPT]), 5, context_size=TINY.context_length)
    assert after == book[0, len(PROMPT):].tolist() and after != before


def test_invalidate_after_edits_through_data(tiny_model):
    generate(tiny_model, PROMPT, 2, temperature=0, stop_at_eot=False)
    with torch.no_grad():
        tiny_model.tok_emb.weight.data.mul_(2.0)  # .data bypasses the version counter
    invalidate(tiny_model)
    result = generate(tiny_model, PROMPT, 5, temperature=0, stop_at_eot=False)
    book = generate_text_simple(tiny_model, torch.tensor([PROMPT]), 5, context_size=TINY.context_length)
    assert result.ids == book[0, len(PROMPT):].tolist()


def test_bf16_model_defaults_to_bf16_path():
    model = make_model().to(torch.bfloat16)
    assert precision_for(model, None) == "bf16"
    assert precision_for(make_model().half(), None) is None  # fp16: the model's own forward
    assert len(generate(model, PROMPT, 4, temperature=0, stop_at_eot=False).ids) == 4


def test_unknown_precision_is_refused(tiny_model):
    with pytest.raises(ValueError, match="precision"):
        generate(tiny_model, PROMPT, 2, precision="fp8")


def test_bytes_per_token_halve_with_each_precision(tiny_model):
    fp32, bf16, int8 = (fast_weights(tiny_model, p).bytes_per_token() for p in ("fp32", "bf16", "int8"))
    assert bf16 < 0.55 * fp32 and int8 < 0.6 * bf16


def test_prepare_in_background_then_requests_share_it(tiny_model, monkeypatch):
    """After the background preparation a request builds nothing: it finds the prepared weights."""
    from playground.fast_decode import prepare_in_background

    prepare_in_background(tiny_model, ("fp32", "bf16")).join(timeout=60)
    assert set(fast_decode._prepared[tiny_model]) == {"fp32", "bf16"}
    prepared = fast_decode._prepared[tiny_model]["bf16"]
    built = []
    original = fast_decode.FastWeights.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)
    monkeypatch.setattr(fast_decode.FastWeights, "__init__", counting)
    assert fast_weights(tiny_model, "bf16") is prepared and fast_weights(tiny_model, "fp32") is not None
    assert built == []


def test_concurrent_first_requests_build_once(tiny_model, monkeypatch):
    import threading

    built = []
    original = fast_decode.FastWeights.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(fast_decode.FastWeights, "__init__", counting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(fast_weights(tiny_model, "int8")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(r is results[0] for r in results)


def test_at_most_one_precision_besides_the_default_is_kept():
    """Memory: the default (fp32) and the last other precision asked for, never all three."""
    from playground import fast_decode
    model = make_model()
    for precision in ("fp32", "bf16", "int8", "bf16"):
        fast_decode.fast_weights(model, precision)
        kept = set(fast_decode._prepared[model])
        assert kept == {"fp32", precision} and len(kept) <= 2


def test_a_shallow_copy_shares_the_parameters_and_keeps_its_own_prepared_weights():
    """What the benchmark relies on (``bench.contenders.Pair.ours_for``): one model object per precision,
    so interleaved fp32 / bf16 / int8 runs do not re-prepare inside the timed runs."""
    import copy
    model = make_model()
    view = copy.copy(model)
    assert all(a is b for a, b in zip(view.parameters(), model.parameters()))
    on_view = fast_weights(view, "bf16")
    fast_weights(model, "int8")
    assert fast_weights(view, "bf16") is on_view              # kept: another key in the cache
    fast_weights(model, "bf16")
    first = fast_weights(model, "bf16")
    fast_weights(model, "int8")
    assert fast_weights(model, "bf16") is not first           # one object: bf16 was dropped for int8
    ids = torch.tensor([[1, 2, 3]])
    greedy = SamplingParams(temperature=0)
    same = [torch.cat([s.ids for s in stream_ids(m, ids, 5, greedy, precision="bf16")]) for m in (model, view)]
    assert torch.equal(same[0], same[1])
