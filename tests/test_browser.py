"""One journey through every tab in a real browser (Debian chromium driven by playwright).

Screenshots land in ``tests/artifacts/`` (git-ignored). Every request the page
makes is recorded: nothing may leave the app's own server (the page must work offline).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch

from playground.inspection.params import param_breakdown
from playground.config import PRESETS
from playground.checkpoints import save_model
from tests.factories import TINY, make_model
from tests.live_app import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(url, model holder, weights folder) of a running app on a tiny model."""
    from playground.ui import ModelHolder, build_demo, launch_kwargs
    folder = tmp_path_factory.mktemp("weights")
    save_model(make_model(), folder / "tiny.safetensors")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    holder = ModelHolder(folder / "tiny.safetensors", device="cpu")
    demo = build_demo(holder, weights_dir=folder)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_kwargs())
    try:
        yield url.rstrip("/"), holder, folder
    finally:
        demo.close()
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def app_url(live):
    return live[0]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.outside = []
    pg.on("request", lambda r: pg.outside.append(r.url)
          if not (r.url.startswith(app_url) or r.url.startswith(("data:", "blob:"))) else None)
    yield pg
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, label: str) -> None:
    """Open a view by its tab's name; a view inside a group (Look inside › Attention) opens its group first."""
    from playground.ui import nav
    tab = page.get_by_role("tab", name=label, exact=True)
    if not tab.is_visible():
        view = next(v for v, name in nav.TAB_LABELS.items() if name == label)
        group = next(g for g in nav.GROUPS if view in g.views)
        page.get_by_role("tab", name=group.label, exact=True).click()
    tab.click()


