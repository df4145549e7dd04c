"""Training data: text files -> cached token streams -> weighted random batches.

Each file is one *source*. It is cut into *documents* of a few KB at blank
lines; a seeded hash of each document's text sends it to the held-out split
or to training, so validation text is never seen in training (not even as a
window that straddles a boundary). Streams are tokenized once and cached as
raw ``uint16`` arrays keyed by the files' contents and the split settings.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..tokenizer import Tokenizer, get_tokenizer

CACHE_VERSION = "1"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / "cache" / "tokens"


@dataclass
class SourceTokens:
    """The token streams of one source file, split into train and validation."""

    name: str                 # file stem, e.g. "austen"
    train: np.ndarray         # (N_train,) uint16
    val: np.ndarray           # (N_val,) uint16
    n_docs_train: int
    n_docs_val: int


def split_documents(text: str, target_chars: int = 4000) -> list[str]:
    """Cut ``text`` into pieces of about ``target_chars`` at blank lines (else at newlines).

    Pieces keep their trailing separators, so ``"".join(pieces) == text``.
    """
    pieces: list[str] = []
    start = 0
    n = len(text)
    while start < n:
        end = start + target_chars
        if end >= n:
            pieces.append(text[start:])
            break
        cut = text.find("\n\n", end)
        line = text.find("\n", end)
        # Prefer a paragraph break unless it is much further away than a line break.
        if cut != -1 and (line == -1 or cut - end <= target_chars):
            stop = cut + 2
        elif line != -1:
            stop = line + 1
        else:
            stop = n
        pieces.append(text[start:stop])
        start = stop
    return pieces


def is_validation(doc: str, val_fraction: float, seed: int) -> bool:
    """Deterministic, content-based assignment: stable across runs and machines."""
    h = hashlib.sha256(f"{seed}:{doc}".encode("utf-8", "replace")).digest()
    return int.from_bytes(h[:8], "little") / 2**64 < val_fraction


def split_train_val(text: str, val_fraction: float, seed: int,
                    doc_chars: int = 4000) -> tuple[list[str], list[str]]:
    """Documents of ``text`` for training and for validation, each list in file order."""
    docs = split_documents(text, doc_chars)
    val_mask = [is_validation(d, val_fraction, seed) for d in docs]
    if val_fraction > 0 and len(docs) > 1 and not any(val_mask):
        val_mask[len(docs) // 2] = True  # every source gets some held-out text
    if len(docs) > 1 and all(val_mask):
        val_mask[0] = False
    return ([d for d, v in zip(docs, val_mask) if not v], [d for d, v in zip(docs, val_mask) if v])


_RUN_OF_BLANKS = re.compile(r"[ \t\u00a0]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_whitespace(doc: str) -> str:
    """``doc`` with each line's indentation and trailing blanks removed, runs of
    spaces/tabs inside a line cut to one space, and 3+ line breaks cut to 2.

    Why: the corpus indents verse, letters and the Jargon File's tables; a small
    model that has seen many lines start with runs of spaces falls, under greedy
    decoding, into one run of spaces after another. Applied per document *after*
    the held-out split (which hashes the raw text), so the split does not move.
    """
    lines = [_RUN_OF_BLANKS.sub(" ", line).strip(" ") for line in doc.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines))


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tokenize(pieces: Sequence[str], tok: Tokenizer) -> np.ndarray:
    # Documents of one file are consecutive text: join them without a separator.
    # allow_special=False: a literal "<|endoftext|>" in a book is just text.
    ids = tok.encoding.encode_ordinary_batch(list(pieces)) if pieces else []
    flat = [i for doc in ids for i in doc]
    return np.asarray(flat, dtype=np.uint16)


def load_source(path: "str | os.PathLike", val_fraction: float = 0.01, seed: int = 0,
                doc_chars: int = 4000, cache_dir: "str | os.PathLike | None" = DEFAULT_CACHE_DIR,
                tokenizer: Tokenizer | None = None, clean_whitespace: bool = False) -> SourceTokens:
    """Tokenize one UTF-8 file into train/val streams, using the cache when it is fresh.

    ``clean_whitespace`` passes every document (train and held-out alike) through
    :func:`normalize_whitespace` after the split.
    """
    path = Path(path)
    settings = {"v": CACHE_VERSION, "sha": _file_digest(path), "val": val_fraction,
                "seed": seed, "doc_chars": doc_chars}
    if clean_whitespace:  # only then: keeps the keys of existing caches valid
        settings["clean_whitespace"] = True
    key_src = json.dumps(settings, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    entry = Path(cache_dir) / f"{path.stem}-{key}" if cache_dir is not None else None
    if entry is not None and (entry / "meta.json").exists():
        meta = json.loads((entry / "meta.json").read_text())
        return SourceTokens(path.stem, np.fromfile(entry / "train.bin", dtype=np.uint16),
                            np.fromfile(entry / "val.bin", dtype=np.uint16),
                            meta["n_docs_train"], meta["n_docs_val"])

    text = path.read_text(encoding="utf-8", errors="replace")
    train_docs, val_docs = split_train_val(text, val_fraction, seed, doc_chars)
    if clean_whitespace:
        train_docs = [normalize_whitespace(d) for d in train_docs]
        val_docs = [normalize_whitespace(d) for d in val_docs]
    tok = tokenizer or get_tokenizer()
    train = _tokenize(train_docs, tok)
    val = _tokenize(val_docs, tok)
    src = SourceTokens(path.stem, train, val, len(train_docs), len(val_docs))
    if entry is not None:
        tmp = entry.with_name(entry.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        train.tofile(tmp / "train.bin")
        val.tofile(tmp / "val.bin")
        (tmp / "meta.json").write_text(json.dumps(
            {"source": str(path), "n_docs_train": src.n_docs_train, "n_docs_val": src.n_docs_val,
             "n_train": int(train.size), "n_val": int(val.size), "key": json.loads(key_src)}, indent=1))
        os.replace(tmp, entry)
    return src


def parse_weights(specs: Sequence[str]) -> dict[str, float]:
    """``["kjv=0.2", "web=0.2"]`` -> ``{"kjv": 0.2, "web": 0.2}`` (names are file stems)."""
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name:
            raise ValueError(f"a source weight looks like NAME=WEIGHT, got {spec!r}")
        w = float(value)
        if w < 0:
            raise ValueError(f"source weight must be >= 0, got {spec!r}")
        out[name] = w
    return out


class BatchSampler:
    """Random windows of ``context_length + 1`` tokens, the source drawn per row.

    A source's sampling probability is proportional to ``weight * train tokens``:
    weight 1 keeps its natural share, 0.25 samples it four times less often.
    """

    def __init__(self, sources: Sequence[SourceTokens], context_length: int,
                 weights: dict[str, float] | None = None, repeat_fraction: float = 0.0,
                 repeat_len: tuple[int, int] = (8, 96), repeat_random: float = 0.0,
                 induction_fraction: float = 0.0, induction_len: tuple[int, int] = (4, 32),
                 vocab_size: int = 50257, passage_fraction: float = 0.0,
                 passage_len: tuple[int, int] = (8, 96)) -> None:
        weights = weights or {}
        if not 0.0 <= passage_fraction <= 1.0:
            raise ValueError(f"passage_fraction must be in [0, 1], got {passage_fraction}")
        if passage_fraction and not 2 <= passage_len[0] <= passage_len[1] <= (context_length + 1) // 2:
            raise ValueError(f"passage_len {tuple(passage_len)} must satisfy 2 <= MIN <= MAX <= "
                             f"half the window ({(context_length + 1) // 2})")
        self.passage_fraction = passage_fraction
        self.passage_len = (int(passage_len[0]), int(passage_len[1]))
        self._sentence_ends = sentence_end_ids() if passage_fraction else None
        if not 0.0 <= induction_fraction <= 1.0:
            raise ValueError(f"induction_fraction must be in [0, 1], got {induction_fraction}")
        if induction_fraction and not 1 <= induction_len[0] <= induction_len[1] <= context_length // 2:
            raise ValueError(f"induction_len {tuple(induction_len)} must satisfy 1 <= MIN <= MAX <= "
                             f"half the window ({context_length // 2})")
        self.induction_fraction = induction_fraction
        self.induction_len = (int(induction_len[0]), int(induction_len[1]))
        self.vocab_size = vocab_size
        if not 0.0 <= repeat_fraction <= 1.0:
            raise ValueError(f"repeat_fraction must be in [0, 1], got {repeat_fraction}")
        lo, hi = repeat_len
        if repeat_fraction and not (1 <= lo <= hi and 2 * lo <= context_length + 1):
            raise ValueError(f"repeat_len {repeat_len} must satisfy 1 <= MIN <= MAX and 2*MIN <= context + 1 "
                             f"(longer spans are cut to half the window)")
        if not 0.0 <= repeat_random <= 1.0:
            raise ValueError(f"repeat_random must be in [0, 1], got {repeat_random}")
        self.repeat_fraction = repeat_fraction
        self.repeat_random = repeat_random
        self.repeat_len = (lo, hi)
        unknown = set(weights) - {s.name for s in sources}
        if unknown:
            raise ValueError(f"weights for unknown source(s): {', '.join(sorted(unknown))}")
        self.context_length = context_length
        self.sources = [s for s in sources if s.train.size > context_length + 1]
        if not self.sources:
            raise ValueError(f"no source has more than {context_length + 1} training tokens")
        mass = np.array([weights.get(s.name, 1.0) * s.train.size for s in self.sources], dtype=np.float64)
        if mass.sum() <= 0:
            raise ValueError("all source weights are zero")
        self.probs = mass / mass.sum()

    def shares(self) -> dict[str, float]:
        """Expected fraction of training tokens drawn from each source."""
        return {s.name: float(p) for s, p in zip(self.sources, self.probs)}

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets, both ``(B, T)`` int64."""
        n = self.context_length + 1
        which = rng.choice(len(self.sources), size=batch_size, p=self.probs)
        rows = np.empty((batch_size, n), dtype=np.int64)
        for r, si in enumerate(which):
            stream = self.sources[si].train
            start = int(rng.integers(0, stream.size - n + 1))
            rows[r] = stream[start:start + n]
            if self.repeat_fraction and rng.random() < self.repeat_fraction:
                filler = None
                if self.repeat_random and rng.random() < self.repeat_random:
                    filler = stream[rng.integers(0, stream.size, self.repeat_len[1])]
                rows[r] = insert_repeat(rows[r], rng, *self.repeat_len, filler=filler)
            if self.passage_fraction and rng.random() < self.passage_fraction:
                rows[r] = doubled_passage_row(rows[r], rng, *self.passage_len, self._sentence_ends)
            elif self.induction_fraction and rng.random() < self.induction_fraction:
                rows[r] = tiled_random_row(n, rng, *self.induction_len, stream, self.vocab_size)
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]


