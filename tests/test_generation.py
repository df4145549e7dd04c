import pytest
import torch

from playground.config import GPTConfig
from playground.generation import generate, generate_text_simple, stream_generate
from playground.tokenizer import get_tokenizer
from tests.factories import make_model


def test_kv_cached_greedy_equals_book_loop(tiny_model):
    prompt = get_tokenizer().encode("Hello, I am")
    result = generate(tiny_model, prompt, 20, temperature=0, stop_at_eot=False)
    book = generate_text_simple(tiny_model, torch.tensor([prompt]), 20, context_size=32)
    assert result.ids == book[0, len(prompt):].tolist()
    assert not result.cropped


def test_past_context_generation_matches_book_and_says_so(tiny_model):
    prompt = list(range(100, 125))  # 25 tokens, context 32
    result = generate(tiny_model, prompt, 20, temperature=0, stop_at_eot=False)
    book = generate_text_simple(tiny_model, torch.tensor([prompt]), 20, context_size=32)
    assert result.ids == book[0, 25:].tolist()
    assert result.cropped and result.crop_started_at == 8  # 25 + 7 generated fill 32
    assert not result.steps[7].cropped and result.steps[8].cropped


def test_prompt_longer_than_context_is_cropped(tiny_model):
    prompt = list(range(1000, 1040))
    result = generate(tiny_model, prompt, 3, temperature=0, stop_at_eot=False)
    book = generate_text_simple(tiny_model, torch.tensor([prompt]), 3, context_size=32)
    assert result.ids == book[0, 40:].tolist()
    assert result.crop_started_at == 0


def test_seed_reproducibility(tiny_model):
    a = generate(tiny_model, "Hello", 15, temperature=1.0, seed=123).ids
    b = generate(tiny_model, "Hello", 15, temperature=1.0, seed=123).ids
    c = generate(tiny_model, "Hello", 15, temperature=1.0, seed=124).ids
    assert a == b and a != c


def test_no_global_seeding(tiny_model):
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    generate(tiny_model, "Hello", 5, temperature=1.0, seed=7)
    assert torch.equal(torch.rand(1), before)


def test_temperature_zero_determinism(tiny_model):
    runs = {tuple(generate(tiny_model, "The", 10, temperature=0, seed=s).ids) for s in range(3)}
    assert len(runs) == 1


def test_max_tokens_respected(tiny_model):
    for n in (0, 1, 7):
        assert len(generate(tiny_model, "The", n, temperature=1.0, seed=1, stop_at_eot=False).ids) == n


def test_stops_at_endoftext():
    model = make_model()
    with torch.no_grad():  # make <|endoftext|> overwhelmingly likely
        model.final_norm.shift.zero_()
        model.final_norm.scale.zero_()
        model.final_norm.shift[0] = 1.0
        model.tok_emb.weight[50256, 0] = 100.0
    result = generate(model, "Hi", 10, temperature=0)
    assert result.ids == [50256] and result.stopped_at_eot


def test_stream_reports_probabilities_and_alternatives(tiny_model):
    steps = list(stream_generate(tiny_model, "Hello", 5, temperature=0.8, top_k=10, seed=3,
                                 n_alternatives=4))
    assert len(steps) == 5
    for s in steps:
        assert len(s.top) == 4
        probs = [p for _, _, p in s.top]
        assert probs == sorted(probs, reverse=True)
        assert s.id in [i for i, _, _ in s.top] or s.prob <= probs[-1]
        assert 0 < s.prob <= 1 and isinstance(s.text, str)
    # top_k=10: the chosen token is among the 10 most likely, and the rest have probability 0
    steps = list(stream_generate(tiny_model, "Hello", 3, temperature=1.0, top_k=2, seed=3,
                                 n_alternatives=5))
    for s in steps:
        assert s.top[2][2] == 0.0 and s.id in (s.top[0][0], s.top[1][0])


def test_empty_prompt_and_bad_values_raise(tiny_model):
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(tiny_model, "", 5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(tiny_model, "x", -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(tiny_model, "x", 1, temperature=-2)


def test_batch_greedy_rows_match_single(tiny_model):
    from playground.generation import stream_ids
    from playground.sampling import SamplingParams
    idx = torch.randint(0, 50257, (3, 6), generator=torch.Generator().manual_seed(5))
    steps = list(stream_ids(tiny_model, idx, 8, SamplingParams(temperature=0)))
    batch = torch.stack([s.ids for s in steps], 1)
    for row in range(3):
        single = generate(tiny_model, idx[row].tolist(), 8, temperature=0, stop_at_eot=False).ids
        assert batch[row].tolist() == single
