"""Training: data split and cache, sampler, schedule, a tiny run that learns, checkpoints and resumes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from playground.training import data as train_data
from playground.config import GPTConfig
from playground.model import GPTModel
from playground.tokenizer import get_tokenizer
from playground.training.cli import run
from playground.training.evaluate import head_summary
from playground.training.optim import lr_at, make_optimizer
from playground.training.data import (BatchSampler, SourceTokens, insert_repeat, load_source, normalize_whitespace,
                                   parse_weights, split_documents, split_train_val, tiled_random_row,
                                   validation_windows)
from playground.training.baselines import KneserNeyBigram, bigram_nll, unigram_nll
from playground.training.report import max_ngram_repeats
from playground.checkpoints import load_model, read_header

TINY = GPTConfig(vocab_size=50257, context_length=16, emb_dim=16, n_heads=2, n_layers=2,
                 drop_rate=0.0, qkv_bias=False, tie_embeddings=True)

SENTENCES = [
    "The cat sat on the mat and looked at the door.",
    "A dog ran in the park while the children played.",
    "She wrote a letter to her sister in the country.",
    "The king spoke to the people of the city at noon.",
    "Rain fell on the roofs of the old town all night.",
]


def write_corpus(path: Path, paragraphs: int = 60, seed: int = 0) -> Path:
    """A few KB of simple, repetitive English in blank-line-separated paragraphs."""
    rng = np.random.default_rng(seed)
    paras = [" ".join(SENTENCES[i] for i in rng.integers(0, len(SENTENCES), 4)) for _ in range(paragraphs)]
    path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return path


def tiny_args(data: Path, tmp: Path, steps: int = 40, *extra: str) -> list[str]:
    return ["--data", str(data), "--config", TINY.to_json(), "--steps", str(steps),
            "--out", str(tmp / "out" / "tiny.safetensors"), "--run-dir", str(tmp / "run"),
            "--cache-dir", str(tmp / "cache"), "--batch-size", "4", "--lr", "3e-3", "--min-lr", "3e-4",
            "--warmup-steps", "5", "--eval-every", "20", "--log-every", "5", "--amp", "off",
            "--doc-chars", "300", "--val-fraction", "0.2", "--threads", "1", "--quiet", *extra]


# --------------------------------------------------------------------------- data

def test_split_documents_keeps_all_text_and_cuts_at_blank_lines():
    text = "\n\n".join(f"paragraph {i} " + "word " * 40 for i in range(30))
    pieces = split_documents(text, 500)
    assert "".join(pieces) == text
    assert len(pieces) > 3
    assert all(p.endswith("\n\n") for p in pieces[:-1])


def test_validation_documents_never_appear_in_training():
    text = "\n\n".join(f"document number {i}: " + "text " * 50 for i in range(200))
    train_docs, val_docs = split_train_val(text, 0.1, seed=3, doc_chars=200)
    assert val_docs and train_docs
    assert not set(train_docs) & set(val_docs)
    assert 0.03 < len(val_docs) / (len(val_docs) + len(train_docs)) < 0.2
    assert split_train_val(text, 0.1, seed=3, doc_chars=200) == (train_docs, val_docs)  # deterministic
    assert split_train_val(text, 0.1, seed=4, doc_chars=200)[1] != val_docs          # seed matters


def test_token_cache_is_reused(tmp_path, monkeypatch):
    data = write_corpus(tmp_path / "tiny.txt")
    first = load_source(data, 0.2, seed=0, doc_chars=300, cache_dir=tmp_path / "cache")
    assert first.train.dtype == np.uint16 and first.val.size > 0

    def no_tokenizer():
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(train_data, "get_tokenizer", no_tokenizer)
    again = load_source(data, 0.2, seed=0, doc_chars=300, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.train, again.train)
    np.testing.assert_array_equal(first.val, again.val)
    data.write_text(data.read_text() + "\n\nA new paragraph.\n")  # changed file -> new key
    with pytest.raises(AssertionError, match="cache"):
        load_source(data, 0.2, seed=0, doc_chars=300, cache_dir=tmp_path / "cache")


def test_normalize_whitespace_strips_indentation_and_runs_of_spaces():
    doc = "    Hail, high Excess --  especially\tin wine,\n        To thee  \n\n\n\nIt was\u00a0so.\n"
    assert normalize_whitespace(doc) == "Hail, high Excess -- especially in wine,\nTo thee\n\nIt was so.\n"
    assert normalize_whitespace("plain text\n\nstays.") == "plain text\n\nstays."


def test_clean_whitespace_keeps_the_split_and_has_its_own_cache(tmp_path):
    text = "\n\n".join(f"    document {i}:   " + "word  " * 60 for i in range(60))
    data = tmp_path / "indented.txt"
    data.write_text(text)
    raw = load_source(data, 0.2, seed=0, doc_chars=300, cache_dir=tmp_path / "cache")
    clean = load_source(data, 0.2, seed=0, doc_chars=300, cache_dir=tmp_path / "cache",
                        clean_whitespace=True)
    assert (clean.n_docs_train, clean.n_docs_val) == (raw.n_docs_train, raw.n_docs_val)
    assert clean.train.size < raw.train.size
    tok = get_tokenizer()
    assert "  " not in tok.decode(clean.train.tolist()) and "  " in tok.decode(raw.train.tolist())
    # The held-out documents are the same ones, cleaned.
    assert tok.decode(clean.val.tolist()).split() == tok.decode(raw.val.tolist()).split()
    assert len(list((tmp_path / "cache").iterdir())) == 2


def _source(name: str, n: int, value: int) -> SourceTokens:
    return SourceTokens(name, np.full(n, value, dtype=np.uint16), np.full(40, value, dtype=np.uint16), 1, 1)


def test_sampler_weights_down_weight_a_source():
    a, b = _source("a", 1000, 1), _source("b", 3000, 2)
    natural = BatchSampler([a, b], 8)
    assert natural.shares() == pytest.approx({"a": 0.25, "b": 0.75})
    weighted = BatchSampler([a, b], 8, parse_weights(["b=0.1"]))
    assert weighted.shares()["b"] == pytest.approx(0.3 / 1.3)
    x, y = BatchSampler([a, b], 8, {"b": 0.0}).sample(64, np.random.default_rng(0))
    assert x.shape == y.shape == (64, 8) and x.dtype == torch.int64
    assert bool((x == 1).all())  # weight 0: never drawn
    with pytest.raises(ValueError, match="unknown"):
        BatchSampler([a, b], 8, {"c": 1.0})


def test_sampler_targets_are_inputs_shifted_by_one():
    src = SourceTokens("s", np.arange(500, dtype=np.uint16), np.arange(10, dtype=np.uint16), 1, 1)
    x, y = BatchSampler([src], 16).sample(4, np.random.default_rng(1))
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    torch.testing.assert_close(y[:, 0], x[:, 0] + 1)


def test_insert_repeat_copies_an_earlier_span_and_keeps_the_length():
    rng = np.random.default_rng(0)
    row = np.arange(100)
    for _ in range(200):
        out = insert_repeat(row, rng, 5, 20)
        assert out.size == 100
        # Where the row stops counting up, a copy of an earlier span begins, and after
        # it the text resumes where it left off: out[j:] = [i, i+L) + [j, 100-L).
        j = int(np.argmax(np.diff(out) != 1)) + 1
        i = int(out[j])
        assert out[:j].tolist() == list(range(j))
        fits = [n for n in range(5, 21) if i + n <= j and
                out[j:].tolist() == list(range(i, i + n)) + list(range(j, 100 - n))]
        assert fits, out


def test_sampler_repeat_fraction():
    src = SourceTokens("s", np.arange(5000, dtype=np.uint16), np.arange(10, dtype=np.uint16), 1, 1)
    rng = np.random.default_rng(2)
    x, y = BatchSampler([src], 64, repeat_fraction=1.0, repeat_len=(8, 16)).sample(32, rng)
    full = torch.cat([x, y[:, -1:]], 1).numpy()
    assert all((np.diff(r) != 1).sum() >= 1 for r in full)       # every row holds a copy
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    x0, _ = BatchSampler([src], 64).sample(32, rng)
    assert (np.diff(x0.numpy(), axis=1) == 1).all()               # fraction 0: untouched
    with pytest.raises(ValueError, match="repeat_fraction"):
        BatchSampler([src], 64, repeat_fraction=1.5)
    with pytest.raises(ValueError, match="repeat_len"):
        BatchSampler([src], 64, repeat_fraction=0.5, repeat_len=(40, 50))
    with pytest.raises(ValueError, match="repeat_random"):
        BatchSampler([src], 64, repeat_fraction=0.5, repeat_random=2.0)
    xr, _ = BatchSampler([src], 64, repeat_fraction=1.0, repeat_len=(8, 16), repeat_random=1.0).sample(8, rng)
    assert all((np.diff(r) != 1).sum() >= 2 for r in xr.numpy())  # a random span and its copy


def test_tiled_random_row_repeats_one_random_sequence():
    rng = np.random.default_rng(3)
    stream = np.arange(1000, 1100)
    uniform = from_stream = 0
    for _ in range(100):
        row = tiled_random_row(65, rng, 4, 16, stream, vocab_size=50257)
        assert row.shape == (65,) and row.dtype == np.int64
        # The period is the shortest L for which the row is its first L tokens repeated.
        period = next(L for L in range(4, 17) if (row == np.resize(row[:L], 65)).all())
        assert 4 <= period <= 16
        if np.isin(row, stream).all():
            from_stream += 1
        else:
            uniform += 1
            assert row.max() < 50257
    assert uniform > 20 and from_stream > 20          # both kinds of ids occur


def test_sampler_induction_fraction():
    src = SourceTokens("s", np.arange(5000, dtype=np.uint16), np.arange(10, dtype=np.uint16), 1, 1)
    rng = np.random.default_rng(4)
    x, y = BatchSampler([src], 64, induction_fraction=0.5, induction_len=(4, 8)).sample(64, rng)
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    text = [(np.diff(r) == 1).all() for r in x.numpy()]
    assert 15 < sum(text) < 49                         # about half the rows stay text
    for r in x.numpy()[[not t for t in text]]:
        assert any((r[L:] == r[:-L]).all() for L in range(4, 9))
    with pytest.raises(ValueError, match="induction_fraction"):
        BatchSampler([src], 64, induction_fraction=-0.1)
    with pytest.raises(ValueError, match="induction_len"):
        BatchSampler([src], 64, induction_fraction=0.5, induction_len=(4, 40))


def test_validation_windows_are_fixed_and_non_overlapping():
    src = SourceTokens("s", np.zeros(10, dtype=np.uint16), np.arange(100, dtype=np.uint16), 1, 1)
    w = validation_windows([src], 9)["s"]
    assert w.shape == (10, 10)
    assert w.flatten().tolist() == list(range(100))
    assert validation_windows([src], 9, max_windows_per_source=3)["s"].shape == (3, 10)


# --------------------------------------------------------------------------- optimisation pieces

def test_lr_schedule_warmup_then_cosine():
    assert lr_at(0.0, 0, 1e-3, 1e-4, 10) == pytest.approx(1e-4)
    assert lr_at(0.0, 9, 1e-3, 1e-4, 10) == pytest.approx(1e-3)
    assert lr_at(0.0, 10, 1e-3, 1e-4, 10) == pytest.approx(1e-3)
    assert lr_at(0.5, 50, 1e-3, 1e-4, 10) == pytest.approx(5.5e-4)
    assert lr_at(1.0, 99, 1e-3, 1e-4, 10) == pytest.approx(1e-4)


def test_weight_decay_only_on_matrices():
    model = GPTModel(TINY)
    decay, free = make_optimizer(model, 1e-3, 0.1).param_groups
    assert decay["weight_decay"] == 0.1 and free["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in free["params"])
    n = sum(p.numel() for g in (decay, free) for p in g["params"])
    assert n == model.num_parameters()  # the tied head is in there once


# --------------------------------------------------------------------------- a tiny run

def _train_losses(run_dir: Path) -> list[float]:
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())["state"]
    return [h["train_loss"] for h in state["history"] if "train_loss" in h]


def test_tiny_run_learns_and_writes_loadable_weights(tmp_path):
    data = write_corpus(tmp_path / "tiny.txt")
    summary = run(tiny_args(data, tmp_path, 60))
    losses = _train_losses(tmp_path / "run")
    assert losses[-1] < losses[0] - 1.0, losses
    assert summary["val_loss"] < math.log(50257) - 1.0
    out = tmp_path / "out" / "tiny.safetensors"
    loaded = load_model(out)
    assert loaded.model.cfg == TINY
    assert loaded.file_dtype == torch.float16
    meta, _ = read_header(out)
    assert json.loads(meta["training"])["steps"] == 60
    svg = (tmp_path / "out" / "tiny_loss.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "validation" in svg
    assert (tmp_path / "run" / "summary.json").exists()


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    data = write_corpus(tmp_path / "tiny.txt")
    straight = tmp_path / "straight"
    run(tiny_args(data, straight, 30, "--save-dtype", "fp32"))

    resumed = tmp_path / "resumed"
    partial = run(tiny_args(data, resumed, 30, "--save-dtype", "fp32", "--stop-after", "12"))
    assert partial["stopped"] and partial["steps"] == 12
    assert not (resumed / "out" / "tiny.safetensors").exists()
    ckpt = load_model(resumed / "run" / "checkpoint" / "model.safetensors")
    assert ckpt.model.cfg == TINY
    summary = run(tiny_args(data, resumed, 30, "--save-dtype", "fp32"))
    assert summary["steps"] == 30

    a = load_model(straight / "out" / "tiny.safetensors").model.state_dict()
    b = load_model(resumed / "out" / "tiny.safetensors").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_init_starts_from_saved_weights(tmp_path):
    data = write_corpus(tmp_path / "tiny.txt")
    first = run(tiny_args(data, tmp_path / "a", 40, "--save-dtype", "fp32"))
    init = tmp_path / "a" / "out" / "tiny.safetensors"
    # Zero learning rate: the run must end where it started, i.e. at the --init weights.
    run(tiny_args(data, tmp_path / "b", 3, "--save-dtype", "fp32", "--init", str(init),
                  "--lr", "0", "--min-lr", "0", "--weight-decay", "0"))
    a = load_model(init).model.state_dict()
    b = load_model(tmp_path / "b" / "out" / "tiny.safetensors").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
    second = run(tiny_args(data, tmp_path / "c", 10, "--init", str(init), "--repeat-fraction", "0.5",
                           "--repeat-len", "2", "8"))
    assert second["val_loss"] < first["val_loss"] + 0.5      # it continued, not restarted
    wider = TINY.replace(emb_dim=32)
    with pytest.raises(SystemExit, match="differs from the run's"):
        run(tiny_args(data, tmp_path / "d", 3, "--init", str(init)) + ["--config", wider.to_json()])


def test_init_on_another_held_out_split_is_refused(tmp_path):
    """Weights record their split; continuing them on another one (a new --seed) would train on their
    held-out documents, so every held-out score after it would be a training score."""
    data = write_corpus(tmp_path / "tiny.txt")
    run(tiny_args(data, tmp_path / "a", 3, "--seed", "5"))
    init = tmp_path / "a" / "out" / "tiny.safetensors"
    from playground.training.loop import read_split
    assert read_split(init) == {"seed": 5, "val_fraction": 0.2, "doc_chars": 300, "clean_whitespace": False}
    with pytest.raises(SystemExit, match="seed 5 there, 6 here"):
        run(tiny_args(data, tmp_path / "b", 3, "--seed", "6", "--init", str(init)))
    run(tiny_args(data, tmp_path / "c", 3, "--seed", "5", "--init", str(init)))                 # same split
    run(tiny_args(data, tmp_path / "d", 3, "--seed", "6", "--init", str(init), "--new-split"))  # said so


def test_seq_len_and_induction_rows_train_shorter_windows(tmp_path):
    data = write_corpus(tmp_path / "tiny.txt")
    summary = run(tiny_args(data, tmp_path, 6, "--seq-len", "16", "--induction-fraction", "0.5",
                            "--induction-len", "2", "8", "--eval-every", "3"))
    assert summary["tokens_seen"] == 6 * 4 * 16                       # steps x batch x seq-len
    assert load_model(tmp_path / "out" / "tiny.safetensors").model.cfg == TINY
    with pytest.raises(SystemExit, match="--seq-len"):
        run(tiny_args(data, tmp_path / "b", 2, "--seq-len", str(TINY.context_length + 1)))


def test_unlikelihood_option_trains_and_checks_its_lengths(tmp_path):
    data = write_corpus(tmp_path / "tiny.txt")
    summary = run(tiny_args(data, tmp_path, 4, "--unlikelihood", "1.0", "--ul-prefix", "4", "--ul-new", "8",
                            "--log-every", "2"))
    assert summary["steps"] == 4 and math.isfinite(summary["val_loss"])
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    shares = [h["greedy_repeat_share"] for h in state["state"]["history"] if "greedy_repeat_share" in h]
    assert len(shares) == 2 and all(0.0 <= s <= 1.0 for s in shares)
    with pytest.raises(SystemExit, match="--ul-prefix"):
        run(tiny_args(data, tmp_path / "b", 2, "--unlikelihood", "1.0", "--ul-prefix", "10", "--ul-new", "10"))


def test_head_summary_names_the_best_heads():
    torch.manual_seed(0)
    model = GPTModel(TINY).eval()
    heads = head_summary(model, torch.arange(TINY.context_length))
    for kind in ("previous_token", "induction"):
        assert 0.0 <= heads[kind] <= 1.0
        layer, head = map(int, heads[kind + "_head"][1:].split("H"))
        assert layer < TINY.n_layers and head < TINY.n_heads
    assert head_summary(model, None)["previous_token_head"].startswith("L")


def test_no_resume_starts_over(tmp_path):
    data = write_corpus(tmp_path / "tiny.txt")
    run(tiny_args(data, tmp_path, 10))
    summary = run(tiny_args(data, tmp_path, 10, "--no-resume", "--stop-after", "3"))
    assert summary["steps"] == 3


def test_needs_a_length():
    with pytest.raises(SystemExit):
        run(["--data", "x.txt", "--preset", "gpt2", "--out", "w.safetensors"])


# --------------------------------------------------------------------------- baselines and checks

def test_kneser_ney_bigram_is_a_distribution():
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 8, 500).astype(np.uint16)
    lm = KneserNeyBigram([stream], vocab=10)
    w = np.arange(10)
    for v in (0, 3, 9):  # 9 never occurs: falls back to continuation probabilities
        p = lm.prob(np.full(10, v), w)
        assert p.sum() == pytest.approx(1.0) and (p > 0).all()


def test_bigram_beats_unigram_on_a_patterned_stream():
    stream = np.tile(np.array([1, 2, 3, 4, 5], dtype=np.uint16), 200)
    val = {"s": torch.from_numpy(np.tile(np.array([1, 2, 3, 4, 5]), 20).reshape(10, 10))}
    uni, bi = unigram_nll([stream], val, vocab=50), bigram_nll([stream], val, vocab=50)
    assert uni["all"] == pytest.approx(math.log(5), rel=0.05)
    assert bi["all"] < 0.1


def test_max_ngram_repeats():
    assert max_ngram_repeats([1, 2, 3, 4, 5, 6]) == 1
    assert max_ngram_repeats([1, 2, 3, 4] * 3) == 3
    assert max_ngram_repeats([1, 2]) == 0


def test_max_minutes_stops_the_run_on_time(tmp_path):
    """``--max-minutes`` alone: the run trains until its time is up (the schedule decays over that time),
    stops there and writes its weights."""
    import time
    data = write_corpus(tmp_path / "tiny.txt")
    args = tiny_args(data, tmp_path, 1)
    i = args.index("--steps")
    args[i:i + 2] = ["--max-minutes", "0.03"]                              # 1.8 s
    start = time.perf_counter()
    run(args)
    took = time.perf_counter() - start
    steps = json.loads(read_header(tmp_path / "out" / "tiny.safetensors")[0]["training"])["steps"]
    assert steps > 5 and 1.8 <= took < 60
    losses = _train_losses(tmp_path / "run")
    assert losses and losses[-1] < losses[0]


def test_train_eval_reports_on_the_held_out_split(tmp_path, capsys):
    """``python -m playground.train_eval``: the report of a trained file on its own held-out split, as JSON."""
    from playground.train_eval import main as train_eval
    data = write_corpus(tmp_path / "tiny.txt")
    run(tiny_args(data, tmp_path, 20))
    out = tmp_path / "report.json"
    train_eval(["--weights", str(tmp_path / "out" / "tiny.safetensors"), "--data", str(data), "--seed", "1337",
                "--val-fraction", "0.2", "--doc-chars", "300", "--cache-dir", str(tmp_path / "cache"),
                "--threads", "1", "--json", str(out)])
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    numbers = [v for v in _leaves(report) if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers)


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
