"""Many users and their faults: the load test's short version, and clients that leave mid-stream or
press Stop (their row must leave the shared batch: the batcher's own state is checked, not how soon
the next request answers, since the batch runs many at once)."""
from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from playground.checkpoints import save_model
from playground.tokenizer import get_tokenizer
from tests.factories import make_model
from tests.live_app import fn_index, imported_app, served, settled, settled_steps

SLOW_TOKEN_S = 0.01            # with this pace a 500-token run takes 5 s
ALONE = ["Hi", 2, 0.0, 0, 1.0, None, 1, "fp32"]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    path = save_model(make_model(), tmp_path_factory.mktemp("w") / "tiny.safetensors")
    with imported_app({"PLAYGROUND_WEIGHTS": str(path)}) as app, served(app.demo) as url:
        yield app, url


@pytest.fixture
def slow_generation(monkeypatch):
    """10 ms a token, and a count of the tokens made (to see that a run really ended)."""
    from playground.ui.views import generate as gen_view
    real = gen_view.stream_generation
    made = {"tokens": 0}

    def slow(*args, **kwargs):
        for view in real(*args, **kwargs):
            time.sleep(SLOW_TOKEN_S)
            made["tokens"] += 1
            yield view
    monkeypatch.setattr(gen_view, "stream_generation", slow)
    return made


def generated_text(url: str, data: list = ALONE) -> str:
    """The text of one /generate over plain HTTP."""
    with httpx.Client(timeout=60) as http:
        r = http.post(f"{url}/gradio_api/call/generate", json={"data": data})
        text = http.get(f"{url}/gradio_api/call/generate/{r.json()['event_id']}").text
    assert "event: complete" in text, text[-500:]
    return json.loads(text.split("event: complete")[1].split("data:", 1)[1])[0]["generated_text"]


def assert_row_left(app, steps_before: int, made: dict) -> None:
    """The abandoned 500-token row left the batch long before its end, and the next request works. (The row
    leaves when its reader is closed, which a loaded machine may take a few seconds to do: waited for, to a
    deadline, so a row that never leaves still fails.)"""
    deadline = time.time() + 30
    while (app.batcher.active_rows() or app.batcher.waiting_rows()) and time.time() < deadline:
        time.sleep(0.1)
    assert settled_steps(app.batcher) - steps_before < 250
    assert app.batcher.active_rows() == 0 and app.batcher.waiting_rows() == 0
    assert settled(lambda: made["tokens"]) < 250


@pytest.mark.slow
def test_an_api_client_that_disconnects_mid_stream_frees_the_worker(live, slow_generation):
    app, url = live
    before = settled_steps(app.batcher)
    with httpx.Client(timeout=60) as http:
        r = http.post(f"{url}/gradio_api/call/generate",
                      json={"data": ["Once upon a time", 500, 1.0, 0, 1.0, None, 1, "fp32"]})
        seen = 0
        with http.stream("GET", f"{url}/gradio_api/call/generate/{r.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                seen += line.startswith("event: generating")
                if seen >= 3:
                    break                       # leave: the connection closes here
    assert_row_left(app, before, slow_generation)
    assert generated_text(url)


@pytest.mark.slow
def test_a_browser_tab_closed_mid_stream_frees_the_worker(live, slow_generation):
    app, url = live
    before = settled_steps(app.batcher)
    session = uuid.uuid4().hex[:12]
    data = ["Once upon a time", 500, 1.0, 0, 1.0, -1, "fp32", False]          # the Generate tab's inputs
    with httpx.Client(timeout=60) as http:
        http.post(f"{url}/gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index(app.demo, "ui_generate"), "session_hash": session,
            "event_data": None, "trigger_id": None}).raise_for_status()
        seen = 0
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_generating":
                    seen += 1
                    if seen >= 2:
                        break
    assert_row_left(app, before, slow_generation)
    assert generated_text(url)


@pytest.mark.slow
def test_the_page_stop_button_frees_the_worker(live, slow_generation):
    """What the browser does on Stop: POST /cancel for the running Generate event, page still open
    (the stream stays connected while the row is checked: leaving it would end the run anyway)."""
    app, url = live
    alone = generated_text(url)
    before = settled_steps(app.batcher)
    session = uuid.uuid4().hex[:12]
    index = fn_index(app.demo, "ui_generate")
    with httpx.Client(timeout=60) as http:
        event_id = http.post(f"{url}/gradio_api/queue/join", json={
            "data": ["Once upon a time", 500, 1.0, 0, 1.0, -1, "fp32", False], "fn_index": index,
            "session_hash": session, "event_data": None, "trigger_id": None}).json()["event_id"]
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            lines = stream.iter_lines()
            while slow_generation["tokens"] < 3:
                next(lines)
            http.post(f"{url}/gradio_api/cancel", json={"session_hash": session, "fn_index": index,
                                                         "event_id": event_id}).raise_for_status()
            assert_row_left(app, before, slow_generation)
            assert generated_text(url) == alone


