"""``app.py`` launched for real on a tiny model, driven through ``gradio_client``: every named
endpoint, streaming, Stop, and the error cases (including raw HTTP values a client cannot send)."""
from __future__ import annotations

import importlib
import json
import sys
import time

import httpx
import pytest
import torch

from playground.checkpoints import save_model
from tests.factories import make_model
from tests.live_app import free_port, settled_steps

ENDPOINTS = {"/generate", "/attention", "/trace", "/params", "/logit_lens", "/next_token", "/surprisal", "/ablate",
             "/attribution", "/patch", "/circuit", "/saliency", "/neuron", "/embeddings", "/qk", "/walkthrough",
             "/model_info", "/train_start", "/train_curves", "/train_control"}
MODEL_ENDPOINTS = {"generate", "attention", "trace", "logit_lens", "next_token", "surprisal", "ablate", "attribution",
                   "patch", "circuit", "saliency", "neuron", "embeddings", "qk", "walkthrough"}


@pytest.fixture(scope="module")
def app_module(tmp_path_factory):
    """``import app`` with the weights path from the environment, as a test or Space would."""
    path = save_model(make_model(), tmp_path_factory.mktemp("w") / "tiny.safetensors")
    mp = pytest.MonkeyPatch()
    mp.setenv("PLAYGROUND_WEIGHTS", str(path))
    sys.modules.pop("app", None)
    module = importlib.import_module("app")
    yield module
    mp.undo()
    sys.modules.pop("app", None)


def test_import_builds_demo_without_serving(app_module):
    assert app_module.demo is not None and not app_module.demo.is_running
    assert app_module.holder.current() is None            # loaded on first need, not at import
    args = app_module.parse_args(["--weights", "w.safetensors", "--host", "0.0.0.0", "--port", "7861"])
    assert (args.weights, args.host, args.port) == ("w.safetensors", "0.0.0.0", 7861)


def test_model_events_share_one_bounded_queue(app_module):
    """Hooked views one at a time in the "model" queue; generations (the page's and the API's) in
    the "generate" queue, as many at once as the batcher decodes together."""
    demo = app_module.demo
    assert demo._queue.max_size == 64
    deps = {d["api_name"]: d for d in demo.config["dependencies"] if d.get("api_name")}
    for name in MODEL_ENDPOINTS:
        fn = demo.fns[deps[name]["id"]]
        expected = ("generate", 16) if name == "generate" else ("model", 1)
        assert (fn.concurrency_id, fn.concurrency_limit) == expected, name
    ui_model_events = [f for f in demo.fns.values() if f.concurrency_id == "model"]
    assert len(ui_model_events) > len(MODEL_ENDPOINTS)     # the page's own events use the same queue
    page_generations = [f for f in demo.fns.values() if f.concurrency_id == "generate"]
    assert len(page_generations) == 3                      # /generate, the button, the prompt's Enter


@pytest.fixture(scope="module")
def server(app_module):
    from gradio_client import Client

    from playground.ui import launch_kwargs
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    demo = app_module.demo
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_kwargs())
    client = Client(url, verbose=False)
    try:
        yield client, url
    finally:
        client.close()
        demo.close()
        torch.set_num_threads(before)


def error_of(client, *args, api_name: str) -> str:
    with pytest.raises(Exception) as e:
        client.predict(*args, api_name=api_name)
    return str(e.value)


@pytest.mark.slow
def test_only_the_named_endpoints_are_public(server):
    client, _ = server
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == ENDPOINTS
    assert api["unnamed_endpoints"] == {}
    gen = {p["parameter_name"]: p["parameter_default"] for p in api["named_endpoints"]["/generate"]["parameters"]}
    assert gen == {"prompt": None, "max_new_tokens": 50, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
                   "seed": None, "alternatives": 5, "precision": "fp32"}


@pytest.mark.slow
def test_model_info(server):
    client, _ = server
    info = client.predict(api_name="/model_info")
    assert info["loaded"] and info["name"] == "tiny" and info["device"] == "cpu"
    assert info["config"]["n_layers"] == 2 and info["parameters"] == make_model().num_parameters()


