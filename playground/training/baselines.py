"""N-gram baselines for held-out perplexity: add-one unigram and interpolated Kneser-Ney bigram.

Fitted on the *training* tokens of every source at its natural frequency and
scored on exactly the targets the model is scored on (the non-overlapping
validation windows), so the numbers compare.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

VOCAB = 50257


def _targets(windows: dict[str, torch.Tensor]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(previous token, target) pairs of every window, per source: what the model predicts."""
    out = {}
    for name, rows in windows.items():
        r = rows.numpy()
        out[name] = (r[:, :-1].reshape(-1), r[:, 1:].reshape(-1))
    return out


def _mean_by_source(nll: dict[str, np.ndarray]) -> dict[str, float]:
    res = {name: float(v.mean()) for name, v in nll.items()}
    res["all"] = float(np.concatenate(list(nll.values())).mean())
    return res


def token_counts(train: Sequence[np.ndarray], vocab: int = VOCAB) -> np.ndarray:
    """``(vocab,)`` int64: how often each id occurs in the training streams."""
    counts = np.zeros(vocab, dtype=np.int64)
    for s in train:
        counts += np.bincount(s, minlength=vocab)[:vocab]
    return counts


def unigram_nll(train: Sequence[np.ndarray], windows: dict[str, torch.Tensor],
                vocab: int = VOCAB, alpha: float = 1.0) -> dict[str, float]:
    """Mean NLL (nats) of an add-``alpha`` (Laplace) unigram model of the training tokens."""
    counts = token_counts(train, vocab).astype(np.float64)
    logp = np.log((counts + alpha) / (counts.sum() + alpha * vocab))
    return _mean_by_source({n: -logp[y] for n, (_, y) in _targets(windows).items()})


class KneserNeyBigram:
    """Interpolated Kneser-Ney bigram model (discount ``d``), fitted on token streams.

    ``p(w | v) = max(c(v,w) - d, 0) / c(v) + d * N1+(v .) / c(v) * p_cont(w)``,
    with ``p_cont(w)`` the share of distinct left contexts of ``w`` (add-one, so
    a word never seen as a continuation keeps some mass); unseen ``v`` falls back
    to ``p_cont``. Pairs never cross a stream boundary.
    """

    def __init__(self, streams: Sequence[np.ndarray], vocab: int = VOCAB, discount: float = 0.75) -> None:
        keys = np.concatenate([s[:-1].astype(np.int64) * vocab + s[1:] for s in streams if s.size > 1])
        self.keys, counts = np.unique(keys, return_counts=True)     # sorted (v*V + w), c(v,w)
        self.counts = counts.astype(np.float64)
        prev, nxt = self.keys // vocab, self.keys % vocab
        self.vocab, self.d = vocab, discount
        self.c_prev = np.bincount(prev, weights=self.counts, minlength=vocab)
        self.n_follow = np.bincount(prev, minlength=vocab).astype(np.float64)
        n_left = np.bincount(nxt, minlength=vocab).astype(np.float64)
        self.p_cont = (n_left + 1.0) / (n_left.sum() + vocab)

    def prob(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        key = v.astype(np.int64) * self.vocab + w
        pos = np.clip(np.searchsorted(self.keys, key), 0, self.keys.size - 1)
        c_vw = np.where(self.keys[pos] == key, self.counts[pos], 0.0)
        c_v = self.c_prev[v]
        seen = c_v > 0
        safe = np.where(seen, c_v, 1.0)
        p_seen = np.maximum(c_vw - self.d, 0.0) / safe + self.d * self.n_follow[v] / safe * self.p_cont[w]
        return np.where(seen, p_seen, self.p_cont[w])


def bigram_nll(train: Sequence[np.ndarray], windows: dict[str, torch.Tensor],
               vocab: int = VOCAB, discount: float = 0.75) -> dict[str, float]:
    """Mean NLL (nats) of :class:`KneserNeyBigram` on the validation targets."""
    lm = KneserNeyBigram(train, vocab, discount)
    return _mean_by_source({n: -np.log(lm.prob(v, w)) for n, (v, w) in _targets(windows).items()})