@pytest.mark.slow
def test_one_users_bad_request_does_not_disturb_another(live):
    """A stream of refused requests (bad values) interleaved with another user's generation."""
    from gradio_client import Client
    _, url = live
    client = Client(url, verbose=False)
    try:
        reference = client.predict("The cat sat", 30, 1.0, 0, 1.0, 3, 2, api_name="/generate")
        results = {}
        worker = threading.Thread(target=lambda: results.update(
            client.predict("The cat sat", 30, 1.0, 0, 1.0, 3, 2, api_name="/generate")))
        worker.start()
        with httpx.Client(timeout=60) as http:
            for body in ('{"data": ["Hi", NaN, 1, 1, 1, null, 1, "fp32"]}', '{"data": [null, 5, 1, 1, 1, null, 1, "fp32"]}',
                         '{"data": ["Hi", 5, 1, 1, 0, null, 1, "fp32"]}', '{"data": ["' + "x" * 100_001 + '"]}'):
                r = http.post(f"{url}/gradio_api/call/generate", content=body,
                              headers={"content-type": "application/json"})
                if r.status_code == 200:
                    text = http.get(f"{url}/gradio_api/call/generate/{r.json()['event_id']}").text
                    assert "event: error" in text
        worker.join(60)
        assert results["generated_text"] == reference["generated_text"]
    finally:
        client.close()


@pytest.mark.slow
def test_the_load_tests_caller_streams_and_says_what_went_wrong(live):
    """bench.load's HTTP caller: the time of the first message and the final record, or the
    server's own message as the error."""
    from bench.load import GenerateCaller
    _, url = live
    caller = GenerateCaller(url)
    try:
        start = time.perf_counter()
        first, last = caller("The cat sat", 6, 0.0, 0, 1.0, None, 2, "fp32")
        assert last["done"] and 1 <= last["generated_tokens"] <= 6 and last["settings"]["max_new_tokens"] == 6
        assert start < first < time.perf_counter()
        with pytest.raises(RuntimeError, match="Prompt is empty"):
            caller("", 6, 0.0, 0, 1.0, None, 2, "fp32")
    finally:
        caller.close()


def test_the_callers_stream_reader_skips_heartbeats():
    """A request waiting in the queue gets a heartbeat every 15 s: not its first token."""
    from bench.load import read_stream
    ticks = iter(range(100))
    lines = ["event: heartbeat", "data: null", "", "event: heartbeat", "data: null", "",
             'event: generating', 'data: [{"done": false, "step": 0}]', "",
             'event: generating', 'data: [{"done": true, "generated_tokens": 1}]', "",
             'event: complete', 'data: [{"done": true, "generated_tokens": 1}]']
    first, last = read_stream(lines, clock=lambda: next(ticks))
    assert first == 0 and last == {"done": True, "generated_tokens": 1}
    with pytest.raises(RuntimeError, match="without its final message"):
        read_stream(lines[:9])
    with pytest.raises(RuntimeError, match="busy"):
        read_stream(["event: heartbeat", "data: null", "event: error", 'data: {"error": "busy"}'])


@pytest.mark.slow
def test_load_short_version():
    from bench import load
    result = load.run(clients=4, seconds=4, warmup=2, tokens=8)
    print("\n" + load.report(result))
    assert result["server_alive"]
    assert result["errors"] == {}, result["error_examples"]
    assert all(result["served"].get(name, 0) > 0 for name, _ in load.MIX), result["served"]
    assert result["rss_mb"]["growth_after_warmup"] <= result["max_growth_mb"]


def test_the_view_benchmark_calls_every_view_as_its_endpoint_takes_it(live, monkeypatch):
    """bench.view_latency's calls match the endpoints' arguments (a renamed or reordered argument fails here,
    not an hour into `make bench`), every call gets a prompt of its own, and each view has a first call and
    a median."""
    from bench import view_latency
    monkeypatch.setattr(view_latency, "SETTLE_S", 0.0)
    short = view_latency.prompts(12, 3)
    assert len(set(short)) == 3 and all(8 <= len(get_tokenizer().encode(p)) <= 14 for p in short)
    _, url = live
    got = view_latency.measure(url, reps=1, log=lambda line: None)
    assert set(got) == set(view_latency.VIEWS) | set(view_latency.PAIRED)
    for view, sizes in got.items():
        for size, row in sizes.items():
            assert row["first"] > 0 and len(row["times"]) == 1 and row["median"] == row["times"][0], (view, size)