@pytest.mark.slow
def test_generate_streams_one_message_per_token(server):
    client, _ = server
    job = client.submit("Hello there", 8, 1.0, 0, 1.0, 5, 3, api_name="/generate")
    messages = list(job)
    assert [m["done"] for m in messages] == [False] * 8 + [True]
    assert [m["step"] for m in messages[:-1]] == list(range(8))
    assert all(len(m["alternatives"]) == 3 for m in messages[:-1])
    final = messages[-1]
    assert final["generated_tokens"] == 8 and len(final["steps"]) == 8
    assert final["generated_text"] == messages[-2]["text"] and final["tokens_per_second"] > 0
    again = client.predict("Hello there", 8, 1.0, 0, 1.0, 5, 3, api_name="/generate")
    assert again["generated_text"] == final["generated_text"]        # same seed, same text
    fast = client.predict("Hello there", 8, 0.0, 0, 1.0, 5, 3, "bf16", api_name="/generate")
    assert fast["settings"]["precision"] == "bf16" and fast["generated_tokens"] == 8


@pytest.mark.slow
def test_stop_ends_the_row_in_the_batch(app_module, server, monkeypatch):
    """Cancel a running /generate: its row leaves the shared batch long before its 500 steps, and the
    next request gets the same text as alone. (The batch runs many requests at once, so how soon the
    next one answers says nothing: the batcher's own state is checked.)"""
    client, _ = server
    batcher = app_module.batcher
    from playground.ui.views import generate as gen_view
    real = gen_view.stream_generation

    def slow(*args, **kwargs):          # 10 ms a token: the row (8 steps ahead at most) runs 100 steps a second
        for view in real(*args, **kwargs):
            time.sleep(0.01)
            yield view
    monkeypatch.setattr(gen_view, "stream_generation", slow)
    alone = client.predict("Hi", 2, 0.0, api_name="/generate")
    before = settled_steps(batcher)
    job = client.submit("Once upon a time", 500, 1.0, 0, 1.0, None, 1, api_name="/generate")
    deadline = time.time() + 60
    while len(job.outputs()) < 3 and time.time() < deadline and not job.done():
        time.sleep(0.02)
    assert not job.done() and batcher.active_rows() == 1
    job.cancel()
    assert settled_steps(batcher) - before < 250          # 500 steps (and more) had it run on
    assert batcher.active_rows() == 0
    result = client.predict("Hi", 2, 0.0, api_name="/generate")
    assert result["generated_text"] == alone["generated_text"]


@pytest.mark.slow
def test_generate_decodes_in_the_shared_batch(app_module, server, monkeypatch):
    """Two /generate requests at once run as rows of the app's one batch, each with its own text:
    the same as the request alone."""
    import threading
    client, _ = server
    batcher = app_module.batcher
    requests = [("Once upon a time", 12, 1.0, 0, 1.0, 7, 1), ("The cat sat", 12, 0.8, 40, 0.9, 3, 1)]
    alone = [client.predict(*r, api_name="/generate")["generated_text"] for r in requests]
    from playground.ui.views import generate as gen_view
    real, both = gen_view.stream_generation, threading.Barrier(2, timeout=30)

    def together(*args, **kwargs):       # each stream waits for the other's first token: both rows are in
        for i, view in enumerate(real(*args, **kwargs)):
            if i == 0:
                both.wait()
            yield view
    monkeypatch.setattr(gen_view, "stream_generation", together)
    settled_steps(batcher)
    steps, batcher.rows_per_step_max = batcher.steps_run, 0
    jobs = [client.submit(*r, api_name="/generate") for r in requests]
    texts = [job.result(timeout=60)["generated_text"] for job in jobs]
    assert texts == alone
    assert batcher.rows_per_step_max == 2 and batcher.steps_run > steps
    assert batcher.active_rows() == 0


