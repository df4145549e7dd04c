"""The app's handlers, validation, model holder and deep links, called directly on a tiny model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from playground import fast_decode
from playground.config import PRESETS
from playground.generation import generate
from playground.ui import deeplink
from playground.ui.views.attention import SCORE_NAMES, VIEW_LABELS, attention_view, check_attention
from playground.ui.common import export_file
from playground.ui.views.generate import PROB_COLORS, check_generate, stream_generation
from playground.ui.views.logit_lens import lens_view
from playground.ui.views.model import download_and_load, load_weights, model_markdown, resolve_in, weight_files
from playground.ui.views.next_token import next_view
from playground.ui.views.parameters import check_params, params_view, preset_config
from playground.ui.views.shapes import trace_view
from playground.ui import validate as v
from playground.ui.state import ModelHolder
from playground.ui.validate import InputError
from playground.checkpoints import save_model
from tests.factories import make_model

PROMPT = "The cat sat on the mat. The cat sat on the"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The CPUs are shared: one thread is faster than two fighting for them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    save_model(make_model(), folder / "tiny.safetensors")
    (folder / "broken.safetensors").write_bytes(b"\x00" * 64)
    return folder


@pytest.fixture(scope="module")
def holder(weights_dir) -> ModelHolder:
    return ModelHolder(weights_dir / "tiny.safetensors", device="cpu", hash_in_background=False)


@pytest.fixture(scope="module")
def snap(holder):
    return holder.require()


def message(exc_info) -> str:
    return exc_info.value.message


# ------------------------------------------------------------------------------------------ validate


@pytest.mark.parametrize("value, expected", [(5, 5), (5.0, 5), ("7", 7), (" 8 ", 8), ("9.0", 9), (None, 3), ("", 3)])
def test_whole_accepts_numbers_as_an_api_sends_them(value, expected):
    assert v.whole(value, "Count", 0, 10, default=3) == expected


@pytest.mark.parametrize("value, fragment", [
    (float("nan"), "ordinary number"), (float("inf"), "ordinary number"), (True, "not true"),
    ("abc", "must be a number"), ([1], "must be a number (got list)"), (2.5, "whole number"),
    (11, "between 0 and 10"), (-1, "between 0 and 10"), ("9" * 5000, "ordinary number"), (10**30, "between"),
])
def test_whole_refuses_with_a_plain_sentence(value, fragment):
    with pytest.raises(InputError) as e:
        v.whole(value, "Count", 0, 10)
    assert fragment in message(e) and "Count" in message(e)


def test_real_bounds_and_open_lower_bound():
    assert v.real("0.5", "Top-p", 0, 1, lo_open=True) == 0.5
    assert v.real(None, "Top-p", 0, 1, default=1.0) == 1.0
    with pytest.raises(InputError, match="above 0"):
        v.real(0, "Top-p", 0, 1, lo_open=True)
    with pytest.raises(InputError, match="at most 5"):
        v.real(1e308, "Temperature", 0, 5)
    with pytest.raises(InputError, match="ordinary number"):
        v.real("-inf", "Temperature", 0, 5)
    with pytest.raises(InputError, match="at most 5"):
        v.real(10**400, "Temperature", 0, 5)


def test_flag_choice_seed():
    assert v.flag("true", "x") is True and v.flag(0, "x") is False and v.flag(None, "x", True) is True
    with pytest.raises(InputError):
        v.flag("maybe", "Expand")
    assert v.choice(" English ", "Language", v.LANGUAGES) == "en"
    assert v.choice("中文", "Language", v.LANGUAGES) == "zh"
    with pytest.raises(InputError, match="one of: en, zh"):
        v.choice(3, "Language", v.LANGUAGES)
    assert v.seed(None) is None and v.seed(-1) is None and v.seed("") is None and v.seed("42") == 42
    with pytest.raises(InputError, match="Seed"):
        v.seed(2**40)


@pytest.mark.parametrize("value, fragment", [
    ("", "empty"), ("   \n", "empty"), (None, "empty"), (12, "must be text"),
    ("x" * (v.MAX_PROMPT_CHARS + 1), "too long"),
])
def test_prompt_refusals(value, fragment):
    with pytest.raises(InputError, match=fragment):
        v.prompt(value)


def test_prompt_accepts_any_unicode_up_to_the_limit():
    assert v.prompt("\ud800 lone surrogate, emoji 🙂, 中文") .startswith("\ud800")
    assert len(v.prompt("y" * v.MAX_PROMPT_CHARS)) == v.MAX_PROMPT_CHARS


# ------------------------------------------------------------------------------------------ holder


def test_missing_default_leaves_a_notice_not_a_crash(tmp_path):
    holder = ModelHolder(tmp_path / "nope.safetensors")
    assert holder.ensure_loaded() is None
    info = holder.info()
    assert info["loaded"] is False and "nope.safetensors was not found" in info["message"]
    with pytest.raises(Exception, match="No model is loaded yet"):
        holder.require()


def test_bad_file_keeps_the_model_in_use(weights_dir, tmp_path):
    holder = ModelHolder(weights_dir / "tiny.safetensors", hash_in_background=False)
    before = holder.require()
    ok, msg = load_weights(holder, weights_dir / "broken.safetensors")
    assert not ok and "Could not load **broken.safetensors**" in msg and "still **tiny**" in msg
    assert holder.current() is before
    ok, msg = load_weights(holder, tmp_path / "gone.safetensors")
    assert not ok and holder.current() is before
    ok, msg = load_weights(holder, weights_dir / "tiny.safetensors", "again.safetensors")
    assert ok and "Loaded **again**" in msg
    assert holder.current().generation == before.generation + 1


def test_a_load_prepares_the_fp32_decoder_in_the_background(weights_dir):
    import time
    snap = ModelHolder(weights_dir / "tiny.safetensors", hash_in_background=False).require()
    deadline = time.monotonic() + 60
    while "fp32" not in fast_decode._prepared.get(snap.model, {}) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(fast_decode._prepared[snap.model]) == {"fp32"}   # the others wait for their first use
    off = ModelHolder(weights_dir / "tiny.safetensors", hash_in_background=False, prepare_fast_weights=False)
    time.sleep(0.2)
    assert off.require().model not in fast_decode._prepared


def test_hub_download_offline_says_where_to_put_the_file(holder, monkeypatch, tmp_path):
    from playground.checkpoints.hub import download_gpt2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # An empty cache: a copy of gpt2-medium cached on this machine must not be loaded here.
    from playground.ui.views import model as model_view
    monkeypatch.setattr(model_view, "download_gpt2", lambda size: download_gpt2(size, cache_dir=tmp_path))
    before = holder.current()
    ok, msg = download_and_load(holder, "gpt2-medium")
    assert not ok and "HF_HUB_OFFLINE" in msg and "weights/" in msg
    assert holder.current() is before
    with pytest.raises(InputError, match="Model size"):
        download_and_load(holder, "gpt3")


def test_model_info_and_markdown(holder):
    info = holder.info()
    assert info["loaded"] and info["parameters"] == make_model().num_parameters()
    assert info["device"] == "cpu" and len(info["sha256_prefix"]) == 12 and info["file_size_bytes"] > 0
    text = model_markdown(info)
    assert "tiny.safetensors" in text and info["sha256_prefix"] in text


def test_weight_files_and_resolve_in(weights_dir):
    assert weight_files(weights_dir) == ["broken.safetensors", "tiny.safetensors"]
    assert weight_files(weights_dir / "missing") == []
    assert resolve_in(weights_dir, "tiny.safetensors") == (weights_dir / "tiny.safetensors").resolve()
    for bad in ("../etc/passwd", "/etc/passwd", "", None, "tiny.bin"):
        with pytest.raises(InputError):
            resolve_in(weights_dir, bad)


# ------------------------------------------------------------------------------------------ generate


def test_generate_streams_tokens_stats_and_alternatives(snap):
    req = check_generate(snap, "Hello there", 6, 1.0, 20, 0.9, 7, 5)
    views = [(len(gv.steps), gv.done) for gv in stream_generation(snap, req)]
    assert views == [(1, False), (2, False), (3, False), (4, False), (5, False), (6, False), (6, True)]
    gv = list(stream_generation(snap, req))[-1]
    assert gv.highlighted()[0] == ("Hello there", None)
    assert all(band in PROB_COLORS for _, band in gv.highlighted()[1:])
    assert "**Prompt:** 2 tokens" in gv.stats() and "**generated:** 6 tokens" in gv.stats()
    caption, rows = gv.alternatives(0)
    assert caption.startswith("Token 1 of 6") and 5 <= len(rows) <= 6
    assert any(r[4] == "◀ drawn" for r in rows)
    record = json.loads(gv.to_json())
    assert record["generated_tokens"] == 6 and record["settings"]["seed"] == 7
    assert gv.to_csv().splitlines()[0] == "step,token_id,token,prob,cropped,alternatives"


def test_generate_is_reproducible_with_a_seed(snap):
    req = check_generate(snap, "Hello", 8, 1.0, 0, 1.0, 123, 3)
    a = list(stream_generation(snap, req))[-1].ids[:]
    b = list(stream_generation(snap, req))[-1].ids[:]
    assert a == b


@pytest.mark.parametrize("choice, engine", [("fp32", "fp32"), ("bf16 (faster)", "bf16"), ("INT8", "int8"),
                                            (None, "fp32"), ("bfloat16", "bf16")])
def test_generate_precision_choice_reaches_the_engine(snap, choice, engine):
    req = check_generate(snap, "Hello", 4, 0.0, 0, 1.0, None, 3, choice)
    assert req.precision == engine
    fast_decode.invalidate(snap.model)
    gv = list(stream_generation(snap, req))[-1]
    assert set(fast_decode._prepared.get(snap.model, {})) == {engine}   # the decoder it ran on
    assert gv.record()["settings"]["precision"] == engine and f"**precision:** {engine}" in gv.stats()


def test_generate_fp32_choice_gives_the_models_own_greedy_text(snap):
    req = check_generate(snap, "Hello there", 10, 0.0, 0, 1.0, None, 3, "fp32")
    ids = list(stream_generation(snap, req))[-1].ids
    snap.model.set_explicit_attention(True)          # the model's own forward, no fast path
    try:
        assert ids == generate(snap.model, "Hello there", 10, temperature=0).ids
    finally:
        snap.model.set_explicit_attention(False)


def test_generate_notes_when_cropping_began(snap):
    req = check_generate(snap, "one two three", 40, 0.0, 0, 1.0, None, 3)
    gv = list(stream_generation(snap, req))[-1]
    assert gv.crop_started_at is not None and "no longer fits" in gv.stats()


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(prompt=""), "empty"),
    (dict(prompt="word " * 40), "at most 32 tokens"),
    (dict(prompt="x", max_new_tokens=0), "Max new tokens"),
    (dict(prompt="x", max_new_tokens=float("nan")), "ordinary number"),
    (dict(prompt="x", temperature=-1), "Temperature"),
    (dict(prompt="x", top_k=10**9), "Top-k"),
    (dict(prompt="x", top_p=1.5), "Top-p"),
    (dict(prompt="x", seed="soon"), "Seed"),
    (dict(prompt="x", precision="fp64"), "Precision must be one of: fp32, bf16, int8"),
])
def test_generate_validation(snap, kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        check_generate(snap, **kwargs)


def test_tokens_outside_a_small_vocabulary_are_a_plain_error(tmp_path):
    small = make_model(PRESETS["gpt2"].replace(vocab_size=300, context_length=16, emb_dim=16, n_heads=2,
                                               n_layers=1))
    holder = ModelHolder(save_model(small, tmp_path / "small.safetensors"))
    with pytest.raises(InputError, match="knows only 300 different tokens"):
        check_generate(holder.require(), "Hello world")


# ------------------------------------------------------------------------------------------ attention


@pytest.mark.parametrize("kind", ["single head", "all heads", "mean & max"])
def test_attention_views(snap, kind):
    req = check_attention(snap, PROMPT, 1, 2, kind)
    av = attention_view(snap, req)
    assert av.figure.data and av.figure.data[0].type == "heatmap"
    headers, rows = av.grid()
    assert headers == ["layer", "head 0", "head 1", "head 2", "head 3"] and len(rows) == 2
    data = json.loads(av.to_json())
    assert data["view"] == VIEW_LABELS[req.view] and len(data["tokens"]) == len(req.prompt_ids)
    assert set(data["scores"]) == set(SCORE_NAMES)
    assert av.to_csv().startswith("layer,head,query,key")


def test_attention_long_prompt_is_cropped_with_a_note(snap):
    req = check_attention(snap, "word" + " word" * 299, 0, 0)
    assert len(req.prompt_ids) == snap.model.cfg.context_length
    assert "300 tokens" in req.note and "last 32" in req.note
    assert "300 tokens" in attention_view(snap, req).note


def test_attention_window_counts_in_the_users_own_positions(snap):
    """A 40-token text keeps its last 32 in the view (tokens 8-39): a window starting at token 10 of the
    text starts at the view's row 2; one before the view or past the end moves, and the note says so."""
    text = "word" + " word" * 39                          # 40 tokens
    full = check_attention(snap, text, 0, 0, "single head", window_start=None)
    assert full.offset == 8 and len(full.prompt_ids) == 32
    req = check_attention(snap, text, 0, 0, "single head", window_start=10, tokens_shown=4)
    assert req.query_window() == ((2, 6), "")
    av = attention_view(snap, req)
    assert list(av.figure.data[0].y)[0] == 2 and "window starts" not in av.note      # the first row: position 2
    assert "queries 10-13, keys 10-13 of 40 tokens" in av.figure.layout.title.text    # said in the text's positions
    early = check_attention(snap, text, 0, 0, "single head", window_start=3, tokens_shown=4)
    assert early.query_window()[0] == (0, 4)
    assert "holds tokens 8–39 of your text: it starts at token 8" in attention_view(snap, early).note
    late = check_attention(snap, text, 0, 0, "single head", window_start=500, tokens_shown=4)
    assert late.query_window()[0] == (28, 32)
    assert "cannot start at token 500" in attention_view(snap, late).note


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(layer=2), "This model has 2 layers"), (dict(head=-1), "Head"), (dict(view="sideways"), "View"),
    (dict(tokens_shown=1), "Tokens shown"), (dict(score="vibes"), "Score"),
])
def test_attention_validation(snap, kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        check_attention(snap, PROMPT, **kwargs)


def test_one_token_prompt_still_scores_heads(snap):
    av = attention_view(snap, check_attention(snap, "Hi", 0, 0))
    assert av.scores.source == "random" and "random tokens" in av.note


# ------------------------------------------------------------------------------------------ shapes, lens, next


def test_trace_view_in_both_languages(snap):
    en = trace_view(snap, PROMPT, "en")
    zh = trace_view(snap, PROMPT, "中文", expand=True)
    assert en.table()[1]["step"] == "token embedding" and zh.lang == "zh"
    assert len(zh.table()) > len(en.table())            # every block expanded
    assert en.trace.total_params == snap.model.num_parameters()
    assert en.figure.layout.title.text and json.loads(en.to_json())["rows_zh"]


def test_lens_and_next_token(snap):
    lv = lens_view(snap, PROMPT, 3, -1)
    assert lv.figure.data[0].type == "heatmap" and lv.data()["layer_names"][0] == "embeddings"
    nv = next_view(snap, PROMPT, 0.8, 5, 0.9, 7)
    assert len(nv.rows()) == 7 and "can be drawn" in nv.summary()
    with pytest.raises(InputError, match="Position"):
        lens_view(snap, "Hi there", 3, 99)


# ------------------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize("preset, total", [("book-124M", 163_009_536), ("gpt2", 124_439_808)])
def test_params_match_the_book(preset, total):
    pv = params_view(preset_config(preset), None)
    assert pv.breakdown.total == total and f"{total:,}" in pv.summary_markdown()
    assert "nothing to compare" in pv.comparison
    tree, bar = pv.figures()
    assert tree.data[0].type == "treemap" and bar.data


def test_params_compare_with_the_loaded_model(snap):
    pv = params_view(snap.model.cfg, snap)
    assert "matches exactly" in pv.comparison and "this is its config" in pv.comparison
    assert "x as many" in params_view(PRESETS["gpt2"], snap).comparison


def test_params_validation():
    cfg = check_params("50257", 1024.0, 768, 12, 12, "true", False)
    assert cfg.qkv_bias is True and cfg.emb_dim == 768
    with pytest.raises(InputError, match="divisible by the number of heads"):
        check_params(emb_dim=100, n_heads=7)
    with pytest.raises(InputError, match="Layers"):
        check_params(n_layers=0)
    with pytest.raises(InputError, match="Preset"):
        preset_config("gpt5")
    assert preset_config("XL") == PRESETS["gpt2-xl"]


# ------------------------------------------------------------------------------------------ exports, links


def test_export_file_writes_a_fresh_file():
    a, b = export_file("x", "json", "{}"), export_file("x", "json", "[]")
    assert a != b and Path(a).read_text() == "{}" and Path(a).name == "x.json"


def test_deeplink_parse_is_forgiving():
    link = deeplink.parse({"tab": "Attention", "prompt": "Hi there", "layer": "3", "head": "x", "view": "all heads",
                           "present": "1", "lang": "中文"})
    assert (link.tab, link.prompt, link.layer, link.head, link.view, link.present, link.lang) == \
        ("attention", "Hi there", 3, None, "layer", True, "zh")
    assert deeplink.parse({"tab": "nowhere", "layer": "-4"}).is_empty()
    assert len(deeplink.parse({"prompt": "p" * 10_000}).prompt) == deeplink.MAX_PROMPT_CHARS


def test_deeplink_round_trip():
    query = deeplink.build("attention", {"prompt": "The cat & the hat", "layer": 3, "head": 5, "view": "head"})
    assert query == "?tab=attention&prompt=The+cat+%26+the+hat&layer=3&head=5&view=head"
    from urllib.parse import parse_qsl
    link = deeplink.parse(dict(parse_qsl(query[1:])))
    assert (link.tab, link.prompt, link.layer, link.head, link.view) == ("attention", "The cat & the hat", 3, 5, "head")
    assert deeplink.build("parameters", {"prompt": "ignored"}, present=True) == "?tab=parameters&present=1"
    assert deeplink.build("shapes", {"prompt": "x", "lang": "zh"}) == "?tab=shapes&prompt=x"   # the page's, not the tab's
    assert deeplink.build("shapes", {"prompt": "x"}, lang="zh") == "?tab=shapes&prompt=x&lang=zh"
    assert deeplink.build("shapes", {"prompt": "x"}, lang="klingon") == "?tab=shapes&prompt=x"


def test_deeplink_carries_every_generate_control():
    values = {"prompt": "Once upon", "max_new_tokens": 40.0, "temperature": 0.8, "top_k": 40, "top_p": 0.95,
              "seed": 7, "precision": "bf16", "layer": 3}
    query = deeplink.build("generate", values)
    assert query == ("?tab=generate&prompt=Once+upon&max_new_tokens=40&temperature=0.8&top_k=40&top_p=0.95"
                     "&seed=7&precision=bf16")                 # layer is not a Generate control
    from urllib.parse import parse_qsl
    link = deeplink.parse(dict(parse_qsl(query[1:])))
    expected = {k: val for k, val in values.items() if k != "layer"}
    assert {k: link.get(k) for k in expected} == {**expected, "max_new_tokens": 40}
    # Values that do not fit are dropped, never an error.
    bad = deeplink.parse({"temperature": "nan", "top_p": "0", "seed": "1.5", "precision": "fp64", "top_k": "-1"})
    assert bad.values == {}


def test_inf_and_nan_never_reach_json(snap):
    av = attention_view(snap, check_attention(snap, PROMPT, 0, 0))
    text = av.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert not any(isinstance(x, float) and math.isnan(x) for x in json.loads(text)["weights"][0])


def test_the_score_grid_figure_shows_the_score_the_table_shows(snap):
    """One selector for both: the figure has no buttons of its own, it draws the chosen score."""
    av = attention_view(snap, check_attention(snap, PROMPT, 0, 0, score="induction"))
    fig = av.scores_figure
    assert not fig.layout.updatemenus and len(fig.data) == 1 and fig.data[0].name == "induction"
    headers, rows = av.grid()
    assert [r[1:] for r in rows] == [[round(float(x), 3) for x in row] for row in fig.data[0].z.tolist()]


def test_model_info_names_the_cpu_and_the_kernels_prepared(holder):
    """/model_info's ``cpu`` and ``kernels``: the layouts of every precision prepared so far, by matrix."""
    from playground.fast_decode import fast_weights
    from playground.kernel_choice import LAYOUTS, cpu_name
    fast_weights(holder.require().model, "fp32")
    info = holder.info()
    assert info["cpu"] == cpu_name() and info["cpu"]
    assert set(info["kernels"]["fp32"]) == {"qkv", "out_proj", "ff_expand", "ff_contract", "head"}
    assert all(part.removeprefix("rows>1 ") in LAYOUTS for k in info["kernels"]["fp32"].values() for part in k.split(", "))
    assert set(info["kernels_missing"]) <= set(info["kernels"])


def test_compare_two_prompts(snap):
    """The Compare experiment: the same prompt twice moves nothing; two prompts that differ in one token say
    where, and the tokens that moved most come first."""
    from playground.ui.views.experiments import comparison_view
    same = comparison_view(snap, "The cat sat on the mat", "The cat sat on the mat")
    assert same.kl_bits == pytest.approx(0.0, abs=1e-6) and all(abs(m["delta"]) < 1e-6 for m in same.moved)
    c = comparison_view(snap, "The cat sat on the mat", "The cat sat on the rug")
    assert c.kl_bits > 0 and c.common_prefix == 5 and [d["position"] for d in c.diff] == [5]
    deltas = [abs(m["delta"]) for m in c.moved]
    assert deltas == sorted(deltas, reverse=True)
    assert all(m["delta"] == pytest.approx(m["prob_b"] - m["prob_a"]) for m in c.moved)
    with pytest.raises(InputError, match="Prompt B"):
        comparison_view(snap, "The cat", "")
