"""Deep links applied at page load: ``ui_on_load`` (the page's load event) called with a fake request,
no server and no browser. Every parameter of every tab: its value set, out-of-range layers and heads
clamped to the loaded model, bad or unknown parameters ignored."""
from __future__ import annotations

import json
import os
from pathlib import Path

from typing import Any

import pytest
import torch

from playground.checkpoints import save_model
from playground.inspection.walkthrough import STEP_IDS
from playground.ui import build_demo, deeplink
from playground.ui import app as ui_app
from playground.ui.state import ModelHolder
from tests.factories import TINY, make_model

# One valid raw value (as a URL carries it) of every parameter a tab can take, and what the control gets.
SAMPLES: dict[str, tuple[str, Any]] = {
    "prompt": ("Linked prompt", "Linked prompt"), "max_new_tokens": ("40", 40), "temperature": ("0.8", 0.8),
    "top_k": ("40", 40), "top_p": ("0.9", 0.9), "seed": ("7", 7), "precision": ("bf16", "bf16"),
    "layer": ("1", 1), "head": ("2", 2), "view": ("all heads", "layer"), "score": ("sink", "first_token"),
    "tokens_shown": ("16", 16), "window_start": ("3", 3), "log_scale": ("1", True), "hide_first": ("yes", True),
    "expand": ("on", True), "step": ("attn_weights", STEP_IDS.index("attn_weights")),
    "vocab_size": ("1000", 1000), "context_length": ("512", 512), "emb_dim": ("384", 384), "n_heads": ("16", 16),
    "n_layers": ("6", 6), "qkv_bias": ("0", False), "tie_embeddings": ("1", True), "position": ("3", 3),
    "show": ("7", 7), "stages": ("1", True), "heads": ("L0H1", "L0H1"), "mlps": ("1", "1"),
    "target": (" mat", " mat"), "distractor": (" rug", " rug"), "clean": ("The cat", "The cat"),
    "corrupted": ("The dog", "The dog"), "edges": ("12", 12), "check_heads": ("1", True),
    "neuron": ("7", 7), "embedding": ("positions", "positions"), "lists": ("months,days", ["months", "days"]),
    "neighbours": (" queen", " queen"), "words": ("cat, dog", "cat, dog"), "dims": ("3", 3),
    "method": ("gxi", "gradient_x_input"), "steps": ("16", 16), "prompt_b": ("The dog", "The dog"),
    "train_preset": ("text-tiny", "text-tiny"), "task": ("text", "text"), "drop_rate": ("0.1", 0.1),
    "lr": ("0.002", 0.002), "train_steps": ("800", 800), "batch_size": ("16", 16), "min_len": ("4", 4),
    "max_len": ("16", 16), "text_source": ("yours", "yours"), "text": ("Some text", "Some text"),
    "text_tokens": ("5000", 5000), "sample_every": ("25", 25), "train_head": ("l1h2", "L1H2"),
}
SLIDERS = {"layer", "head"}                 # updates with the loaded model's maximum, not plain values


class FakeRequest:
    """What ``ui_on_load`` reads of a ``gr.Request``: the page URL's query and the headers."""

    def __init__(self, query: dict[str, str], headers: dict[str, str] | None = None) -> None:
        self.query_params = query
        self.headers = headers or {}


@pytest.fixture(scope="module")
def page(tmp_path_factory, request):
    """The built page (not launched), its load handler and each tab's link controls."""
    built: dict[str, Any] = {}
    mp = pytest.MonkeyPatch()
    for m in ui_app.TAB_MODULES + ui_app.CHILD_MODULES:   # keep what each tab's build returns, to find its controls
        mp.setattr(m, "build", lambda ctx, _build=m.build, _m=m: built.setdefault(_m.TAB_ID, _build(ctx)))
    weights = save_model(make_model(), tmp_path_factory.mktemp("w") / "tiny.safetensors")
    try:
        demo = build_demo(ModelHolder(weights, device="cpu", hash_in_background=False))
    finally:
        mp.undo()
    for t in list(built.values()):          # the views a tab builds inside its own tabs (Experiments' own)
        built.update({k: v for k, v in getattr(t, "children", {}).items() if k not in built})
    on_load = next(f.fn for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == "ui_on_load")
    return on_load, {tab: t.link_controls() for tab, t in built.items()}, built, demo