@pytest.mark.slow
def test_inspection_endpoints(server):
    client, _ = server
    prompt = "The cat sat on the mat. The cat sat"
    head = client.predict(prompt, 1, 2, "single head", api_name="/attention")
    n = len(head["tokens"])
    assert head["layer"] == 1 and head["head"] == 2 and len(head["weights"]) == n and len(head["weights"][0]) == n
    assert set(head["scores"]) == {"previous_token", "first_token", "current_token", "entropy", "induction",
                                   "prompt_induction"}
    assert all(x is not None for x in head["scores"]["prompt_induction"][0])     # "The cat sat" repeats
    layer = client.predict(prompt, 0, 0, "all heads", api_name="/attention")
    assert len(layer["weights"]) == 4
    agg = client.predict(prompt, 0, 0, "mean & max", api_name="/attention")
    assert set(agg["weights"]) == {"mean", "max"}

    trace = client.predict(prompt, "zh", api_name="/trace")
    assert trace["rows"][1]["step"] == "词嵌入" and trace["total_params"] == make_model().num_parameters()

    params = client.predict(api_name="/params")
    assert params["summary"]["total"] == 163_009_536                     # the book's untied count
    gpt2 = client.predict(preset="gpt2", api_name="/params")
    assert gpt2["summary"]["total"] == 124_439_808 and "tiny" in gpt2["comparison"]

    lens = client.predict(prompt, 3, api_name="/logit_lens")
    assert lens["layer_names"] == ["embeddings", "block 0", "block 1"] and len(lens["top_ids"][0][0]) == 3

    nxt = client.predict(prompt, 0.7, 5, 0.9, 4, api_name="/next_token")
    assert len(nxt["rows"]) == 4 and nxt["n_kept"] <= 5


@pytest.mark.slow
@pytest.mark.parametrize("args, api_name, fragment", [
    (("",), "/generate", "Prompt is empty"),
    (("word " * 40,), "/generate", "at most 32 tokens"),
    (("Hi", 10_000), "/generate", "Max new tokens must be between 1 and 500"),
    (("Hi", "lots"), "/generate", "Max new tokens must be a number"),
    (("Hi", 5, 1.0, 50, 0.0), "/generate", "Top-p must be above 0"),
    (("Hi", 5, 1.0, 50, 1.0, 1, 3, "fp64"), "/generate", "Precision must be one of: fp32, bf16, int8"),
    (("Hi", 7), "/attention", "This model has 2 layers"),
    (("Hi", 0, 9), "/attention", "This model has 4 heads"),
    (("Hi", 0, 0, "diagonal"), "/attention", "View must be one of"),
    (("Hi", "klingon"), "/trace", "Language must be one of"),
    ((768, 1024, 100, 7), "/params", "divisible by the number of heads"),
    ((0,), "/params", "Vocabulary size must be between"),
    (("Hi", 0), "/logit_lens", "Top-k must be between 1 and 20"),
    (("Hi", -3), "/next_token", "Temperature must be at least 0"),
    (("x" * 100_001,), "/next_token", "too long"),
])
def test_errors_are_plain_sentences(server, args, api_name, fragment):
    client, _ = server
    assert fragment in error_of(client, *args, api_name=api_name)


def raw_call(url: str, api_name: str, body: str) -> str:
    """POST through Gradio's plain HTTP API (what curl would send), return the event stream text."""
    base = url.rstrip("/") + "/gradio_api/call/" + api_name
    with httpx.Client(timeout=60) as http:
        r = http.post(base, content=body, headers={"content-type": "application/json"})
        r.raise_for_status()
        return http.get(f"{base}/{r.json()['event_id']}").text


@pytest.mark.slow
@pytest.mark.parametrize("first, fragment", [
    ('"Hi", NaN', "Max new tokens must be an ordinary number"),
    ('"Hi", Infinity', "Max new tokens must be an ordinary number"),
    ('"Hi", [1, 2]', "Max new tokens must be a number (got list)"),
    ('"Hi", true', "Max new tokens must be a number, not true"),
    ('{"a": 1}, 5', "Prompt must be text"),
    ('null, 5', "Prompt is empty"),
    ('"Hi", 5, -Infinity', "Temperature must be an ordinary number"),
])
def test_raw_http_values_a_client_cannot_send(server, first, fragment):
    _, url = server
    # Raw calls must carry every argument (Gradio fills in no defaults for them).
    given = len(json.loads("[" + first + "]"))            # Python's json reads NaN and Infinity too
    defaults = ["", 50, 1.0, 50, 1.0, None, 5, "fp32"]
    body = '{"data": [' + first + "".join(", " + json.dumps(x) for x in defaults[given:]) + "]}"
    stream = raw_call(url, "generate", body)
    assert "event: error" in stream and fragment in stream


