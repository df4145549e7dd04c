"""Decks (playground/ui/deck.py): the schema read and written, every way a file can be wrong, a deep link and a
slide turned into each other for every tab, and the decks that come with the app."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.config import PRESETS
from playground.ui import deck as dk
from playground.ui import deeplink, nav
from playground.ui.i18n import TEXT, tr
from tests.test_deeplink_load import SAMPLES

TINY_CFG = PRESETS["gpt2"].replace(n_layers=2, n_heads=4, emb_dim=64)


def deck_json(**fields) -> bytes:
    return json.dumps({"format": dk.FORMAT, "version": 1, **fields}).encode()


def error_of(content: bytes | str) -> str:
    with pytest.raises(dk.DeckError) as e:
        dk.parse_deck(content)
    return str(e.value)


# ------------------------------------------------------------------------------------------ the schema

def test_a_missing_field_gets_its_default():
    d = dk.parse_deck(b'{"slides": [{}, {"title": "Two"}]}')
    assert (d.title, d.lang, d.version, d.requires) == ("Untitled talk", "en", 1, None)
    first, second = d.slides
    assert (first.tab, first.values, first.title, first.notes) == ("generate", {}, "", "")
    assert first.shown_title() == "Generate" and second.shown_title() == "Two"
    assert dk.parse_deck(deck_json()).slides == ()          # a deck with no slides yet


def test_unknown_fields_are_kept_and_written_back():
    raw = deck_json(title="T", speaker="Ada", slides=[
        {"title": "A", "view": {"tab": "attention", "layer": 1}, "duration_s": 90, "x-colour": [1, 2]}],
        requires={"n_layers": 12, "note": "kept"})
    d = dk.parse_deck(raw)
    assert d.extra == {"speaker": "Ada"} and d.slides[0].extra == {"duration_s": 90, "x-colour": [1, 2]}
    out = json.loads(dk.dumps(d))
    assert out["speaker"] == "Ada" and out["slides"][0]["duration_s"] == 90
    assert out["requires"] == {"n_layers": 12, "note": "kept"}
    assert dk.dumps(dk.parse_deck(dk.dumps(d))) == dk.dumps(d)          # a fixed point


def test_a_written_deck_reads_back_the_same():
    d = dk.load_shipped("gpt2-inside", "en")
    again = dk.parse_deck(dk.dumps(d).encode())
    assert dk.deck_to_dict(again) == dk.deck_to_dict(d) and again.slides == d.slides


def test_a_slide_can_be_a_pasted_link():
    raw = deck_json(slides=[{"link": "https://example.org/?tab=attention&layer=2&head=1&lang=zh&present=1"},
                            {"link": "?deck=x&slide=3"}])
    a, b = dk.parse_deck(raw).slides
    assert (a.tab, a.values) == ("attention", {"layer": 2, "head": 1})     # the page's lang/present left out
    assert (b.tab, b.values) == ("generate", {})


@pytest.mark.parametrize("content, fragment", [
    (b"", "empty"),
    (b"\xff\xfe\x00\x01binary", "not text"),
    (b"{\"slides\": [", "not JSON: line 1, column 13"),
    (b"[1, 2]", "holds a list"),
    (b"{\"a\": 1}", "has no \"slides\""),
    (b"{\"format\": \"pptx\", \"slides\": []}", "its \"format\" is \"pptx\""),
    (deck_json(version=2), "version 2"),
    (deck_json(version="one"), "\"version\" must be a whole number"),
    (deck_json(slides={"a": 1}), "\"slides\" must be a list"),
    (deck_json(slides=[{}] * (dk.MAX_SLIDES + 1)), f"at most {dk.MAX_SLIDES}"),
    (deck_json(lang="fr"), "\"lang\" must be"),
    (deck_json(title=7), "`title` must be text"),
    (deck_json(slides=[3]), "Slide 1 must be an object"),
    (deck_json(slides=[{}, {"view": {"tab": "atention"}}]), "Slide 2: the tab \"atention\" does not exist"),
    (deck_json(slides=[{"view": {"layer": 1}}]), "names no \"tab\""),
    (deck_json(slides=[{"title": "Heads", "view": {"tab": "attention", "temperature": 1}}]),
     "Slide 1 (“Heads”): the Attention view has no control `temperature`"),
    (deck_json(slides=[{"view": {"tab": "model", "prompt": "x"}}]), "it has no controls a link sets"),
    (deck_json(slides=[{"view": {"tab": "attention", "layer": "three"}}]), "`layer` = \"three\" is not a value"),
    (deck_json(slides=[{"view": {"tab": "attention", "layer": -1}}]), "`layer` = -1 is not a value"),
    (deck_json(slides=[{"link": "?tab=next-token&color=red"}]), "no control `color`"),
    (deck_json(slides=[{"view": {"tab": "generate"}, "link": "?tab=generate"}]), "not both"),
    (deck_json(slides=[{"notes": "x" * (dk.MAX_NOTES + 1)}]), "characters long"),
    (deck_json(requires={"n_layers": 1.5}), "`requires.n_layers` must be a whole number"),
    ("x" * (dk.MAX_BYTES + 1), "a deck file is at most 1 MB"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_a_bad_file_says_what_is_wrong(content, fragment):
    assert fragment in error_of(content)


def test_ten_megabytes_of_text_is_refused_by_its_size():
    message = error_of(b"a" * 10_000_000)
    assert message.startswith("The file is 10.0 MB")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                     st.sampled_from(["format", "version", "title", "lang", "slides", "view", "link", "tab", "notes",
                                      "requires", "layer", "prompt", "n_layers", "why", "x"]), inner, max_size=5),
                 max_leaves=25).map(lambda v: json.dumps(v).encode())))
def test_any_file_is_a_deck_or_a_plain_message(content):
    try:
        d = dk.parse_deck(content)
    except dk.DeckError as e:
        assert str(e).strip() and "Traceback" not in str(e)
        return
    assert dk.parse_deck(dk.dumps(d)) == d                  # what it read, it writes back readable


def test_notes_are_markdown_without_raw_html():
    html = dk.notes_html("**bold** and <script>alert(1)</script>\n\n- one\n- two")
    assert "<strong>bold</strong>" in html and "<li>one</li>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


# ------------------------------------------------------------------------------------------ deep link <-> slide

def sample_query(tab: str) -> dict[str, str]:
    """One valid raw value of every control the tab's link takes (Parameters: a preset too)."""
    raw = {name: SAMPLES[name][0] for name in deeplink.TAB_ACCEPTS[tab] if name in SAMPLES}
    if "preset" in deeplink.TAB_ACCEPTS[tab]:
        raw["preset"] = "gpt2-medium"
    return raw


