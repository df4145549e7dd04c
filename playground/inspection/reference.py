"""The reference texts the neuron index reads: what "top-activating contexts" are taken over.

- For the bundled model (``weights/default.safetensors``, known by its sha256): its own held-out
  split, reproduced exactly as training made it (``training.data.split_train_val`` with the
  card's settings: 1% of 4,000-character documents, seed 1337, whitespace cleaned after the
  split), shipped as ``assets/heldout_default.txt`` — text the model never trained on.
- For any other model: ``assets/reference_text.txt``, about 100k GPT-2 tokens of public-domain
  passages drawn evenly from five sources of the corpus (see ``assets/reference_text.md``).

Both files are built by :func:`heldout_text` / :func:`sample_text` from ``/work/shared/corpus``
(``python -m playground.inspection.reference CORPUS_DIR`` rewrites them).
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from ..training.data import normalize_whitespace, split_documents, split_train_val

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLE_PATH = ASSETS / "reference_text.txt"
HELDOUT_PATH = ASSETS / "heldout_default.txt"
DEFAULT_SHA256 = "754ec152f8413123857f039e028dc11e0a895ff6d3d51cb690995c5294dbfa23"

# The bundled model's training settings (weights/README.md, "Data").
HELDOUT_SOURCES = ("austen", "sotu", "jargon", "devil", "kjv", "web")
HELDOUT_FRACTION, HELDOUT_SEED, DOC_CHARS = 0.01, 1337, 4000
SAMPLE_SOURCES = ("austen", "sotu", "web", "jargon", "devil")
SAMPLE_TOKENS_PER_SOURCE = 20_000
SEPARATOR = "\n\n"


def heldout_text(corpus_dir: "str | Path") -> str:
    """The bundled model's held-out documents, cleaned, source after source."""
    parts = []
    for name in HELDOUT_SOURCES:
        text = (Path(corpus_dir) / f"{name}.txt").read_text(encoding="utf-8", errors="replace")
        _, val = split_train_val(text, HELDOUT_FRACTION, HELDOUT_SEED, DOC_CHARS)
        parts += [normalize_whitespace(d).strip() for d in val]
    return SEPARATOR.join(p for p in parts if p) + "\n"


def sample_text(corpus_dir: "str | Path", tokens_per_source: int = SAMPLE_TOKENS_PER_SOURCE) -> str:
    """Documents spread evenly through each source (the first, a header or contents, skipped),
    whitespace cleaned, until each source gives about ``tokens_per_source`` tokens."""
    from ..tokenizer import get_tokenizer
    tok = get_tokenizer()
    parts = []
    for name in SAMPLE_SOURCES:
        text = (Path(corpus_dir) / f"{name}.txt").read_text(encoding="utf-8", errors="replace")
        docs = split_documents(text, DOC_CHARS)[1:]
        need = max(1, round(tokens_per_source / 1000))                 # ~1,000 tokens a document
        step = max(1, len(docs) // need)
        got = 0
        for doc in docs[step // 2::step]:
            doc = normalize_whitespace(doc).strip()
            if not doc:
                continue
            parts.append(doc)
            got += len(tok.encode(doc, allow_special=False))
            if got >= tokens_per_source:
                break
    return SEPARATOR.join(parts) + "\n"


@lru_cache(maxsize=4)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def reference_for(weights_sha256: str | None) -> tuple[str, str]:
    """``(name, text)``: the held-out split for the bundled model, the shipped sample otherwise."""
    if weights_sha256 == DEFAULT_SHA256 and HELDOUT_PATH.exists():
        return "held-out split of the bundled model's corpus", _read(HELDOUT_PATH)
    return "public-domain sample (assets/reference_text.txt)", _read(SAMPLE_PATH)


def reference_ids(weights_sha256: str | None, tokenizer=None) -> tuple[str, "torch.Tensor"]:
    """``(name, ids)``: :func:`reference_for`'s text as GPT-2 token ids ``(N,)`` (special tokens as plain text)."""
    import torch

    from ..tokenizer import get_tokenizer
    name, text = reference_for(weights_sha256)
    tok = tokenizer or get_tokenizer()
    return name, torch.tensor(tok.encode(text, allow_special=False), dtype=torch.long)


if __name__ == "__main__":
    corpus = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/corpus"
    HELDOUT_PATH.write_text(heldout_text(corpus), encoding="utf-8")
    SAMPLE_PATH.write_text(sample_text(corpus), encoding="utf-8")