@pytest.mark.slow
def test_raw_http_generate_streams(server):
    _, url = server
    stream = raw_call(url, "generate", json.dumps({"data": ["Hello", 3, 0.0, 0, 1.0, None, 2, "int8"]}))
    assert stream.count("event: generating") >= 3 and "event: complete" in stream


# ------------------------------------------------------------------------------------ experiments

@pytest.mark.slow
def test_surprisal_endpoint(server):
    client, _ = server
    out = client.predict("The cat sat on the mat", api_name="/surprisal")
    assert out["tokens"] == ["The", "␣cat", "␣sat", "␣on", "␣the", "␣mat"]
    assert out["surprisal_bits"][0] is None and all(b >= 0 for b in out["surprisal_bits"][1:])
    assert len(out["top"][1]) == 5 and out["rank"][1] >= 1
    assert out["perplexity"] == pytest.approx(2 ** out["mean_bits"])


@pytest.mark.slow
def test_ablate_endpoint(server):
    client, _ = server
    out = client.predict("The cat sat on the mat. The cat", "L1H2, L0H0", "1", api_name="/ablate")
    assert out["heads"] == ["L1H2", "L0H0"] and out["mlps"] == [1]
    assert len(out["before"]) == len(out["after"]) == 10 and out["kl_bits"] > 0
    assert {"token", "token_id", "prob"} <= set(out["before"][0])
    none = client.predict("The cat sat on the mat. The cat", "", "", api_name="/ablate")
    assert none["kl_bits"] == pytest.approx(0, abs=1e-9) and none["before"] == none["after"]
    assert "numbered 0 to 1" in error_of(client, "x", "L99H0", "", api_name="/ablate")


@pytest.mark.slow
def test_attribution_endpoint(server):
    client, _ = server
    out = client.predict("The cat sat on the", " mat", " floor", api_name="/attribution")
    names = [c["name"] for c in out["components"]]
    assert names[0] == "embed" and names[-1] == "final_norm shift" and "L1H3" in names and "L0 MLP" in names
    assert sum(c["value"] for c in out["components"]) == pytest.approx(out["actual"], abs=1e-4)
    assert "2 tokens" in error_of(client, "The cat", " Paris France", "", api_name="/attribution")


@pytest.mark.slow
def test_patch_endpoint(server):
    client, _ = server
    out = client.predict("The cat sat on the mat", "The cat sat on the rug", " mat", " rug", api_name="/patch")
    assert out["layers"] == [0, 1] and len(out["restored"]) == 2 and len(out["restored"][0]) == 6
    assert out["restored"][0][-1] == pytest.approx(1.0, abs=1e-4)   # the differing token itself, entering block 0
    assert all(abs(x) < 1e-6 for x in out["restored"][0][:-1])        # positions where the prompts agree
    msg = error_of(client, "The cat sat", "The cat sat on", " mat", " rug", api_name="/patch")
    assert "same number of tokens" in msg and "cat" in msg