def test_journey_through_every_tab(page, app_url, tmp_path, monkeypatch):
    page.goto(app_url)
    prompt = page.locator("#gen-prompt textarea")
    prompt.wait_for()
    expect_text(page, "#model-badge", "tiny")

    # Generate: the text streams in, token by token, then the alternatives table fills in.
    prompt.fill("Once upon a time")
    page.locator("#gen-tokens").scroll_into_view_if_needed()
    set_slider(page, "#max-new", 500)   # the most: more time for the page to show the text growing
    record_values(page, "#gen-text textarea")
    page.click("#generate-btn")
    expect_text(page, "#gen-stats", "speed")
    page.wait_for_function("() => !document.querySelector('#gen-stats').innerText.includes('generating')")
    seen = page.evaluate("window.__seen")
    grown = [x for x in seen if x.startswith("Once upon a time") and len(x) > len("Once upon a time")]
    assert len(grown) >= 3, f"text did not stream: {seen}"
    expect_text(page, "#gen-stats", "generated: 500")
    expect_text(page, "#alt-caption", "Token 500 of 500")
    page.get_by_text("More: sampling settings, examples, the table and downloads").click()   # the table, collapsed
    assert "drawn" in page.locator("#alt-table").text_content()
    page.locator("#gen-tokens .token").nth(3).click()
    expect_text(page, "#alt-caption", "Token 3 of 500")
    shot(page, "1-generate")

    # A bad input: a notice says why, and what was generated stays in view (no "Error" over it).
    prompt.fill("")
    page.click("#generate-btn")
    expect_text(page, ".toast-body", "Prompt is empty")
    assert page.input_value("#gen-text textarea").startswith("Once upon")
    expect_text(page, "#gen-stats", "generated: 500")
    assert page.locator("#gen-tokens .token").count() > 500 - 5
    assert page.locator("#gen-stats .error, #gen-tokens .error, #alt-table .error").count() == 0
    page.locator(".toast-close").first.click()
    prompt.fill("Once upon a time")

    # Stop: a long run stops at once and keeps what it had. (The tiny model would finish 500 tokens
    # before a busy browser gets the click through, so each token is made to take 20 ms.)
    slow_down_generation(monkeypatch, 0.02)
    set_slider(page, "#max-new", 500)
    page.click("#generate-btn")
    page.wait_for_function("() => document.querySelector('#gen-stats').innerText.includes('generating')")
    page.click("#stop-btn")
    expect_text(page, "#gen-stats", "stopped")
    assert "generated: 500" not in page.inner_text("#gen-stats")
    monkeypatch.undo()

    # A plain-language error for an empty prompt.
    prompt.fill("")
    page.click("#generate-btn")
    page.get_by_text("Prompt is empty").first.wait_for()
    prompt.fill("The cat sat on the mat. The cat sat on the")

    # Attention: the prompt follows, a plotly heatmap renders, a grid cell opens its head.
    open_tab(page, "Attention")
    page.wait_for_function("() => document.querySelector('#att-prompt textarea').value.startsWith('The cat sat')")
    page.locator("#att-fig .js-plotly-plot .heatmaplayer").first.wait_for()
    expect_text(page, "#att-fig", "Layer 0, head 0")
    page.hover("#att-fig .js-plotly-plot")
    page.locator("#att-fig .modebar-btn[data-title='Download plot as a PNG']").wait_for(state="attached")
    page.get_by_text("Head scores: what kind of head is each one?").click()   # the collapsed section under it
    page.click("#score-grid [data-testid=cell-1-3]")            # row = layer 1, column 3 = head 2
    expect_text(page, "#att-fig", "Layer 1, head 2")
    shot(page, "2-attention")

    # Shapes: the trace table and its figure, then the Chinese explanations.
    open_tab(page, "Shapes")
    expect_text(page, "#trace-table", "token embedding")
    page.locator("#trace-fig .js-plotly-plot").wait_for()
    page.locator("#lang-switch").get_by_text("中文").click()          # the whole page's language
    expect_text(page, "#trace-table", "词嵌入")
    expect_text(page, "#tabs", "参数")
    assert "lang=zh" in page.url
    shot(page, "3-shapes")
    page.locator("#lang-switch").get_by_text("English").click()
    expect_text(page, "#trace-table", "token embedding")
    expect_text(page, "#tabs", "Parameters")

    # Parameters: moving a slider changes the total, no button.
    open_tab(page, "Parameters")
    expect_text(page, "#p-summary", f"{param_breakdown(TINY).total:,}")      # it opens on the loaded model's config
    page.click("#preset-gpt2")
    gpt2 = param_breakdown(PRESETS["gpt2"]).total
    expect_text(page, "#p-summary", f"{gpt2:,}")
    set_slider(page, "#p-layers", 24)
    deeper = param_breakdown(PRESETS["gpt2"].replace(n_layers=24)).total
    expect_text(page, "#p-summary", f"{deeper:,} parameters")
    # A config that cannot be built (768 is not divisible by 7 heads): said in place, stale figures gone.
    set_slider(page, "#p-heads", 7)
    expect_text(page, "#p-summary", "⚠️")
    page.wait_for_function("() => !document.querySelector('#p-treemap .js-plotly-plot')")
    page.click("#preset-gpt2-xl")
    expect_text(page, "#p-summary", f"{param_breakdown(PRESETS['gpt2-xl']).total:,}")
    page.locator("#p-treemap .js-plotly-plot").wait_for()
    shot(page, "4-parameters")

    # Logit lens and next token.
    open_tab(page, "Logit lens")
    page.locator("#lens-fig .js-plotly-plot .heatmaplayer").first.wait_for()
    open_tab(page, "Next token")
    page.locator("#next-fig .js-plotly-plot .barlayer").first.wait_for()
    shot(page, "5-next-token")

    # Model: a bad upload is refused with a clear message; the model in use stays.
    open_tab(page, "Model")
    expect_text(page, "#model-info", "tiny.safetensors")
    bad = tmp_path / "not-a-model.safetensors"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not weights")
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    expect_text(page, "#model-status", "Could not load")
    expect_text(page, "#model-status", "zip archive")
    expect_text(page, "#model-status", "still tiny")
    expect_text(page, "#model-info", "tiny.safetensors")
    expect_text(page, "#model-badge", "tiny")
    shot(page, "6-model-bad-file")

    # Presentation mode and a link to the current view.
    open_tab(page, "Attention")
    page.locator("#present input").check()
    page.wait_for_function("document.body.classList.contains('presentation')")
    page.click("#copy-link")
    link = page.locator("#link-box textarea, #link-box input").first
    link.wait_for()
    page.wait_for_function("(el) => el.value.includes('tab=attention')", arg=link.element_handle())
    assert "layer=1&head=2" in link.input_value() and "present=1" in link.input_value()
    shot(page, "7-presentation")

    assert page.outside == [], f"the page fetched from outside its server: {page.outside}"


