"""Property-based tests of everything in the app that takes user input.

The API endpoint functions and the page's event functions are taken from a
built ``demo`` (the very callables the server runs), on a tiny model, and fed what
an HTTP caller can send: any Unicode, empty and 100,000-character prompts,
``<|endoftext|>``, numbers at and past their bounds, NaN, inf, huge integers,
strings, lists, ``None``. Every call must end in a result that JSON can carry or
in a ``gr.Error`` with a message, within seconds. The number of cases tried per
handler is printed at the end (``PLAYGROUND_FUZZ_EXAMPLES`` raises the count).
"""
from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.ui import build_demo, deeplink
from playground.ui.views.attention import attention_view, check_attention
from playground.ui.views.generate import check_generate
from playground.ui.views.logit_lens import lens_view
from playground.ui.views.model import load_weights, resolve_in
from playground.ui.views.next_token import next_view
from playground.ui.views.shapes import trace_view
from playground.ui import validate as v
from playground.ui.common import InternalError
from playground.ui.state import ModelHolder
from playground.checkpoints import save_model
from tests.factories import TINY, make_model

EXAMPLES = int(os.environ.get("PLAYGROUND_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,        # replay: the profile in conftest.py
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
SECONDS_PER_CALL = 20           # a "hang": far beyond what a tiny model needs for any input
SMALL = settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
TRIED: Counter = Counter()      # handler name -> cases run

# ------------------------------------------------------------------------------------ strategies

EDGE_TEXTS = [
    "", " ", "\n\t  \r\n", "\x00", "\x00" * 50, "<|endoftext|>", "a<|endoftext|>b<|endoftext|>",
    "<|endoftext|>" * 500, "\u202eRTL override\u202c", "مرحبا بالعالم", "שלום", "🙂" * 30,
    "👩‍👩‍👧‍👦🏳️‍🌈", "\ud800", "x\udfffy", "\ufeff", "\u200b\u200b", "e\u0301" * 40, "\x1b[31mred",
    "../../etc/passwd", "<script>alert(1)</script>", "%s%n{0}", "中文提示词", "word " * 20_000,
    "🙂" * 50_000, "x" * v.MAX_PROMPT_CHARS, "x" * (v.MAX_PROMPT_CHARS + 1),
]
any_text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=120)
prompt_values = st.one_of(any_text, any_text, st.sampled_from(EDGE_TEXTS),
                          st.none(), st.integers(), st.lists(st.integers(), max_size=3))

JUNK = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e309", " 3 ", "3.5", "0x10", "", "  ", "1_000",
                     "٣", "12abc", "None", "true", "[]", "-0"]),
    st.none(), st.booleans(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                   st.integers(), max_size=2),
)


def number(lo: float, hi: float) -> st.SearchStrategy:
    """Values a caller may send for a control with bounds [lo, hi]: inside, at, just past, and junk."""
    span = max(hi - lo, 1)
    near = st.one_of(st.integers(int(lo) - 3, int(min(hi, lo + 40)) + 3),
                     st.sampled_from([lo, hi, lo - 1, hi + 1, -1, 0, -hi, hi * 10, 2**31, 2**63, 5e-324, 1e-300,
                                      1e-46, 1e-38, lo + 1e-12, hi - 1e-12]),
                     st.floats(lo - span, hi + span, allow_nan=False))
    return st.one_of(near, near, JUNK)


def choice_of(*names: str) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(names), st.sampled_from([n.upper() for n in names]), any_text, JUNK)


precisions = choice_of("fp32", "bf16", "int8", "fp32 (exact)", "bf16 (faster)")
flags = st.one_of(st.booleans(), st.sampled_from(["true", "false", "yes", "0", 1, 0, 2, "maybe"]), JUNK)

# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A demo on a tiny model and its callables by name (API endpoints and page events)."""
    folder = tmp_path_factory.mktemp("weights")
    save_model(make_model(), folder / "tiny.safetensors")
    holder = ModelHolder(folder / "tiny.safetensors", device="cpu", hash_in_background=False)
    holder.require()
    demo = build_demo(holder, weights_dir=folder)
    fns = {}
    for f in demo.fns.values():
        if f.fn is not None:
            fns.setdefault(f.api_name, f.fn)
            fns.setdefault(f.fn.__name__, f.fn)
    yield holder, fns, folder
    demo.close()


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    if TRIED:
        line = "fuzz cases per handler: " + ", ".join(f"{k} {n}" for k, n in sorted(TRIED.items()))
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\n" + line)
        out = os.environ.get("PLAYGROUND_FUZZ_REPORT")
        if out:
            Path(out).write_text(json.dumps(dict(TRIED), indent=1, sort_keys=True))