@pytest.mark.slow
def test_circuit_endpoint(server):
    client, _ = server
    out = client.predict("The cat sat on the mat. The cat sat on the", "The dog ran to the rug. The cat sat on the",
                         " mat", " rug", 40, False, api_name="/circuit")
    kept = [e for e in out["edges"] if e["in_circuit"]]
    assert 0 < len(kept) <= 40 and out["edges"][0]["rank"] == 1
    ends, starts = {e["downstream"] for e in kept}, {e["upstream"] for e in kept}
    assert all((e["upstream"] == "input" or e["upstream"] in ends) and (e["downstream"] == "logits"
               or e["downstream"] in starts) for e in kept)                # pruned to paths from input to logits
    assert abs(out["edges"][0]["score"]) >= abs(out["edges"][-1]["score"])
    if out["recovered"] is not None:
        assert out["recovered"] == pytest.approx((out["m_circuit"] - out["m_corrupted"])
                                                 / (out["m_clean"] - out["m_corrupted"]), abs=1e-6)
    assert out["curve"] and out["curve"][-1]["recovered"] == pytest.approx(1.0, abs=1e-3)     # every edge kept
    msg = error_of(client, "The cat sat", "The cat sat on", " mat", " rug", 5, False, api_name="/circuit")
    assert "3" in msg and "4" in msg                                                         # both token counts
    assert "one token" in error_of(client, "The cat", "The dog", " Paris France", " rug", 5, False,
                                   api_name="/circuit")
    assert "Edges in the circuit" in error_of(client, "The cat", "The dog", " mat", " rug", 0, False,
                                              api_name="/circuit")


@pytest.mark.slow
def test_learned_endpoints(server):
    """/saliency, /neuron, /embeddings and /qk: the definitions' own identities hold over HTTP."""
    client, _ = server
    gxi = client.predict("The cat sat on the mat", " the", "gradient_x_input", 1, api_name="/saliency")
    assert len(gxi["scores"]) == len(gxi["labels"]) == 6 and gxi["target"]["token"] == "␣the"
    ig = client.predict("The cat sat on the mat", " the", "integrated_gradients", 128, api_name="/saliency")
    assert ig["completeness_gap"] == pytest.approx(sum(ig["scores"]) - (ig["f_input"] - ig["f_baseline"]), abs=1e-4)
    out = client.predict("The cat sat on the mat", 1, 5, api_name="/neuron")
    assert len(out["activations"]) == 6 and len(out["direct_effect"]["top"]) == 10
    assert out["index_progress"] == 1.0 or out["contexts"] is None
    assert "between 0 and 127" in error_of(client, "The cat", 1, 10**6, api_name="/neuron")
    pos = client.predict("positions", "", None, "", "", 16, api_name="/embeddings")
    assert len(pos["points"]) == 16 and sum(pos["explained"]) <= 1 + 1e-6 and pos["explained"][0] >= pos["explained"][1]
    assert "not one token" in error_of(client, "tokens", "", None, "", "cat, xqzvwkjh", None, api_name="/embeddings")
    row = client.predict("The cat sat on the mat", 1, 2, -1, api_name="/qk")
    assert abs(sum(row["weights"]) - 1) < 1e-5 and len(row["scores"]) == 6


@pytest.mark.slow
def test_walkthrough_endpoint(server):
    from playground.inspection.walkthrough import STEP_IDS
    client, _ = server
    out = client.predict("The cat sat on the mat. The cat sat on the", 1, 2, api_name="/walkthrough")
    assert [s["id"] for s in out["steps"]] == list(STEP_IDS)
    assert out["tokens"][:2] == ["The", "␣cat"] and len(out["token_ids"]) == 8 and "first 8 tokens" in out["note"]
    weights = next(s for s in out["steps"] if s["id"] == "attn_weights")
    assert weights["shape"] == [1, 4, 8, 8] and all(abs(sum(r) - 1) < 1e-4 for r in weights["values"])
    assert all(s["explanation"]["en"] and s["explanation"]["zh"] and s["code"] for s in out["steps"])
    assert "between 0 and 1" in error_of(client, "x", 7, 0, api_name="/walkthrough")


@pytest.mark.slow
def test_errors_follow_the_requests_language_and_answers_keep_english_keys(server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    _, url = server
    zh = Client(url, verbose=False, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    try:
        with pytest.raises(AppError, match="必须在 0 到"):
            zh.predict("The cat", 99, 0, "single head", api_name="/attention")
        answer = zh.predict("The cat sat", 0, 0, "single head", api_name="/attention")
        assert answer["view"] == "single head" and "tokens" in answer and "scores" in answer
    finally:
        zh.close()
    en, _ = server
    with pytest.raises(AppError, match="Layer must be between"):
        en.predict("The cat", 99, 0, "single head", api_name="/attention")