def load(page, **query: str) -> dict:
    on_load = page[0]
    return on_load(FakeRequest(query))


def value_of(update: Any) -> Any:
    return update["value"] if isinstance(update, dict) and update.get("__type__") == "update" else update


@pytest.mark.parametrize("tab, name", [(tab, name) for tab, names in deeplink.TAB_FIELDS.items() for name in names])
def test_every_parameter_of_every_tab_sets_its_control(page, tab, name):
    _, controls, _ = page[:3]
    raw, expected = SAMPLES[name]
    out = load(page, tab=tab, **{name: raw})
    assert value_of(out[controls[tab][name]]) == expected
    selected = [v["selected"] for k, v in out.items() if isinstance(v, dict) and v.get("selected") is not None]
    path = [tab]
    while path[0] in ui_app.PARENT_OF:
        path.insert(0, ui_app.PARENT_OF[path[0]])
    assert selected == path                      # a view inside a group (or a tab of tabs): both are opened


def test_every_tab_and_parameter_has_a_sample():
    assert {n for names in deeplink.TAB_FIELDS.values() for n in names} <= set(SAMPLES)
    assert set(deeplink.TAB_FIELDS) == set(deeplink.TABS)


@pytest.mark.parametrize("tab", ["attention", "walkthrough"])
def test_layer_and_head_beyond_the_model_are_clamped(page, tab):
    _, controls, _ = page[:3]
    out = load(page, tab=tab, layer="99", head="1000")
    layer, head = out[controls[tab]["layer"]], out[controls[tab]["head"]]
    assert (layer["value"], layer["maximum"]) == (TINY.n_layers - 1, TINY.n_layers - 1)
    assert (head["value"], head["maximum"]) == (TINY.n_heads - 1, TINY.n_heads - 1)


@pytest.mark.parametrize("tab, name, raw", [
    ("generate", "temperature", "99"), ("generate", "max_new_tokens", "0"), ("generate", "top_p", "0"),
    ("generate", "precision", "fp64"), ("generate", "seed", "1.5"), ("attention", "tokens_shown", "1"),
    ("attention", "view", "diagonal"), ("walkthrough", "step", "no_such_step"), ("walkthrough", "step", "99"),
    ("next-token", "show", "51"), ("parameters", "n_heads", "65"), ("logit-lens", "position", "x"),
])
def test_a_value_out_of_its_range_is_ignored(page, tab, name, raw):
    _, controls, _ = page[:3]
    out = load(page, tab=tab, **{name: raw})
    comp = controls[tab][name]
    assert value_of(out.get(comp)) == value_of(load(page, tab=tab).get(comp))      # as with no value linked


def comparable(value: Any) -> Any:
    """A figure by its JSON, a download by its file's content: each load makes new objects and files."""
    if hasattr(value, "to_plotly_json"):
        return value.to_json()
    if isinstance(value, str) and os.path.isfile(value):
        return Path(value).read_bytes()
    return value


def test_unknown_parameters_and_tabs_are_ignored(page):
    plain = load(page)
    odd = load(page, tab="nowhere", bogus="1", LAYER="x", __proto__="1")
    assert set(odd) == set(plain)
    assert all(comparable(odd[k]) == comparable(plain[k]) for k in plain)
    selected = [v for v in odd.values() if isinstance(v, dict) and v.get("selected") is not None]
    assert selected == [{"__type__": "update", "selected": "generate"}]


def test_a_linked_prompt_reaches_the_tabs_that_follow_the_generate_prompt(page):
    _, controls, built = page[:3]
    out = load(page, tab="attention", prompt="Shared words")
    assert out[controls["attention"]["prompt"]] == "Shared words"
    assert out[controls["generate"]["prompt"]] == "Shared words"       # the prompt all tabs follow
    assert out[controls["next-token"]["prompt"]] == "Shared words"


