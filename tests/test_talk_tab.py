"""The deck editor's handlers (tabs/talk.py) on the built page, no server and no browser: upload and download,
bad files refused with their message while the deck in use stays, a view added from the page, reorder, edit,
delete."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.ui import deck as dk
from tests.test_deeplink_load import page  # noqa: F401  (the built page, a fixture)


def handler(page, name: str):
    """``(function, its input components)`` of the page event called ``name``."""
    return next((f.fn, f.inputs) for f in page[3].fns.values() if f.fn is not None and f.fn.__name__ == name)


def deck_of(out: dict) -> dk.Deck | None:
    return next((v for v in out.values() if isinstance(v, dk.Deck)), None)


def message_of(page, out: dict) -> str:  # noqa: F811
    return out[page[2]["talk"].message]


def download_of(page, out: dict) -> dict:  # noqa: F811
    return json.loads(Path(out[page[2]["talk"].download]).read_text(encoding="utf-8"))


def upload(page, path: Path, deck: dk.Deck | None = None) -> dict:  # noqa: F811
    fn, _ = handler(page, "ui_deck_upload")
    return fn(str(path), deck, -1, 0)


def test_an_uploaded_deck_comes_back_the_same(page, tmp_path):  # noqa: F811
    data = dk.deck_to_dict(dk.load_shipped("gpt2-inside", "en"))
    data["x-venue"] = "Room 4"                                   # a field this version does not know
    data["slides"][2]["x-seconds"] = 90
    path = tmp_path / "my-talk.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    out = upload(page, path)
    assert deck_of(out).title == "GPT-2 from the inside" and len(deck_of(out).slides) == 12
    assert "Opened “GPT-2 from the inside”: 12 slides" in message_of(page, out)
    assert download_of(page, out) == data                              # what came in goes out, unknown fields too


@pytest.mark.parametrize("content, fragment", [
    (b"not json at all", "not JSON"),
    (b'{"title": "x"}', "not a deck"),
    (b'{"slides": [{"view": {"tab": "atention"}}]}', "the tab \"atention\" does not exist"),
    (b'{"slides": [{"view": {"tab": "attention", "colour": "red"}}]}', "no control `colour`"),
    (b"x" * 10_000_000, "The file is 10.0 MB"),
])
def test_a_bad_upload_says_why_and_keeps_the_deck(page, tmp_path, content, fragment):  # noqa: F811
    in_use = dk.load_shipped("ioi", "en")
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    out = upload(page, path, in_use)
    assert deck_of(out) is in_use
    text = message_of(page, out)
    assert "Could not open bad.json" in text and fragment in text and "is kept" in text


def test_making_a_deck_from_the_page(page):  # noqa: F811
    add, inputs = handler(page, "ui_add_view")
    controls = page[1]
    values = [c.value for c in inputs[3:]]                      # the page as it starts
    layer = inputs.index(controls["attention"]["layer"])
    values[layer - 3] = 1
    out = add(None, -1, "attention", *values)                    # no deck yet: a new one
    deck = deck_of(out)
    assert [(s.tab, s.values["layer"]) for s in deck.slides] == [("attention", 1)]
    assert deck.slides[0].title == "Attention"
    out = add(deck, -1, "ablate", *values)
    deck = deck_of(out)
    assert [s.tab for s in deck.slides] == ["attention", "ablate"] and deck.slides[1].values["heads"] == "L4H1"

    edit, _ = handler(page, "ui_deck_edit")
    deck = deck_of(edit(deck, -1, 2, "My talk", "Knock out a head", "*Watch* the copy fail."))
    assert (deck.title, deck.slides[1].title, deck.slides[1].notes) == ("My talk", "Knock out a head",
                                                                          "*Watch* the copy fail.")
    up, _ = handler(page, "ui_deck_move_up")
    out = up(deck, 1, 2)                                         # the slide shown (2nd) moves with it
    deck = deck_of(out)
    assert [s.tab for s in deck.slides] == ["ablate", "attention"]
    assert out[page[2]["talk"].sel] == 1
    delete, _ = handler(page, "ui_deck_delete")
    deck = deck_of(delete(deck, -1, 1))
    assert [s.tab for s in deck.slides] == ["attention"]
    out = delete(deck, -1, 0)                                    # nothing chosen: a message, the deck as it was
    assert deck_of(out) == deck and "Choose a slide first" in message_of(page, out)
