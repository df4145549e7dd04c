"""Giving a talk in a real browser (Debian chromium driven by playwright): the shipped deck stepped through with
the keyboard, each slide's view the one named with its controls set; the speaker window following and driving;
a deck uploaded and downloaded; bad uploads refused with their messages; the top bar one row on a projector.

Screenshots land in ``tests/artifacts/`` (git-ignored)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from playground.checkpoints import save_model
from playground.ui import deck as dk
from playground.ui import nav
from tests.factories import TINY, make_model
from tests.live_app import free_port
from tests.test_browser import ARTIFACTS, CHROMIUM, TIMEOUT_MS, browser, expect_text  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(url, every view's link controls by tab id) of a running app on a tiny model."""
    from playground.ui import ModelHolder, build_demo, launch_kwargs
    from playground.ui import app as ui_app
    built: dict[str, Any] = {}
    mp = pytest.MonkeyPatch()
    for m in ui_app.TAB_MODULES + ui_app.CHILD_MODULES:      # keep what each tab's build returns
        mp.setattr(m, "build", lambda ctx, _build=m.build, _m=m: built.setdefault(_m.TAB_ID, _build(ctx)))
    folder = tmp_path_factory.mktemp("weights")
    save_model(make_model(), folder / "tiny.safetensors")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        demo = build_demo(ModelHolder(folder / "tiny.safetensors", device="cpu"), weights_dir=folder)
    finally:
        mp.undo()
    for t in list(built.values()):
        built.update({k: v for k, v in getattr(t, "children", {}).items() if k not in built})
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_kwargs())
    try:
        yield url.rstrip("/"), {tab: t.link_controls() for tab, t in built.items()}
    finally:
        demo.close()
        torch.set_num_threads(before)


@pytest.fixture
def context(browser, live):
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.outside = []
    ctx.on("request", lambda r: ctx.outside.append(r.url)
           if not (r.url.startswith(live[0]) or r.url.startswith(("data:", "blob:"))) else None)
    yield ctx
    ctx.close()


def wait_slide(page, n: int) -> None:
    """Until slide ``n`` (1-based) is shown and its view drawn."""
    page.wait_for_function(f"document.body.dataset.slideReady === '{n}'", timeout=TIMEOUT_MS)


def shown_value(page, elem_id: str) -> str | None:
    """What a control shows: a text box's text, a slider's or number's number (None for other controls)."""
    return page.evaluate("""(id) => { const root = document.getElementById(id); if (!root) return null;
        const box = root.querySelector('textarea, input[type=number], input[type=text]');
        return box ? box.value : null; }""", elem_id)


def expected(name: str, value: Any) -> str:
    clamp = {"layer": TINY.n_layers - 1, "head": TINY.n_heads - 1}        # the sliders fit the tiny model
    if name in clamp:
        value = min(value, clamp[name])
    return str(value)


def test_walk_the_shipped_deck_with_the_keyboard(context, live):
    url, controls = live
    deck = dk.load_shipped("gpt2-inside", "en")
    page = context.new_page()
    page.goto(f"{url}/?deck=gpt2-inside&slide=1")
    wait_slide(page, 1)
    assert page.evaluate("document.body.classList.contains('presentation')")     # presentation mode by default
    keys = ["ArrowRight", "PageDown"]
    checked = 0
    for i, slide in enumerate(deck.slides):
        if i:
            page.keyboard.press(keys[i % 2])                     # arrows and what a clicker sends
            wait_slide(page, i + 1)
        expect_text(page, "#deck-title", f"{i + 1} / {len(deck.slides)}")
        expect_text(page, "#deck-title", slide.title)
        assert f"slide={i + 1}" in page.url and "deck=gpt2-inside" in page.url
        selected = page.evaluate("() => [...document.querySelectorAll('[role=tab][aria-selected=true]')]"
                                 ".filter(e => e.offsetParent !== null).map(e => e.innerText.trim())")
        assert nav.label(slide.tab) in selected, (slide.tab, selected)             # the view named is open
        for name, value in slide.values.items():                                   # with its controls set
            comp = controls[slide.tab].get(name)                                   # (a preset is no control)
            shown = shown_value(page, comp.elem_id) if comp is not None else None  # (None: in a closed section)
            if shown is not None and type(comp).__name__ in ("Textbox", "Slider", "Number"):
                assert shown == expected(name, value), (i + 1, name, value)
                checked += 1
        page.screenshot(path=str(ARTIFACTS / f"deck-{i + 1:02d}-{slide.tab}.png"))
    assert checked >= 20                                          # controls seen set, over the deck
    page.keyboard.press("ArrowRight")                            # past the last slide: it stays
    time.sleep(1)
    expect_text(page, "#deck-title", f"{len(deck.slides)} / {len(deck.slides)}")
    page.keyboard.press("PageUp")
    wait_slide(page, len(deck.slides) - 1)
    assert context.outside == [], f"the page fetched from outside its server: {context.outside}"