def call(name: str, fn: Callable, *args: Any) -> Any:
    """Run ``fn`` (draining a generator); the result, or None after a clear gr.Error."""
    TRIED[name] += 1
    start = time.perf_counter()
    try:
        out = fn(*args)
        if hasattr(out, "__next__"):
            out = list(out)
    except gr.Error as e:
        assert not isinstance(e, InternalError), f"{name}: an internal error (a bug) for {args!r}"
        assert isinstance(e.message, str) and e.message.strip(), f"{name}: empty error message"
        assert "Traceback" not in e.message
        out = None
    assert time.perf_counter() - start < SECONDS_PER_CALL, f"{name} took too long"
    return out


def json_safe(value: Any) -> None:
    """What the API returns must be strict JSON (no NaN/inf: browsers and clients refuse them)."""
    json.dumps(value, allow_nan=False, default=lambda o: o.tolist() if isinstance(o, torch.Tensor) else str(o))


# ------------------------------------------------------------------------------------ API endpoints


@FUZZ
@given(prompt=prompt_values, n=number(1, v.MAX_NEW_TOKENS), temperature=number(0, v.MAX_TEMPERATURE),
       top_k=number(0, 60_000), top_p=number(0, 1), seed=number(-1, v.MAX_SEED), alternatives=number(1, 20),
       precision=precisions)
def test_api_generate(app, prompt, n, temperature, top_k, top_p, seed, alternatives, precision):
    _, fns, _ = app
    if isinstance(n, int) and n > 40:      # long runs are legal but slow: keep the bound, not the length
        n = v.MAX_NEW_TOKENS if n == v.MAX_NEW_TOKENS else 40
    out = call("api /generate", fns["generate"], prompt, n, temperature, top_k, top_p, seed, alternatives,
               precision)
    if out is not None:
        assert out[-1]["done"] and out[-1]["generated_tokens"] == len(out) - 1
        json_safe(out)


@FUZZ
@given(prompt=prompt_values, layer=number(0, 1), head=number(0, 3),
       view=choice_of("single head", "all heads", "mean & max"))
def test_api_attention(app, prompt, layer, head, view):
    _, fns, _ = app
    out = call("api /attention", fns["attention"], prompt, layer, head, view)
    if out is not None:
        assert len(out["tokens"]) <= TINY.context_length
        json_safe(out)


@FUZZ
@given(prompt=prompt_values, language=choice_of("en", "zh", "中文"), expand=flags)
def test_api_trace(app, prompt, language, expand):
    _, fns, _ = app
    out = call("api /trace", fns["trace"], prompt, language, expand)
    if out is not None:
        assert len(out["token_ids"]) <= TINY.context_length
        json_safe(out)


@FUZZ
@given(vocab=number(1, 1_000_000), ctx=number(1, 1_000_000), emb=number(1, 100_000), heads=number(1, 1_000),
       layers=number(1, 1_000), bias=flags, tie=flags,
       preset=st.one_of(st.just(""), st.just(""), choice_of("gpt2", "gpt2-xl", "book-124M", "medium")))
def test_api_params(app, vocab, ctx, emb, heads, layers, bias, tie, preset):
    _, fns, _ = app
    out = call("api /params", fns["params"], vocab, ctx, emb, heads, layers, bias, tie, preset)
    if out is not None:
        assert out["summary"]["total"] > 0
        json_safe(out)


@FUZZ
@given(prompt=prompt_values, top_k=number(1, 20))
def test_api_logit_lens(app, prompt, top_k):
    _, fns, _ = app
    out = call("api /logit_lens", fns["logit_lens"], prompt, top_k)
    if out is not None:
        json_safe(out)


@FUZZ
@given(prompt=prompt_values, temperature=number(0, v.MAX_TEMPERATURE), top_k=number(0, 60_000),
       top_p=number(0, 1), show=number(1, 50))
def test_api_next_token(app, prompt, temperature, top_k, top_p, show):
    _, fns, _ = app
    out = call("api /next_token", fns["next_token"], prompt, temperature, top_k, top_p, show)
    if out is not None:
        assert 1 <= len(out["rows"]) <= 50
        json_safe(out)


head_lists = st.one_of(st.sampled_from(["", "L0H0", "L1H3, L0H1", "L99H0", "l1h2", "X3", "L0H9", "L0H0,,L0H0",
                                         "0, 1", "2", "-1", "1.5", "L1H-1"]), any_text, JUNK)