def test_deep_link_opens_the_view(page, app_url):
    page.goto(f"{app_url}/?tab=attention&prompt=Hello+world+again&layer=1&head=3&view=head")
    page.locator("#att-fig .js-plotly-plot .heatmaplayer").first.wait_for()
    expect_text(page, "#att-fig", "Layer 1, head 3")
    assert page.input_value("#att-prompt textarea") == "Hello world again"
    assert page.get_by_role("tab", name="Attention").get_attribute("aria-selected") == "true"
    shot(page, "8-deep-link")
    page.goto(f"{app_url}/?tab=parameters&preset=gpt2-xl&present=1")
    expect_text(page, "#p-summary", f"{param_breakdown(PRESETS['gpt2-xl']).total:,}")
    page.wait_for_function("document.body.classList.contains('presentation')")
    assert page.outside == []


def test_keyboard_steps_for_talks(page, app_url):
    """Step by step: arrows move through the steps; Attention: ←/→ the head, ↑/↓ the layer, each
    redrawing the figure; keys typed into a text box stay text; r runs the open tab's view."""
    def keys(selector: str, *steps: tuple[str, str]) -> None:
        """Press each key (outside any text box) and wait for ``selector`` to show the text after it."""
        for key, text in steps:
            page.keyboard.press(key)
            expect_text(page, selector, text)

    page.goto(f"{app_url}/?tab=walkthrough&prompt=The+cat+sat+on+the+mat&step=0")
    expect_text(page, "#walk-title", "Step 1 of")
    page.locator("#walk-title").click()
    keys("#walk-title", ("ArrowRight", "Step 2 of"), ("ArrowRight", "Step 3 of"), ("ArrowLeft", "Step 2 of"))
    page.goto(f"{app_url}/?tab=attention&prompt=Hello+world+again&layer=0&head=0&view=head")
    expect_text(page, "#att-fig", "Layer 0, head 0")
    page.locator("#att-note").click()
    keys("#att-fig", ("ArrowRight", "Layer 0, head 1"), ("ArrowUp", "Layer 1, head 1"),
         ("ArrowDown", "Layer 0, head 1"), ("ArrowLeft", "Layer 0, head 0"))
    page.keyboard.press("ArrowLeft")                        # already the first head: nothing changes
    page.locator("#att-prompt textarea").click()
    page.keyboard.press("End")
    page.keyboard.type(" zebra")                            # typing stays typing, "r" included
    assert page.input_value("#att-prompt textarea") == "Hello world again zebra"
    page.locator("#att-note").click()
    page.keyboard.press("r")
    expect_text(page, "#att-fig", "ebra")                   # the view ran on the edited prompt (" z", "ebra")
    assert page.input_value("#att-head input[type=number]") == "0"
    assert page.outside == []


def test_step_by_step_walks_through_every_step(page, app_url):
    from playground.inspection.walkthrough import STEP_IDS
    page.goto(f"{app_url}/?tab=walkthrough&prompt=The+cat+sat+on+the+mat&layer=1&head=2&step=0")
    expect_text(page, "#walk-title", f"Step 1 of {len(STEP_IDS)}")
    expect_text(page, "#walk-code", "playground/")
    seen = []
    for i, sid in enumerate(STEP_IDS):
        expect_text(page, "#walk-title", f"Step {i + 1} of {len(STEP_IDS)}")
        expect_text(page, "#walk-title", sid)
        page.locator("#walk-fig .js-plotly-plot").first.wait_for()
        assert page.locator("#walk-code .run").count() >= 1, sid          # the running line is highlighted
        seen.append(sid)
        if sid == "attn_weights":
            shot(page, "9-walkthrough-attn-weights")
        if i + 1 < len(STEP_IDS):
            page.click("#walk-next")
    assert seen == list(STEP_IDS)
    page.click("#walk-prev")
    expect_text(page, "#walk-title", f"Step {len(STEP_IDS) - 1} of")
    # The KV cache view: the cache fills during a short generation.
    page.locator("#kv-accordion").click()
    page.click("#kv-btn")
    expect_text(page, "#kv-text", "the cache holds")
    page.locator("#kv-fig .js-plotly-plot").first.wait_for()
    assert page.outside == []


