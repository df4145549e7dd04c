"""Model cards: shown only for the file they name, and the shipped card names the shipped weights."""
from __future__ import annotations

import json

import pytest

from playground.checkpoints import save_model, sha256_file
from playground.model_card import ModelCard, card_for, card_path, read_card
from playground.paths import DEFAULT_WEIGHTS
from playground.ui.state import ModelHolder
from playground.ui.views.model import card_markdown
from tests.factories import make_model


def _card(sha: str) -> dict:
    return {"name": "Tiny test model", "short": "1.6M parameters, random", "sha256": sha,
            "trained_on": "nothing", "can": ["be tested"], "cannot": ["write"],
            "heads": [{"head": "L1H2", "kind": "induction", "score": 0.5, "on": "random tokens"}]}


def test_a_card_shows_only_for_the_file_it_names(tmp_path):
    path = save_model(make_model(), tmp_path / "m.safetensors")
    sha = sha256_file(path)
    card_path(path).write_text(json.dumps(_card(sha)))
    assert card_for(path, sha).name == "Tiny test model"
    assert card_for(path, "0" * 64) is None                   # another file under the same name
    holder = ModelHolder(path, device="cpu", hash_in_background=False, prepare_fast_weights=False)
    holder.require()
    text = card_markdown(holder)
    assert "Tiny test model" in text and "L1H2" in text and "induction" in text
    assert holder.info()["card"]["short"] == "1.6M parameters, random"
    save_model(make_model(seed=3), path)                       # retrained: the card no longer applies
    holder.load(path)
    assert "No model card" in card_markdown(holder) and holder.info()["card"] is None


def test_a_broken_card_is_ignored(tmp_path):
    path = save_model(make_model(), tmp_path / "m.safetensors")
    card_path(path).write_text("{not json")
    assert read_card(path) is None
    card_path(path).write_text(json.dumps({"name": "missing fields"}))
    assert read_card(path) is None


def test_the_shipped_card_names_the_shipped_weights():
    card = read_card(DEFAULT_WEIGHTS)
    assert isinstance(card, ModelCard), "weights/default.card.json is missing or invalid"
    assert card.sha256 == sha256_file(DEFAULT_WEIGHTS), "retrained weights: update the card's sha256"
    assert card.heads and all(h["score"] > 0.5 for h in card.heads)
    readme = (DEFAULT_WEIGHTS.parent / "README.md").read_text()
    assert card.sha256 in readme                               # the long card names the same file


def test_a_card_reads_in_chinese_where_it_has_chinese():
    card = ModelCard(**{**_card("0" * 64), "zh": {"name": "小测试模型", "can": ["什么都不会"], "sha256": "f" * 64,
                                                   "nonsense": 1}})
    zh = card.localized("zh")
    assert zh.name == "小测试模型" and zh.can == ["什么都不会"] and zh.sha256 == "0" * 64   # the hash is never swapped
    assert zh.short == card.short and card.localized("en") is card                        # English where it has none
    shipped = read_card(DEFAULT_WEIGHTS)
    assert shipped.zh and shipped.localized("zh").name != shipped.name
    assert {h["head"] for h in shipped.localized("zh").heads} == {h["head"] for h in shipped.heads}
