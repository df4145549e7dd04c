"""What a live run measures on its heads as it trains, and when its phase change came.

The probe is fixed for the whole run: ``batch`` random sequences of ``seq_len`` tokens, each shown twice
(:func:`~playground.inspection.random_tokens.repeated_random_tokens`, seeded). Its scores are the
Attention tab's own (:mod:`playground.inspection.head_scores`): previous-token on the first, unrepeated
half and induction on the second, per head, as that tab measures them without a prompt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..hooks import hooks
from ..inspection.attention import pattern_hook_name
from ..inspection.head_scores import induction_score, previous_token_score
from ..inspection.inputs import eval_mode
from ..inspection.random_tokens import repeated_random_tokens
from ..model import GPTModel

PROBE_SEED = 0
PROBE_BATCH = 4
PROBE_MAX_LEN = 32            # at most 64 probe tokens: a pattern a room can read


@dataclass(frozen=True)
class ProbeResult:
    step: int
    previous_token: np.ndarray      # (L, H)
    induction: np.ndarray           # (L, H)
    pattern: np.ndarray             # (L, H, T, T) float32: the first probe row's weights


@dataclass(frozen=True)
class Probe:
    ids: torch.Tensor               # (B, 2 * seq_len)
    seq_len: int

    @classmethod
    def for_model(cls, context_length: int, vocab: int, seed: int = PROBE_SEED, batch: int = PROBE_BATCH) -> "Probe":
        """Random ids from ``[0, vocab)``, ``min(32, context // 2)`` of them, shown twice."""
        seq_len = min(PROBE_MAX_LEN, context_length // 2)
        if seq_len < 2:
            raise ValueError(f"a context of {context_length} tokens is too short for the probe (it needs 4)")
        return cls(repeated_random_tokens(vocab, seq_len, batch=batch, seed=seed), seq_len)

    @torch.no_grad()
    def measure(self, model: GPTModel, step: int) -> ProbeResult:
        """One forward pass of the probe; every layer's weights reduced to scores, the first row kept."""
        n_layers, n_heads, t = model.cfg.n_layers, model.cfg.n_heads, self.ids.shape[1]
        prev = np.zeros((n_layers, n_heads), dtype=np.float32)
        ind = np.zeros((n_layers, n_heads), dtype=np.float32)
        pattern = np.zeros((n_layers, n_heads, t, t), dtype=np.float32)
        half = (1, self.seq_len)                                 # queries of the unrepeated half

        def at(layer: int):
            def fn(weights: torch.Tensor, name: str) -> None:   # (B, H, T, T)
                prev[layer] = previous_token_score(weights, half).cpu().numpy()
                ind[layer] = induction_score(weights, self.seq_len).cpu().numpy()
                pattern[layer] = weights[0].float().cpu().numpy()
            return fn

        with eval_mode(model), hooks(model, {pattern_hook_name(l): at(l) for l in range(n_layers)}):
            model(self.ids.to(model.device))
        return ProbeResult(step, prev, ind, pattern)


@dataclass(frozen=True)
class PhaseChange:
    step: int
    seconds: float                  # training time (pauses left out) when it came
    loss: float                     # the smoothed loss on the copies there


PLATEAU = 0.8                       # the smoothed loss sat at >= 0.8 ln V (near chance) ...
DROP = 0.5                          # ... then fell below 0.5 ln V
SMOOTH = 20                         # steps in the running mean


def find_phase_change(steps: Sequence[int], losses: Sequence[float], seconds: Sequence[float],
                      vocab: int, smooth: int = SMOOTH) -> PhaseChange | None:
    """The phase change of the copying task: the first step where the running mean of the last ``smooth``
    losses on the copies falls below ``DROP`` x ln(vocab), after it sat at ``PLATEAU`` x ln(vocab) or
    above (chance is ln(vocab): one in ``vocab`` for a random token). None until that happens."""
    chance = math.log(vocab)
    run = np.convolve(np.asarray(losses, dtype=np.float64), np.ones(smooth) / smooth, mode="valid")
    above = np.nonzero(run >= PLATEAU * chance)[0]
    if not above.size:
        return None
    below = np.nonzero(run[above[0]:] < DROP * chance)[0]
    if not below.size:
        return None
    i = int(above[0] + below[0]) + smooth - 1                  # the last step of that window
    return PhaseChange(int(steps[i]), float(seconds[i]), float(run[i - smooth + 1]))