@pytest.mark.parametrize("tab", deeplink.TABS)
def test_a_link_becomes_a_slide_and_back_for_every_tab(tab):
    raw = sample_query(tab)
    query = deeplink.build(tab, raw)
    slide = dk.slide_from_query(query, title="T")
    link = deeplink.parse({"tab": tab, **raw})
    assert slide.link == deeplink.Link(tab=tab, values=dict(link.values))      # the same view, value for value
    assert set(slide.values) == set(raw)                                     # every control it takes
    assert slide.query() == query                                            # and the same link back


@pytest.mark.parametrize("tab", deeplink.TABS)
def test_a_slide_in_a_file_becomes_its_link_and_back_for_every_tab(tab):
    slide = dk.slide_from_link(deeplink.parse({"tab": tab, **sample_query(tab)}), title="T", notes="n")
    d = dk.parse_deck(dk.dumps(dk.Deck(slides=(slide,))))
    assert d.slides[0] == slide
    as_link = dk.parse_deck(deck_json(slides=[{"title": "T", "notes": "n", "link": slide.query()}])).slides[0]
    assert as_link == slide


def test_the_page_s_own_fields_are_not_part_of_a_slide():
    slide = dk.slide_from_link(deeplink.parse({"tab": "attention", "layer": "2", "lang": "zh", "present": "1"}))
    assert slide.values == {"layer": 2} and slide.link.present is None


# ------------------------------------------------------------------------------------------ the decks that ship

def test_the_shipped_decks():
    found = dk.shipped()
    assert set(found) >= {"gpt2-inside", "ioi"} and all(set(langs) == {"en", "zh"} for langs in found.values())
    inside = dk.load_shipped("gpt2-inside", "en")
    assert 10 <= len(inside.slides) <= 14 and inside.requires is None and inside.name == "gpt2-inside"
    order = [s.tab for s in inside.slides]                 # the book's chapter 4: tokens first, generation last
    assert order[0] == "walkthrough" and order[-1] == "generate" and "ablate" in order and "logit-lens" in order
    ioi = dk.load_shipped("ioi", "en")
    assert (ioi.requires.n_layers, ioi.requires.n_heads, ioi.requires.emb_dim) == (12, 12, 768)


@pytest.mark.parametrize("name", ["gpt2-inside", "ioi"])
def test_each_deck_says_the_same_in_both_languages(name):
    en, zh = dk.load_shipped(name, "en"), dk.load_shipped(name, "zh")
    assert zh.lang == "zh" and [(s.tab, s.values) for s in zh.slides] == [(s.tab, s.values) for s in en.slides]
    assert all(s.title and s.notes for s in en.slides + zh.slides)
    assert TEXT[en.title] == zh.title                      # the Talk tab's list names it in the page's language
    cjk = lambda text: any("\u4e00" <= c <= "\u9fff" for c in text)      # noqa: E731
    assert all(cjk(s.title) and cjk(s.notes) for s in zh.slides)


def test_a_deck_named_wrong_is_a_message():
    with pytest.raises(dk.DeckError, match="no deck named “nope”; the decks are: .*gpt2-inside"):
        dk.load_shipped("nope")
    assert dk.load_shipped("ioi", "fr").lang == "en"        # a language it lacks: English


def test_a_deck_for_a_bigger_model_says_so_on_a_small_one():
    ioi = dk.load_shipped("ioi")
    sentence = dk.unmet(ioi.needs(0), TINY_CFG)
    assert "at least 12 layers × 12 heads, width 768" in sentence and "2 layers × 4 heads, width 64" in sentence
    assert dk.unmet(ioi.needs(0), PRESETS["gpt2"]) == "" and dk.unmet(None, TINY_CFG) == ""
    assert tr(sentence, "zh").startswith("这张幻灯片需要至少 12 层")


def test_moving_a_slide():
    d = dk.Deck(slides=tuple(dk.Slide(title=t) for t in "abcd"))
    moved, j = dk.moved(d, 1, 1)
    assert [s.title for s in moved.slides] == list("acbd") and j == 2
    moved, j = dk.moved(d, 0, -1)                          # already first: stays
    assert [s.title for s in moved.slides] == list("abcd") and j == 0


def test_every_tab_has_a_place_in_the_top_bar():
    groups = nav.arrange(frozenset(nav.TAB_LABELS))
    placed = [v for g in groups for v in g.views]
    assert len(placed) == len(set(placed)) and [g.label for g in groups][:4] == [
        "Generate", "Look inside", "Experiments", "Learned"]
    assert "Train" in [g.label for g in groups]            # tabs/train.py, once merged, lands in its group
    assert nav.arrange(frozenset({"generate", "new-view"}))[-1].views == ("new-view",)   # never hidden