token_texts = st.one_of(st.sampled_from([" the", "the", " mat", " Paris France", "", " ", "\ud800", "🙂",
                                         "<|endoftext|>"]), any_text, JUNK)


@FUZZ
@given(prompt=prompt_values)
def test_api_surprisal(app, prompt):
    _, fns, _ = app
    out = call("api /surprisal", fns["surprisal"], prompt)
    if out is not None:
        assert out["surprisal_bits"][0] is None and len(out["surprisal_bits"]) == len(out["tokens"])
        json_safe(out)


@FUZZ
@given(prompt=prompt_values, heads=head_lists, mlps=head_lists)
def test_api_ablate(app, prompt, heads, mlps):
    _, fns, _ = app
    out = call("api /ablate", fns["ablate"], prompt, heads, mlps)
    if out is not None:
        assert len(out["before"]) == len(out["after"]) and out["kl_bits"] >= 0
        json_safe(out)


@FUZZ
@given(prompt=prompt_values, target=token_texts, distractor=token_texts)
def test_api_attribution(app, prompt, target, distractor):
    _, fns, _ = app
    out = call("api /attribution", fns["attribution"], prompt, target, distractor)
    if out is not None:
        assert abs(out["total"] - out["actual"]) < 1e-3
        json_safe(out)


@SMALL
@given(clean=prompt_values, corrupted=prompt_values, target=token_texts, distractor=token_texts)
def test_api_patch(app, clean, corrupted, target, distractor):
    _, fns, _ = app
    out = call("api /patch", fns["patch"], clean, corrupted, target, distractor)
    if out is not None:
        assert len(out["restored"]) == TINY.n_layers and len(out["restored"][0]) == len(out["tokens"])
        json_safe(out)


def test_api_patch_on_a_real_pair(app):
    _, fns, _ = app
    out = call("api /patch", fns["patch"], "The cat sat on the mat", "The cat sat on the rug", " mat", " rug")
    assert out is not None and len(out["restored"][0]) == 6
    json_safe(out)


def test_api_model_info(app):
    _, fns, _ = app
    info = call("api /model_info", fns["model_info"])
    assert info["loaded"] and info["config"]["n_layers"] == TINY.n_layers
    json_safe(info)


# ------------------------------------------------------------------------------------ page events



@SMALL
@given(prompt=prompt_values, n=number(1, 40), temperature=number(0, 2), top_k=number(0, 200), top_p=number(0, 1),
       seed=number(-1, v.MAX_SEED), precision=precisions, present=flags)
def test_page_generate(app, prompt, n, temperature, top_k, top_p, seed, precision, present):
    _, fns, _ = app
    call("page generate", fns["ui_generate"], prompt, n, temperature, top_k, top_p, seed, precision, present)


@SMALL
@given(prompt=prompt_values, layer=number(0, 1), head=number(0, 3), view=choice_of("head", "layer", "aggregate"),
       score=choice_of("previous_token", "induction", "entropy"), start=number(0, 255), shown=number(2, 256),
       log=flags, hide=flags)
def test_page_attention(app, prompt, layer, head, view, score, start, shown, log, hide):
    _, fns, _ = app
    call("page attention", fns["ui_attention"], prompt, layer, head, view, score, start, shown, log, hide, False)


@SMALL
@given(prompt=prompt_values, language=choice_of("en", "zh"), expand=flags)
def test_page_trace(app, prompt, language, expand):
    _, fns, _ = app
    call("page shapes", fns["ui_trace"], prompt, language, expand, False)


@SMALL
@given(vocab=number(1, 200_000), ctx=number(1, 8192), emb=number(1, 4096), heads=number(1, 64),
       layers=number(1, 96), bias=flags, tie=flags)
def test_page_params(app, vocab, ctx, emb, heads, layers, bias, tie):
    _, fns, _ = app
    out = call("page parameters", fns["ui_params"], vocab, ctx, emb, heads, layers, bias, tie, False)
    assert out is not None          # live controls say what is wrong in place, never a pop-up


@SMALL
@given(prompt=prompt_values, position=number(-40, 40))
def test_page_logit_lens(app, prompt, position):
    _, fns, _ = app
    call("page logit lens", fns["ui_lens"], prompt, position, False)


@SMALL
@given(prompt=prompt_values, temperature=number(0, 2), top_k=number(0, 200), top_p=number(0, 1),
       show=number(1, 50), stages=flags)
def test_page_next_token(app, prompt, temperature, top_k, top_p, show, stages):
    _, fns, _ = app
    call("page next token", fns["ui_next"], prompt, temperature, top_k, top_p, show, stages, False)