def test_experiments_show_their_figures(page, app_url):
    page.goto(f"{app_url}/?tab=experiments")
    page.locator("#surprisal-text span").first.wait_for()
    page.locator("#surprisal-fig .js-plotly-plot").first.wait_for()
    shot(page, "10-experiments-surprisal")
    page.get_by_role("tab", name="Ablate").click()
    page.locator("#ablate-heads textarea, #ablate-heads input").first.fill("L1H2")
    page.click("#ablate-btn")
    expect_text(page, "#ablate-text", "Greedy continuation")
    page.get_by_text("Induction score per head: click a cell to add or remove that head").click()   # collapsed
    page.click("#ablate-grid [data-testid=cell-0-2]")           # layer 0, head 1: added to the list
    page.wait_for_function("() => document.querySelector('#ablate-heads textarea, #ablate-heads input').value"
                           ".includes('L0H1')")
    page.get_by_role("tab", name="Patch").click()
    page.click("#patch-btn")
    page.locator("#patch-fig .js-plotly-plot").first.wait_for()
    expect_text(page, "#patch-note", "forward passes")
    shot(page, "11-experiments-patch")
    assert page.outside == []


PRESENT_FIGURES = [("attention", "#att-fig"), ("logit-lens", "#lens-fig"), ("next-token", "#next-fig"),
                   ("shapes", "#trace-fig"), ("parameters", "#p-treemap"), ("walkthrough", "#walk-fig"),
                   ("circuit", "#circuit-fig"), ("saliency", "#saliency-fig"), ("embeddings", "#emb-fig"),
                   ("train", "#train-loss")]
# Every view's figure and its main button (the stage layout: a bar of controls, the figure under it).
STAGES = [("generate", "#gen-text", "#generate-btn"), ("attention", "#att-fig", "#att-btn"),
          ("shapes", "#trace-fig", "#trace-btn"), ("walkthrough", "#walk-fig", "#walk-next"),
          ("parameters", "#p-treemap", "#preset-gpt2"), ("logit-lens", "#lens-fig", "#lens-btn"),
          ("next-token", "#next-fig", "#next-btn"), ("circuit", "#circuit-fig", "#circuit-btn"),
          ("saliency", "#saliency-text", "#saliency-btn"), ("neurons", "#neuron-effect", "#neuron-btn"),
          ("embeddings", "#emb-fig", "#emb-btn"), ("train", "#train-loss", "#train-start")]


@pytest.mark.parametrize("mode, size", [("present", (1280, 720)), ("normal", (1440, 900))])
def test_every_view_is_a_stage(browser, app_url, mode, size):
    """Each view's main button and the top of its figure are in the first screen (at 1280x720 in
    presentation mode, a third of the screen at least left for the figure), its button above the figure."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        for tab, fig, button in STAGES:
            page.goto(f"{app_url}/?tab={tab}&present={int(mode == 'present')}")
            page.locator(button).first.wait_for(state="visible")
            page.locator(fig).first.wait_for(state="visible")
            page.wait_for_timeout(300)
            b, f = page.locator(button).first.bounding_box(), page.locator(fig).first.bounding_box()
            assert b["y"] + b["height"] <= size[1], (tab, "button below the first screen", b)
            assert f["y"] <= size[1] * (0.6 if mode == "present" else 0.75), (tab, "figure starts too low", f)
            assert b["y"] < f["y"], (tab, "the controls sit above the figure", b, f)
            chinese = [t for t in page.evaluate(UI_TEXT_JS) if CJK.search(t.replace("中文", ""))]
            assert not chinese, (tab, "Chinese on the English page", chinese[:5])     # one language at a time
    finally:
        context.close()


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=["1280x720", "1920x1080"])
@pytest.mark.parametrize("tab, fig", PRESENT_FIGURES, ids=[t for t, _ in PRESENT_FIGURES])
def test_presentation_mode_puts_the_figure_first_and_large(browser, app_url, tab, fig, size):
    """On a projector (1280x720 or 1920x1080): the open tab's figure starts within the first 520 px, is at
    least 360 px tall, no text inside it is smaller than 16 px, and none of its text lies outside it."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{app_url}/?tab={tab}&prompt=The+cat+sat+on+the+mat.+The+cat+sat&present=1")
        page.locator(f"{fig} .js-plotly-plot .main-svg").first.wait_for()
        page.wait_for_function("document.body.classList.contains('presentation')")
        page.wait_for_timeout(500)                       # plotly's relayout to the final width
        box = page.locator(fig).bounding_box()
        assert box["y"] < 520 and box["height"] >= 360, box
        texts = page.evaluate("""(sel) => {
            const fig = document.querySelector(sel).getBoundingClientRect();
            return [...document.querySelectorAll(sel + ' svg text')]
              .filter(t => t.textContent.trim() && t.getBoundingClientRect().width > 0)
              .map(t => { const r = t.getBoundingClientRect();
                return {text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize),
                        inside: r.left >= fig.left - 1 && r.right <= fig.right + 1 &&
                                r.top >= fig.top - 1 && r.bottom <= fig.bottom + 1}; }); }""", fig)
        assert texts and min(t["size"] for t in texts) >= 16, sorted(texts, key=lambda t: t["size"])[:5]
        outside = [t["text"] for t in texts if not t["inside"]]
        assert not outside, f"text outside the figure: {outside[:5]}"
        page.screenshot(path=str(ARTIFACTS / f"present-{size[0]}x{size[1]}-{tab}.png"))
    finally:
        context.close()