def test_a_change_on_a_slide_stays_until_the_slide_is_left(context, live):
    url, _ = live
    page = context.new_page()
    page.goto(f"{url}/?deck=gpt2-inside&slide=4")                 # attention, "Every effort moves you forward…"
    wait_slide(page, 4)
    page.locator("#att-prompt textarea").fill("What if the prompt were this")
    page.click("#att-btn")
    expect_text(page, "#att-fig", "prompt")                      # the audience's prompt, drawn live
    page.locator("#deck-title").click()
    page.keyboard.press("ArrowRight")
    wait_slide(page, 5)
    page.keyboard.press("ArrowLeft")
    wait_slide(page, 4)
    assert page.input_value("#att-prompt textarea").startswith("Every effort moves you forward")


def test_the_speaker_window_follows_and_drives(context, live):
    url, _ = live
    deck = dk.load_shipped("gpt2-inside", "en")
    main = context.new_page()
    main.goto(f"{url}/?deck=gpt2-inside&slide=2")
    wait_slide(main, 2)
    speaker = context.new_page()                                 # the same browser: the channel reaches it
    speaker.goto(f"{url}/?deck=gpt2-inside&notes=1")
    expect_text(speaker, "#sv-count", "2 / 12")
    expect_text(speaker, "#sv-title", deck.slides[1].title)
    expect_text(speaker, "#sv-next-title", deck.slides[2].title)
    expect_text(speaker, "#sv-notes", "tok_emb")                 # the notes, as rendered Markdown
    assert speaker.locator("#sv-notes code").count() >= 1
    assert not speaker.locator("#tabs").is_visible()             # notes only, no view
    speaker.screenshot(path=str(ARTIFACTS / "deck-speaker.png"))
    main.locator("#deck-title").click()
    main.keyboard.press("ArrowRight")
    expect_text(speaker, "#sv-count", "3 / 12")
    expect_text(speaker, "#sv-title", deck.slides[2].title)
    speaker.click("#sv-next")                                    # the speaker window drives the talk
    wait_slide(main, 4)
    speaker.keyboard.press("PageUp")
    wait_slide(main, 3)
    expect_text(speaker, "#sv-count", "3 / 12")
    assert speaker.inner_text("#sv-elapsed") and ":" in speaker.inner_text("#sv-slide-time")


def open_talk(page, url: str) -> None:
    page.goto(f"{url}/?tab=talk")
    page.locator("#deck-open").wait_for(state="visible")


def upload(page, path: Path) -> None:
    page.locator("#deck-upload").locator("xpath=preceding-sibling::input[@type='file']").set_input_files(str(path))


def test_an_uploaded_deck_round_trips(context, live, tmp_path):
    url, _ = live
    data = dk.deck_to_dict(dk.load_shipped("ioi", "en"))
    data["x-venue"] = "Room 4"
    path = tmp_path / "talk.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    page = context.new_page()
    open_talk(page, url)
    page.locator("#deck-upload").wait_for()
    upload(page, path)
    expect_text(page, "#deck-message", "Opened “Who gets the drink? A circuit inside GPT-2”: 9 slides")
    expect_text(page, "#deck-slides", "Which heads write ' Mary'")
    with page.expect_download() as got:
        page.click("#deck-download")
    assert json.loads(Path(got.value.path()).read_text(encoding="utf-8")) == data
    page.click("#deck-start")                                    # the IOI deck on a tiny model: it says so
    wait_slide(page, 1)
    expect_text(page, "#deck-warning", "needs a model of at least 12 layers × 12 heads")