@SMALL
@given(name=st.one_of(st.sampled_from(["tiny.safetensors", "../tiny.safetensors", "../../etc/passwd",
                                       "/etc/passwd", "..", ".", "nope.safetensors", "tiny.safetensors/..",
                                       "./tiny.safetensors", "x\x00.safetensors", "%2e%2e/etc/passwd",
                                       "/proc/self/environ"]), any_text, JUNK))
def test_page_load_file_only_reads_the_weights_folder(app, name):
    holder, fns, folder = app
    before = holder.current()
    out = call("page load file", fns["ui_load_file"], name)
    now = holder.current()
    assert now is not None and now.path.parent.resolve() == folder.resolve()
    if out is None:
        assert now is before                   # refused: the model in use did not change


@SMALL
@given(tab=choice_of(*deeplink.TABS), prompt=prompt_values, layer=JUNK, head=JUNK, view=JUNK, lang=JUNK,
       present=flags)
def test_deep_links_never_fail(app, tab, prompt, layer, head, view, lang, present):
    _, fns, _ = app
    call("page copy link", fns["ui_link"], tab, present, *([prompt, layer, head, view, lang] * 8))
    params = {"tab": tab, "prompt": prompt, "layer": layer, "head": head, "view": view, "lang": lang,
              "present": present, "preset": prompt}
    TRIED["deeplink.parse"] += 1
    link = deeplink.parse(params)
    assert link.prompt is None or len(link.prompt) <= deeplink.MAX_PROMPT_CHARS


# ------------------------------------------------------------------------------------ validate


@FUZZ
@given(value=st.one_of(number(-5, 5), JUNK), lo=st.integers(-10, 0), hi=st.integers(0, 10))
def test_validators_return_clean_values_or_refuse(value, lo, hi):
    TRIED["validate.*"] += 1
    for fn in (lambda: v.whole(value, "N", lo, hi), lambda: v.real(value, "X", lo, hi),
               lambda: v.flag(value, "F"), lambda: v.seed(value), lambda: v.prompt(value),
               lambda: v.choice(value, "C", v.LANGUAGES), lambda: v.index(value, "Layer", hi + 1)):
        try:
            out = fn()
        except v.InputError as e:
            assert e.message.strip()
            continue
        if isinstance(out, float):
            assert math.isfinite(out)


# ------------------------------------------------------------------------------------ long prompts


@pytest.fixture(scope="module")
def long_snap(tmp_path_factory):
    """A tiny model with a 2,048-token window, so the views' own caps (not the window) crop."""
    folder = tmp_path_factory.mktemp("long")
    path = save_model(make_model(TINY.replace(context_length=2048)), folder / "long.safetensors")
    return ModelHolder(path, device="cpu", hash_in_background=False).require()


def test_a_prompt_longer_than_any_cap_is_cropped_and_said(long_snap):
    text = "word " * 20_000                                   # 100,000 characters, 20,001 tokens
    att = attention_view(long_snap, check_attention(long_snap, text, 1, 3, "all heads"), figures=False)
    data = json.loads(att.to_json())
    assert len(data["tokens"]) == v.ATTENTION_TOKENS and len(data["weights"][0]) == v.ATTENTION_TOKENS
    assert "the attention view shows the last 256" in att.note and "20,001 tokens" in att.note
    tv = trace_view(long_snap, text)
    assert len(tv.trace.token_ids) == v.TRACE_TOKENS and "shape trace shows the last 1,024" in tv.note
    lens = lens_view(long_snap, text)
    assert lens.lens.n_tokens == v.LENS_TOKENS and "logit lens shows the last 64" in lens.note
    nv = next_view(long_snap, text)
    assert "next-token view shows the last 2,048" in nv.note
    with pytest.raises(v.InputError, match="20,001 tokens long, but this model reads at most 2,048"):
        check_generate(long_snap, text)


# ------------------------------------------------------------------------------------ found by fuzzing


def test_copy_link_takes_any_value(app):
    """Were TypeError and UnicodeEncodeError (a list as the tab, a lone surrogate in the prompt)."""
    _, fns, _ = app
    assert fns["ui_link"](["attention"], "Hi", [1], {}, None, 5, [2], {"a": 1}, ["head"], 3, True)
    assert deeplink.build("attention", {"prompt": "a\ud800b", "layer": 1, "head": 2, "view": "head"}) == \
        "?tab=attention&prompt=a%3Fb&layer=1&head=2&view=head"
    assert deeplink.build(7, {"view": [1], "lang": {}}) == ""
    assert deeplink.build("attention", {"layer": [1], "head": {}, "view": object()}) == "?tab=attention"