def test_a_link_with_a_seed_reproduces_the_same_text(page, app_url):
    link = f"{app_url}/?tab=generate&prompt=Once+upon+a+time&max_new_tokens=12&temperature=0.9&top_k=20&seed=7"
    texts = []
    for _ in range(2):
        page.goto(link)
        page.wait_for_function("() => document.querySelector('#max-new input[type=number]')?.value === '12'")
        page.get_by_text("More: sampling settings, examples, the table and downloads").click()
        assert page.input_value("#gen-seed input") == "7"
        assert page.input_value("#gen-temperature input[type=number]") == "0.9"
        page.click("#generate-btn")
        expect_text(page, "#gen-stats", "generated: 12")
        page.wait_for_function("() => !document.querySelector('#gen-stats').innerText.includes('generating')")
        texts.append(page.input_value("#gen-text textarea"))
    assert texts[0] == texts[1] and texts[0].startswith("Once upon a time") and len(texts[0]) > 20


# Where the page's own words are (not the user's text, token text or the model's output).
UI_TEXT_JS = """() => {
  const sel = '[role=tab], label, th, button:not(.gallery-item):not([class*=example]), [data-testid=block-label], ' +
              '[data-testid=block-info], .prose, .gtitle, .g-xtitle, .g-ytitle, .legendtext, .cbtitle, .annotation-text';
  const inExamples = (el) => el.closest('.gallery, [data-testid=dataset], .examples, td, textarea, .token, pre, code, #walk-code');
  return [...document.querySelectorAll(sel)]
    .filter(el => el.offsetParent !== null || el.closest('svg'))
    .filter(el => !inExamples(el))
    .map(el => { const c = el.cloneNode(true);              // code (identifiers, file names) aside
                 c.querySelectorAll('code, pre, td, .token').forEach(x => x.remove());   // data cells too
                 return (el.closest('svg') ? el.textContent : c.innerText ?? c.textContent ?? '').trim(); })
    .filter(t => t);
}"""
ENGLISH = re.compile(r"\b[A-Za-z]{3,}[ ,]+[A-Za-z]{3,}\b")
CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
# Gradio's own words (its footer, the file drop zone) follow Gradio's locale, which is the browser's.
NOT_UI = re.compile(r"'[^']*'|GPT-2 Playground|English|Use via API|Built with Gradio|Settings|tiny\.safetensors|"
                    r"Drop File Here|Click to Upload|Hugging Face|OpenAI GPT-2")


def english_left(texts: list[str]) -> list[str]:
    """The texts that still hold two English words in a row, once names and quoted tokens are set aside."""
    return sorted({t for t in texts if ENGLISH.search(NOT_UI.sub(" ", t))})


@pytest.mark.parametrize("tab", ["generate", "attention", "shapes", "walkthrough", "parameters", "logit-lens",
                                 "next-token", "experiments", "ablate", "circuit", "saliency", "neurons", "embeddings",
                                 "train", "model", "talk"])