@pytest.mark.parametrize("content, fragment", [
    (b"\x89PNG\r\n\x1a\n not a deck", "not text"),
    (b"{\"slides\": [", "not JSON: line 1"),
    (b"{\"title\": \"a model card\"}", "not a deck"),
    (b"{\"slides\": [{\"view\": {\"tab\": \"atention\"}}]}", "the tab \"atention\" does not exist"),
    (b"{\"slides\": [{\"view\": {\"tab\": \"attention\", \"colour\": 1}}]}", "no control colour"),
    (b" " * 10_000_000 + b"{}", "The file is 10.0 MB"),
])
def test_bad_uploads_give_their_messages(context, live, tmp_path, content, fragment):
    url, _ = live
    page = context.new_page()
    open_talk(page, url)
    page.click("#deck-open")                                     # the deck in use
    expect_text(page, "#deck-message", "Opened “GPT-2 from the inside”")
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    upload(page, path)
    expect_text(page, "#deck-message", "Could not open bad.json")
    expect_text(page, "#deck-message", fragment)
    expect_text(page, "#deck-message", "The deck in use (“GPT-2 from the inside”) is kept.")
    assert page.input_value("#deck-name input, #deck-name textarea") == "GPT-2 from the inside"
    expect_text(page, "#deck-slides", "Tokens: text becomes numbers")


def test_add_views_to_a_new_deck_and_give_the_talk(context, live):
    from tests.test_browser import open_tab
    url, _ = live
    page = context.new_page()
    page.goto(f"{url}/?tab=attention&layer=1&head=2&prompt=One+two+three")
    page.locator("#att-fig .js-plotly-plot").first.wait_for()
    page.click("#add-to-deck")
    expect_text(page, "#deck-title", "Slides: 1")
    open_tab(page, "Next token")                                 # another view of the same page
    page.locator("#next-fig .js-plotly-plot").first.wait_for()
    page.click("#add-to-deck")
    expect_text(page, "#deck-title", "Slides: 2")
    open_tab(page, "Talk")
    expect_text(page, "#deck-slides", "Next token")
    page.click("#deck-start")
    wait_slide(page, 1)
    expect_text(page, "#att-fig", "Layer 1, head 2")
    page.keyboard.press("ArrowRight")
    wait_slide(page, 2)
    assert page.input_value("#next-prompt textarea") == "One two three"


@pytest.mark.parametrize("deck", [None, "gpt2-inside"])
def test_the_top_bar_is_one_row_on_a_projector(context, live, deck):
    url, _ = live
    page = context.new_page()
    page.goto(f"{url}/?present=1&tab=attention" if deck is None else f"{url}/?deck={deck}&slide=4")   # attention
    page.locator("#att-fig .js-plotly-plot").first.wait_for()
    page.wait_for_function("document.body.classList.contains('presentation')")
    page.wait_for_timeout(500)
    tops = page.evaluate("() => [...document.querySelector('#tabs [role=tablist]').querySelectorAll('[role=tab]')]"
                         ".map(e => e.getBoundingClientRect().top)")     # the first tab bar: the groups
    assert len(tops) >= 6 and max(tops) - min(tops) < 2, tops          # every group on one row
    header = page.evaluate("() => [...document.querySelector('#header').children].filter(e => e.offsetParent)"
                           ".map(e => e.getBoundingClientRect()).map(r => [r.top, r.bottom])")
    assert max(b for _, b in header) - min(t for t, _ in header) < 80, header  # the header is one line too
    page.screenshot(path=str(ARTIFACTS / f"deck-topbar-{deck or 'none'}.png"))
