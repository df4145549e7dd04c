"""Model cards the app can show: ``<weights>.card.json`` beside a weights file.

A card belongs to exactly one file: it names that file's sha256, and the app
shows it only when the loaded file hashes to it (a retrained or edited file
keeps its card off screen until the card is updated). The card's long form,
with the commands and results, is ``weights/README.md``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelCard:
    name: str                               # "Playground mini, 7.7M parameters"
    short: str                              # one line for the header
    sha256: str
    trained_on: str
    can: list[str] = field(default_factory=list)
    cannot: list[str] = field(default_factory=list)
    heads: list[dict[str, Any]] = field(default_factory=list)   # [{head: "L4H1", kind, score, on}]
    results: dict[str, Any] = field(default_factory=dict)
    details: str = "weights/README.md"
    zh: dict[str, Any] = field(default_factory=dict)   # the same fields in 中文 (any subset)

    def localized(self, lang: str) -> "ModelCard":
        """The card in ``lang``: its ``zh`` fields over the English ones (English where it has none)."""
        if lang != "zh" or not self.zh:
            return self
        known = {k: v for k, v in self.zh.items() if k in self.__dataclass_fields__ and k not in ("sha256", "zh")}
        return dataclasses.replace(self, **known)

    def markdown(self) -> str:
        heads = "\n".join(f"- **{h['head']}** — {h['kind']}, score {h['score']:.2f} ({h['on']})" for h in self.heads)
        res = " · ".join(f"{k}: {v}" for k, v in self.results.items())
        return (f"### {self.name}\n{self.trained_on}\n\n"
                + ("**It can:** " + "; ".join(self.can) + ".\n\n" if self.can else "")
                + ("**It cannot:** " + "; ".join(self.cannot) + ".\n\n" if self.cannot else "")
                + (f"**Heads to look at** (open them in the Attention tab):\n{heads}\n\n" if heads else "")
                + (f"**Measured:** {res}\n\n" if res else "")
                + f"The whole card, with every training command: `{self.details}`.")


def card_path(weights: "str | Path") -> Path:
    p = Path(weights)
    return p.with_name(p.name.removesuffix(".safetensors") + ".card.json")


def read_card(weights: "str | Path") -> ModelCard | None:
    """The card beside ``weights``, or None when there is none or it cannot be read."""
    try:
        data = json.loads(card_path(weights).read_text(encoding="utf-8"))
        return ModelCard(**data)
    except (OSError, ValueError, TypeError):
        return None


def card_for(weights: "str | Path", sha256: str | None) -> ModelCard | None:
    """The card of this very file: only when the file's sha256 is the one the card names."""
    card = read_card(weights)
    if card is None or not sha256 or card.sha256 != sha256:
        return None
    return card