def test_present_and_lang_come_from_the_link(page):
    on_load = page[0]
    out = on_load(FakeRequest({"present": "1", "lang": "zh"}))
    assert True in out.values() and "zh" in out.values()
    out = on_load(FakeRequest({}, {"accept-language": "zh-CN,zh;q=0.9"}))
    assert "zh" in out.values()


@pytest.mark.parametrize("tab", ["generate", "parameters"])
def test_parameters_open_on_the_loaded_models_own_config(page, tab):
    """Not on a preset the page was built with: the loaded tiny model's numbers (a link's config still wins)."""
    _, controls, _ = page[:3]
    out = load(page, tab=tab)
    for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
        assert value_of(out[controls["parameters"][name]]) == getattr(TINY, name)
    linked = load(page, tab="parameters", preset="gpt2")
    assert value_of(linked[controls["parameters"]["emb_dim"]]) == 768


def test_attention_opens_on_the_clearest_previous_token_head(page):
    """Without a linked head: the loaded model's head with the highest previous-token score (random tokens)."""
    from playground.inspection.head_scores import head_scores
    _, controls, built = page[:3]
    out = load(page, tab="attention")
    scores = head_scores(make_model()).previous_token                          # (L, H): the page's tiny model
    layer, head = divmod(int(scores.flatten().argmax()), scores.shape[1])
    assert (value_of(out[controls["attention"]["layer"]]), value_of(out[controls["attention"]["head"]])) == (layer, head)
    linked = load(page, tab="attention", layer="1", head="2")
    assert (value_of(linked[controls["attention"]["layer"]]), value_of(linked[controls["attention"]["head"]])) == (1, 2)


def test_the_clearest_head_is_the_highest_previous_token_score():
    """On a model whose best previous-token head is not the first one (seed 1: layer 0, head 3)."""
    from types import SimpleNamespace

    from playground.inspection.head_scores import head_scores
    from playground.ui.views.attention import clearest_head
    model = make_model(seed=1)
    scores = head_scores(model).previous_token
    expected = divmod(int(scores.flatten().argmax()), scores.shape[1])
    assert expected != (0, 0)
    assert clearest_head(SimpleNamespace(uid="seed-1-model", model=model)) == expected


# ------------------------------------------------------------------------------------------ groups and decks

# Every ?tab= value a link could carry before the views were grouped (and the aliases then): each still opens it.
OLD_TABS = {"generate": "generate", "attention": "attention", "shapes": "shapes", "walkthrough": "walkthrough",
            "parameters": "parameters", "logit-lens": "logit-lens", "next-token": "next-token",
            "experiments": "experiments", "circuit": "circuit", "saliency": "saliency", "learned": "learned",
            "neurons": "neurons", "embeddings": "embeddings", "model": "model", "shape": "shapes", "trace": "shapes",
            "params": "parameters", "lens": "logit-lens", "logit_lens": "logit-lens", "next": "next-token",
            "gen": "generate", "step": "walkthrough", "tour": "walkthrough", "circuits": "circuit",
            "neuron": "neurons", "embedding": "embeddings", "pca": "embeddings"}


def page_fn(page, name: str):
    """A page event's function, by name, from the demo the fixture built (through its load handler's app)."""
    return next(f.fn for f in page[3].fns.values() if f.fn is not None and f.fn.__name__ == name)


@pytest.mark.parametrize("old, tab", sorted(OLD_TABS.items()))
def test_every_older_tab_name_opens_its_view(page, old, tab):
    out = load(page, tab=old)
    selected = [v["selected"] for v in out.values() if isinstance(v, dict) and v.get("selected") is not None]
    assert selected[-1] == tab and (len(selected) == 1) == (tab not in ui_app.PARENT_OF)
    assert tab in out.values()                                       # the page knows which view is open