def insert_repeat(row: np.ndarray, rng: np.random.Generator, min_len: int, max_len: int,
                  filler: np.ndarray | None = None) -> np.ndarray:
    """``row`` with a copy of one of its own spans inserted later on; same length.

    A span ``row[i:i+L]`` is repeated at ``j >= i + L`` and the text then
    resumes where it left off (``row[j:]``, its tail cut to keep the length)::

        row[:j] + row[i:i+L] + row[j:n-L]

    Text that quotes itself teaches *induction* (attend to what followed the
    earlier occurrence of the current token, copy it), which ~10M tokens of
    prose alone do not (see weights/README.md). The copy ends and the prose
    goes on, so the model does not learn that a repeat never stops.

    With ``filler`` (tokens drawn at random from the corpus, at least ``max_len``
    of them), the span is first overwritten with ``filler[:L]``: its copy is then
    predictable *only* by copying, the cleanest induction signal.
    """
    n = row.size
    length = int(rng.integers(min_len, min(max_len, n // 2) + 1))
    i = int(rng.integers(0, n - 2 * length + 1))       # the original span
    if filler is not None:
        row = row.copy()
        row[i:i + length] = filler[:length]
    j = int(rng.integers(i + length, n - length + 1))  # where its copy starts
    return np.concatenate([row[:j], row[i:i + length], row[j:n - length]])


_SENTENCE_END = re.compile(r"([.!?;:][\"')\]]*\s*|\n\s*)$")


def sentence_end_ids(tokenizer: Tokenizer | None = None) -> np.ndarray:
    """``(V,)`` bool: tokens whose text ends a sentence or a line (``.``, ``!``, ``?``, ``;``,
    ``:`` with closing quotes, or a line break)."""
    tok = tokenizer or get_tokenizer()
    enc = tok.encoding
    out = np.zeros(enc.n_vocab, dtype=bool)
    for i in range(enc.n_vocab):
        try:
            text = enc.decode_single_token_bytes(i).decode("utf-8", "replace")
        except KeyError:
            continue
        out[i] = bool(_SENTENCE_END.search(text))
    return out


def doubled_passage_row(row: np.ndarray, rng: np.random.Generator, min_len: int, max_len: int,
                        sentence_ends: np.ndarray) -> np.ndarray:
    """``row`` (real text) with one of its own passages shown again later; same length.

    The passage is whole sentences where the row has sentence ends: it starts
    after a sentence end and stops on one (a sentence to a paragraph), and its
    copy is inserted after a sentence end, right after the passage itself half
    of the time. The prose then resumes where it left off (``row[:j] + P +
    row[j:n-L]``), so the model learns that text may repeat itself, not that a
    repeat goes on for ever. Unlike :func:`tiled_random_row`, the copied tokens
    are ordinary text the model could also guess from its own knowledge: this
    teaches it to *prefer* the copy on natural text, where a small model's
    induction head is otherwise outvoted by its prior.
    """
    n = row.size
    max_len = min(max_len, n // 2)
    ends = np.nonzero(sentence_ends[row])[0]                 # positions of sentence-final tokens
    starts = ends + 1                                         # a passage may begin after one
    length = int(rng.integers(min_len, max_len + 1))
    i = int(rng.integers(0, n - 2 * length + 1))
    ok = starts[(starts <= n - 2 * length)]
    if ok.size:
        i = int(ok[rng.integers(0, ok.size)])
        stops = ends[(ends >= i + min_len - 1) & (ends <= i + max_len - 1) & (ends <= (n + i) // 2 - 1)]
        if stops.size:                                        # end the passage on a sentence end
            length = int(stops[rng.integers(0, stops.size)]) - i + 1
    length = max(1, min(length, (n - i) // 2))
    if rng.random() < 0.5:
        j = i + length                                        # shown twice in a row
    else:
        later = starts[(starts >= i + length) & (starts <= n - length)]
        j = int(later[rng.integers(0, later.size)]) if later.size else \
            int(rng.integers(i + length, n - length + 1))
    return np.concatenate([row[:j], row[i:i + length], row[j:n - length]])


def tiled_random_row(n: int, rng: np.random.Generator, min_len: int, max_len: int,
                     stream: np.ndarray, vocab_size: int) -> np.ndarray:
    """``n`` tokens: ``L`` random tokens repeated end to end (``r r r ...``, the last copy cut).

    From the second copy on, every token is predictable *only* by induction —
    find the earlier occurrence of the current token, copy the one after it —
    the very task the attention tab's induction score measures. Half the rows
    draw ids uniformly from the whole vocabulary, half from ``stream`` (the
    corpus's own frequencies), so the head works for rare and common ids alike.

    Rows in natural text barely teach this to a small model (see
    weights/README.md); whole rows of it, in short windows (``--seq-len 64``),
    grow an induction head within minutes. Held-out windows are never changed.
    """
    seq = random_sequence(rng, min_len, max_len, stream, vocab_size)
    return np.resize(seq, n)                                                # (n,)


def random_sequence(rng: np.random.Generator, min_len: int, max_len: int, stream: np.ndarray,
                    vocab_size: int) -> np.ndarray:
    """``(L,)`` int64, ``L`` uniform in ``[min_len, max_len]``: ids uniform over the vocabulary half the
    time, drawn from ``stream`` (its own frequencies) the other half. The unit :func:`tiled_random_row`
    repeats, and the app's copying task (:mod:`.tasks`) too."""
    length = int(rng.integers(min_len, max_len + 1))
    if rng.random() < 0.5:
        seq = rng.integers(0, vocab_size, length)
    else:
        seq = stream[rng.integers(0, stream.size, length)]
    return np.asarray(seq, dtype=np.int64)


def validation_windows(sources: Sequence[SourceTokens], context_length: int,
                       max_windows_per_source: int | None = None) -> dict[str, torch.Tensor]:
    """Non-overlapping ``(N, context_length + 1)`` windows of each source's held-out stream.

    Deterministic (no sampling), so every evaluation scores exactly the same tokens.
    ``max_windows_per_source`` takes evenly spaced windows for a cheap periodic estimate.
    """
    n = context_length + 1
    out: dict[str, torch.Tensor] = {}
    for s in sources:
        count = s.val.size // n
        if count == 0:
            continue
        rows = np.asarray(s.val[:count * n], dtype=np.int64).reshape(count, n)
        if max_windows_per_source is not None and count > max_windows_per_source:
            pick = np.linspace(0, count - 1, max_windows_per_source).round().astype(int)
            rows = rows[pick]
        out[s.name] = torch.from_numpy(rows)
    return out