def test_a_nul_byte_in_a_file_name_is_a_plain_refusal(app, tmp_path):
    """Were ValueError("embedded null byte") from Path.resolve and os.stat."""
    holder, _, folder = app
    with pytest.raises(v.InputError, match="listed .safetensors"):
        resolve_in(folder, "x\x00.safetensors")
    ok, message = load_weights(holder, str(tmp_path / "x\x00.safetensors"))
    assert not ok and "not a valid file name" in message and holder.current() is not None


# ------------------------------------------------------------------------------------ over HTTP

HTTP_ENDPOINTS = {
    "generate": st.tuples(prompt_values, number(1, 12), number(0, 5), number(0, 60_000), number(0, 1),
                          number(-1, v.MAX_SEED), number(1, 20), precisions),
    "attention": st.tuples(prompt_values, number(0, 1), number(0, 3), choice_of("single head", "all heads")),
    "trace": st.tuples(prompt_values, choice_of("en", "zh"), flags),
    "params": st.tuples(number(1, 10**6), number(1, 10**6), number(1, 10**5), number(1, 1000), number(1, 1000),
                        flags, flags, st.one_of(st.just(""), choice_of("gpt2"))),
    "logit_lens": st.tuples(prompt_values, number(1, 20)),
    "next_token": st.tuples(prompt_values, number(0, 5), number(0, 60_000), number(0, 1), number(1, 50)),
    "surprisal": st.tuples(prompt_values),
    "ablate": st.tuples(prompt_values, head_lists, head_lists),
    "attribution": st.tuples(prompt_values, token_texts, token_texts),
}


@pytest.fixture(scope="module")
def http_url(app):
    from tests.live_app import served
    holder, fns, folder = app
    demo = build_demo(holder, weights_dir=folder)
    with served(demo) as url:
        yield url


@settings(FUZZ, max_examples=max(EXAMPLES // 4, 8))
@given(data=st.data())
@pytest.mark.parametrize("endpoint", sorted(HTTP_ENDPOINTS))
def test_over_http_every_answer_is_a_result_or_a_plain_error(http_url, endpoint, data):
    """The raw JSON an HTTP caller sends (NaN and Infinity included): `complete`, or `error` with the
    validation layer's title; an unexpected exception would come back titled "Error"."""
    from tests.live_app import call_raw, stream_events
    args = list(data.draw(HTTP_ENDPOINTS[endpoint]))
    TRIED[f"http /{endpoint}"] += 1
    body = json.dumps({"data": args})                 # NaN/Infinity as JavaScript writes them
    events = stream_events(call_raw(http_url, endpoint, body))
    kinds = [k for k, _ in events if k != "heartbeat"]
    assert kinds and kinds[-1] in ("complete", "error"), events[-3:]
    if kinds[-1] == "error":
        err = events[-1][1]
        assert isinstance(err, dict) and err.get("title") == "Please check your input", err
        assert err["error"].strip()


@pytest.mark.parametrize("body", ['{"data": ["Hi"]}', '{"data": "Hi"}', "{}", "[1]", "garbage", "",
                                  '{"data": [' + "[" * 2000 + "]" * 2000 + "]}", '{"data": null}'])
def test_over_http_a_malformed_body_is_refused_not_a_server_error(http_url, body):
    import httpx
    TRIED["http malformed body"] += 1
    with httpx.Client(timeout=60) as http:
        r = http.post(f"{http_url}/gradio_api/call/generate", content=body,
                      headers={"content-type": "application/json"})
        assert r.status_code < 500, r.text[:300]
        if r.status_code == 200:
            text = http.get(f"{http_url}/gradio_api/call/generate/{r.json()['event_id']}").text
            assert "event: error" in text and "null" not in text.split("event: error")[-1][:20]


def test_a_temperature_too_small_for_float32_samples_greedily(app):
    """Was NaN probabilities (torch.multinomial raised): 1e-46 rounds to 0 in float32."""
    _, fns, _ = app
    greedy = fns["next_token"]("The cat sat", 0, 0, 1.0, 3)
    for t in (1e-46, 4.9e-234, 5e-324):
        out = list(fns["generate"]("The cat sat", 4, t, 0, 1.0, 1, 2))
        assert out[-1]["generated_tokens"] == 4
        assert fns["next_token"]("The cat sat", t, 0, 1.0, 3)["rows"][0]["token_id"] == greedy["rows"][0]["token_id"]
