"""What a live run (:mod:`.live`) trains on: the copying task, or text, each a sampler of ``(x, y)`` batches.

**Copying.** Each row is one random sequence of ``L`` tokens (``L`` drawn per row from ``min_len..max_len``)
repeated end to end and cut to the window, as the bundled model's induction rows
(:func:`.data.tiled_random_row`). The first copy cannot be predicted (its tokens are random: the loss there
stays at ln V); every token after it can, but only by *induction*: find where the current token was
before and copy the token that followed it. A 2-layer model learns this suddenly (the phase change of
Olsson et al., 2022).

Why the lengths vary: with one fixed length every second-copy token sits exactly ``L - 1`` positions
after its source, and the model learns that offset from the position embeddings instead — measured
here with the tiny preset and ``L = 32`` shown twice: the loss on the second copy fell to 0.04 by step
500, but the head's induction score was 0.93 on a 32-token probe and 0.05 on a 20-token one, with no
previous-token head (a positional shortcut, not an induction head). With lengths 8..32 both probes read
0.84-0.90 after the jump, and a previous-token head forms beside it (0.95).

**Text.** Random windows of GPT-2 tokens of a text (the bundled corpus sample, or a text of the user's),
through the command-line trainer's own :class:`.data.BatchSampler`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..paths import PROJECT_ROOT
from ..tokenizer import get_tokenizer
from .data import BatchSampler, SourceTokens, random_sequence

CORPUS_SAMPLE = PROJECT_ROOT / "playground" / "assets" / "reference_text.txt"
CORPUS_NAME = "the corpus sample (Austen, State of the Union, the Bible, the Jargon File, Bierce)"
GPT2_VOCAB = 50257


@dataclass
class Batch:
    x: torch.Tensor                      # (B, T) int64 inputs
    y: torch.Tensor                      # (B, T) int64 targets: x shifted by one
    first: torch.Tensor | None = None    # (B, T) bool: targets in the first copy (copying task only)


class Task(Protocol):
    name: str
    vocab: int                            # ids are drawn from [0, vocab)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch: ...


@dataclass(frozen=True)
class CopyTask:
    """Random sequences of ``min_len..max_len`` tokens from ``[0, vocab)``, repeated to fill ``window``."""

    vocab: int
    window: int
    min_len: int = 8
    max_len: int = 32
    name: str = "copy"

    def __post_init__(self) -> None:
        if not 2 <= self.vocab:
            raise ValueError(f"the copying task needs a vocabulary of at least 2 tokens, got {self.vocab}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"sequence lengths must satisfy 1 <= shortest <= longest, got "
                             f"{self.min_len}..{self.max_len}")
        if 2 * self.max_len > self.window + 1:
            raise ValueError(f"a sequence of {self.max_len} tokens does not fit twice in the context of "
                             f"{self.window} tokens: make the longest sequence at most {(self.window + 1) // 2} "
                             f"or the context at least {2 * self.max_len - 1}")

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        n = self.window + 1
        rows = np.empty((batch_size, n), dtype=np.int64)
        first = np.zeros((batch_size, n - 1), dtype=bool)
        uniform = np.arange(self.vocab)
        for r in range(batch_size):
            seq = random_sequence(rng, self.min_len, self.max_len, uniform, self.vocab)
            rows[r] = np.resize(seq, n)
            first[r, :seq.size] = True          # inputs 0..L-1 predict tokens 1..L: nothing to copy yet
        t = torch.from_numpy(rows)
        return Batch(t[:, :-1], t[:, 1:], torch.from_numpy(first))


@dataclass(frozen=True)
class TextTask:
    """Random windows of ``tokens`` (GPT-2 ids), the command-line trainer's sampler."""

    tokens: np.ndarray                   # (N,) uint16
    window: int
    source: str = "text"
    name: str = "text"
    vocab: int = GPT2_VOCAB

    def __post_init__(self) -> None:
        if self.tokens.size <= self.window + 1:
            raise ValueError(f"the text is {self.tokens.size:,} tokens, and one training window needs "
                             f"{self.window + 2:,} (the context length {self.window:,}, plus the next token "
                             f"of its last, plus one): give a longer text or a shorter context")
        src = SourceTokens(self.source, self.tokens, np.empty(0, dtype=np.uint16), 1, 0)
        object.__setattr__(self, "_sampler", BatchSampler([src], self.window))

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        x, y = self._sampler.sample(batch_size, rng)      # type: ignore[attr-defined]
        return Batch(x, y)

    def prompt(self, n: int = 8) -> list[int]:
        """The first ``n`` tokens: where the run's sample generations start."""
        return [int(i) for i in self.tokens[:n]]


@functools.lru_cache(maxsize=1)
def corpus_tokens() -> np.ndarray:
    """The bundled corpus sample as GPT-2 ids (about 106k tokens; tokenized once per process)."""
    text = CORPUS_SAMPLE.read_text(encoding="utf-8")
    return np.asarray(get_tokenizer().encoding.encode_ordinary(text), dtype=np.uint16)


def text_tokens(text: str | None, limit: int) -> tuple[np.ndarray, str]:
    """The first ``limit`` GPT-2 ids of ``text`` (None: the bundled corpus sample) and the source's name."""
    if limit < 1:
        raise ValueError(f"the text slice must hold at least 1 token, got {limit}")
    if text is None:
        return corpus_tokens()[:limit], CORPUS_NAME
    ids = get_tokenizer().encoding.encode_ordinary(text)
    return np.asarray(ids[:limit], dtype=np.uint16), "your text"