@pytest.mark.parametrize("tab", deeplink.TABS)
def test_a_slide_opens_what_its_link_opens(page, tab):
    """Moving to a slide applies its link as a page load does: the same tabs, every control of the view set."""
    from playground.ui import deck as dk
    _, controls, _ = page[:3]
    query = {"tab": tab, **{n: SAMPLES[n][0] for n in deeplink.TAB_FIELDS[tab]}}
    by_link = load(page, **query)
    deck = dk.Deck(slides=(dk.slide_from_link(deeplink.parse(query)),))
    by_slide = page_fn(page, "ui_deck_next")(deck, -1, False)
    for name, comp in controls[tab].items():
        assert value_of(by_slide[comp]) == value_of(by_link[comp]), name
    sel = lambda out: [v["selected"] for v in out.values() if isinstance(v, dict) and v.get("selected")]  # noqa: E731
    assert sel(by_slide) == sel(by_link)


def test_a_slide_sets_what_it_does_not_name_back_to_its_start(page):
    """A change made on a slide stays until the slide is left: coming back shows the slide as written."""
    from playground.ui import deck as dk
    _, controls, _ = page[:3]
    deck = dk.Deck(slides=(dk.Slide(tab="attention", values={"layer": 1}),
                           dk.Slide(tab="attention", values={"head": 2, "tokens_shown": 16})))
    step = page_fn(page, "ui_deck_next")
    back = page_fn(page, "ui_deck_prev")
    second = step(deck, 0, False)
    assert value_of(second[controls["attention"]["tokens_shown"]]) == 16
    first = back(deck, 1, False)
    assert value_of(first[controls["attention"]["tokens_shown"]]) == controls["attention"]["tokens_shown"].value
    assert value_of(first[controls["attention"]["layer"]]) == 1


def test_a_deck_link_opens_its_slide_in_presentation_mode(page):
    from playground.ui import deck as dk
    _, controls, built = page[:3]
    slide = dk.load_shipped("gpt2-inside").slides[3]           # attention, layer 3, head 2 (clamped on tiny)
    out = load(page, deck="gpt2-inside", slide="4")
    assert value_of(out[controls["attention"]["prompt"]]) == slide.values["prompt"]
    assert value_of(out[controls["attention"]["view"]]) == "head"
    present = next(b for b in page[3].blocks.values() if getattr(b, "elem_id", None) == "present")
    assert "attention" in out.values() and out[present] is True               # its view open, presentation on
    assert "4 / 12" in next(v for v in out.values() if isinstance(v, str) and "deck-head" in v)
    out = load(page, deck="gpt2-inside", slide="99", present="0")           # past the end: the last slide
    assert "12 / 12" in next(v for v in out.values() if isinstance(v, str) and "deck-head" in v)
    assert out[present] is False


def test_a_deck_link_to_no_deck_says_so_and_opens_the_page(page):
    out = load(page, deck="no-such-deck")
    warning = next(v["value"] for v in out.values() if isinstance(v, dict) and "deck-msg" in str(v.get("value")))
    assert "no deck named" in warning and "gpt2-inside" in warning
    assert "generate" in out.values()


def test_the_speaker_window_shows_notes_not_a_view(page):
    out = load(page, deck="gpt2-inside", slide="2", notes="1")
    assert "generate" in out.values()                          # no slide's view drawn in the notes window
    payload = json.loads(next(v for v in out.values() if isinstance(v, str) and v.startswith('{"active"')))
    assert (payload["index"], payload["count"], payload["title"]) == (1, 12, "Embeddings: tokens as vectors")
    assert payload["next_title"] and "<p>" in payload["notes_html"]


def test_a_train_link_opens_its_preset_under_the_values_it_names(page):
    _, controls, built = page[:3]
    c = controls["train"]
    out = load(page, tab="train", train_preset="text-tiny", lr="0.01", train_head="best-previous")
    assert value_of(out[c["task"]]) == "text" and value_of(out[c["vocab_size"]]) == 50257   # from the preset
    assert value_of(out[c["lr"]]) == 0.01                                                    # the link's own
    assert value_of(out[c["train_head"]]) == "best-previous"
    assert "parameters" in out[built["train"].params]
    out = load(page, tab="train", task="copy", n_layers="3", train_head="L2H3")
    assert value_of(out[c["n_layers"]]) == 3 and value_of(out[c["train_head"]]) == "L2H3"
    assert ("L2H3", "L2H3") in out[c["train_head"]]["choices"]