def test_every_tab_reads_in_chinese(browser, app_url, tab):
    """?lang=zh: every tab name, label, button, note and figure title is 中文 (the user's and the model's
    text aside); the switch in the header brings English back at once."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        heads = "&heads=L1H1" if tab == "ablate" else ""          # a head the tiny model has
        page.goto(f"{app_url}/?tab={tab}&lang=zh&prompt=The+cat+sat+on+the+mat.+The+cat+sat{heads}")
        expect_text(page, "#tabs", "模型")
        expect_text(page, "#tabs", "看看内部")          # the group of the views inside the model
        figure = {t: f for t, f, _ in STAGES if t != "generate"} | {
            "experiments": "#surprisal-fig", "saliency": "#saliency-fig", "ablate": "#ablate-fig"}
        if tab in figure:                     # this tab's own figure (a hidden tab's plot may be drawn first)
            page.locator(f"{figure[tab]} .js-plotly-plot .main-svg").first.wait_for()
        page.wait_for_timeout(1500)
        left = english_left(page.evaluate(UI_TEXT_JS))
        page.screenshot(path=str(ARTIFACTS / f"zh-{tab}.png"), full_page=True)
        assert not left, f"English left on the 中文 page: {left[:8]}"
        if tab == "attention":
            page.click("#copy-link")                                   # a link carries the language
            page.wait_for_function("() => document.querySelector('#link-box textarea, #link-box input')"
                                   "?.value.includes('lang=zh')")
            page.locator("#lang-switch").get_by_text("English").click()
            expect_text(page, "#tabs", "Look inside")
            expect_text(page, "#att-fig", "where each token looks")
            assert "lang=en" in page.url
    finally:
        context.close()


TAB_LABELS = {"generate": "Generate", "attention": "Attention", "shapes": "Shapes", "walkthrough": "Step by step",
              "parameters": "Parameters", "logit-lens": "Logit lens", "next-token": "Next token",
              "experiments": "Experiments", "train": "Train", "model": "Model"}


@pytest.mark.parametrize("mode, size", [("present", (1280, 720)), ("normal", (1440, 900))])
def test_screenshots_of_every_tab(browser, app_url, mode, size):
    """tests/artifacts/screen-{mode}-{tab}.png for a person to look at (each tab opened by a deep link)."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        for tab, label in TAB_LABELS.items():
            page.goto(f"{app_url}/?tab={tab}" + ("&present=1" if mode == "present" else ""))
            page.locator("#model-badge").get_by_text("tiny").wait_for()
            page.wait_for_function("(t) => [...document.querySelectorAll('[role=tab]')].some("
                                   "e => e.getAttribute('aria-selected') === 'true' && e.innerText.includes(t))",
                                   arg=label)
            page.wait_for_timeout(1500)                     # let the linked view draw
            page.screenshot(path=str(ARTIFACTS / f"screen-{mode}-{tab}.png"))
    finally:
        context.close()


# ------------------------------------------------------------------------------------------ helpers


def expect_text(page, selector: str, text: str, timeout_s: float = 60) -> None:
    """Wait until the element's visible text contains ``text`` (markdown stars ignored)."""
    deadline = time.time() + timeout_s
    got = ""
    while time.time() < deadline:
        got = page.inner_text(selector).replace("*", "")
        if text in got:
            return
        time.sleep(0.05)
    raise AssertionError(f"{selector} never showed {text!r}; last text: {got[:300]!r}")


def set_slider(page, root: str, value: int) -> None:
    """Type into a slider's number box and commit it, as a user would."""
    box = page.locator(f"{root} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()
    page.wait_for_function("([sel, v]) => document.querySelector(sel).value === v",
                           arg=[f"{root} input[type=range]", str(value)])


def slow_down_generation(monkeypatch, seconds_per_token: float) -> None:
    from playground.ui.views import generate as gen_view
    real = gen_view.stream_generation

    def slow(*args, **kwargs):
        for view in real(*args, **kwargs):
            time.sleep(seconds_per_token)
            yield view
    monkeypatch.setattr(gen_view, "stream_generation", slow)


def record_values(page, selector: str) -> None:
    """Record, in the page itself, every distinct value a text box takes (``window.__seen``):
    polling from Python would be too slow to see a fast stream."""
    page.evaluate("""(sel) => {
        window.__seen = [];
        clearInterval(window.__recorder);
        window.__recorder = setInterval(() => {
            const el = document.querySelector(sel);
            const v = el ? el.value : "";
            if (window.__seen[window.__seen.length - 1] !== v) window.__seen.push(v);
        }, 5);
    }""", selector)


def test_open_pages_see_a_model_swap(page, live):
    """Another user loads a model: every open page's header names it within a refresh period."""
    from playground.ui.app import BADGE_REFRESH_S
    url, holder, folder = live
    page.goto(url)
    badge = page.locator("#model-badge")
    badge.get_by_text("tiny").wait_for()
    holder.load(folder / "tiny.safetensors", name="swapped-in")
    try:
        badge.get_by_text("swapped-in").wait_for(timeout=(BADGE_REFRESH_S + 20) * 1000)
    finally:
        holder.load(folder / "tiny.safetensors", name="tiny")
