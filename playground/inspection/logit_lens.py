"""Logit lens: what the model would predict if it stopped after each block.

The residual stream after the embeddings and after every block is sent
through the model's own final LayerNorm and output head (nostalgebraist's
"logit lens"; TransformerLens's ``accumulated_resid``, which needs its own
model class). After the last block this *is* the model's prediction, so the
last row matches ``model(ids)`` exactly.

Only the ``(layers, T, E)`` residuals are kept from the pass; the
vocabulary-sized logits are formed one layer at a time and reduced to top-k,
ranks and probabilities straight away.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps, rows_to_csv
from .inputs import (LabelFn, StopForward, TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare,
                     this_thread_only)


@dataclass(frozen=True)
class TokenTrajectory:
    """Probability and rank (1 = top) of one token at one position, layer by layer."""

    token_id: int
    label: str
    position: int
    layer_names: tuple[str, ...]
    probs: tuple[float, ...]
    ranks: tuple[int, ...]

    def rows(self) -> list[dict]:
        return [{"layer": n, "prob": p, "rank": r} for n, p, r in zip(self.layer_names, self.probs, self.ranks)]

    def to_json(self) -> str:
        return dumps(self)

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


@dataclass(frozen=True)
class LogitLens:
    """Top-k predictions of every (layer, position); layer 0 is the embeddings.

    ``final_ids[t]`` is the model's own top-1 at position ``t``; ``final_rank``
    and ``final_prob`` follow that token through the layers ("when does the
    model settle on its answer?"). ``tracked`` does the same for ``track_ids``.
    """

    layer_names: tuple[str, ...]             # S = n_layers + 1
    token_ids: tuple[int, ...]               # the prompt (after cropping)
    labels: tuple[str, ...]
    top_ids: torch.Tensor                    # (S, T, k)
    top_probs: torch.Tensor                  # (S, T, k)
    top_labels: tuple[tuple[tuple[str, ...], ...], ...]  # [S][T][k]
    final_rank: torch.Tensor                 # (S, T) rank of final_ids[t] at each layer
    final_prob: torch.Tensor                 # (S, T)
    tracked_ids: tuple[int, ...] = ()
    tracked_rank: torch.Tensor | None = None  # (S, T, n_tracked)
    tracked_prob: torch.Tensor | None = None  # (S, T, n_tracked)
    offset: int = 0
    note: str = ""

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def final_ids(self) -> torch.Tensor:
        return self.top_ids[-1, :, 0]                                          # (T,)

    def trajectory(self, position: int = -1, token_id: int | None = None) -> TokenTrajectory:
        """Prob/rank across layers at ``position`` of ``token_id`` (default: the model's final top-1).

        ``token_id`` must be the final prediction there or one of ``tracked_ids``.
        """
        pos = range(self.n_tokens)[position]
        final = int(self.final_ids[pos])
        tid = final if token_id is None else int(token_id)
        if tid == final:
            probs, ranks = self.final_prob[:, pos], self.final_rank[:, pos]
        elif tid in self.tracked_ids:
            j = self.tracked_ids.index(tid)
            probs, ranks = self.tracked_prob[:, pos, j], self.tracked_rank[:, pos, j]
        else:
            raise KeyError(f"token {tid} was not tracked; pass track_ids=[{tid}] to logit_lens")
        label = next((lab for lab, i in zip(self.top_labels[-1][pos], self.top_ids[-1, pos].tolist())
                      if i == tid), None)
        return TokenTrajectory(tid, label if label is not None else self._label(tid), pos, self.layer_names,
                               tuple(float(p) for p in probs), tuple(int(r) for r in ranks))

    def _label(self, tid: int) -> str:
        for s in range(len(self.layer_names)):
            for t in range(self.n_tokens):
                ids = self.top_ids[s, t].tolist()
                if tid in ids:
                    return self.top_labels[s][t][ids.index(tid)]
        return str(tid)

    def rows(self) -> list[dict]:
        """One row per (layer, position): the input token, top-1 prediction and its probability."""
        return [{"layer": self.layer_names[s], "position": t, "input_token": self.labels[t],
                 "top1_id": int(self.top_ids[s, t, 0]), "top1_token": self.top_labels[s][t][0],
                 "top1_prob": float(self.top_probs[s, t, 0]),
                 "final_token_rank": int(self.final_rank[s, t])}
                for s in range(len(self.layer_names)) for t in range(self.n_tokens)]

    def to_json(self) -> str:
        return dumps({"layer_names": self.layer_names, "token_ids": self.token_ids, "labels": self.labels,
                      "top_ids": self.top_ids, "top_probs": self.top_probs, "top_labels": self.top_labels,
                      "final_rank": self.final_rank, "final_prob": self.final_prob,
                      "tracked_ids": self.tracked_ids, "tracked_rank": self.tracked_rank,
                      "tracked_prob": self.tracked_prob, "offset": self.offset, "note": self.note})

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


def _rank(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``(T, V)``, ``(T, n)`` -> ``(T, n)`` ranks, 1 = highest logit (ties share the better rank)."""
    chosen = logits.gather(-1, ids)                                            # (T, n)
    return (logits.unsqueeze(1) > chosen.unsqueeze(-1)).sum(-1) + 1            # (T, n)


@torch.inference_mode()
def logit_lens(model: GPTModel, tokens: TokenInput, *, top_k: int = 5,
               track_ids: Sequence[int] = (), tokenizer: TokenizerLike | None = None,
               label_fn: LabelFn | None = None, max_tokens: int | None = None) -> LogitLens:
    """Read the prediction after the embeddings and after every block, at every position.

    ``top_k`` predictions are kept per cell (the hover of the figure);
    ``track_ids`` are followed across layers like the final prediction is.
    """
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn, max_tokens=max_tokens)
    bad = [i for i in track_ids if not 0 <= int(i) < model.cfg.vocab_size]
    if bad:
        raise ValueError(f"tracked token {bad[0]} is outside the vocabulary")
    n = model.cfg.n_layers
    names = ["hook_embed"] + [f"trf_blocks.{i}.hook_resid_post" for i in range(n)]
    resid = torch.empty((n + 1, prep.n_tokens, model.cfg.emb_dim), dtype=model.dtype, device=model.device)

    def keep(slot: int):
        def fn(x: torch.Tensor, name: str) -> None:                           # x: (1, T, E)
            resid[slot].copy_(x[0])
            if slot == n:
                raise StopForward                                              # the lens applies the head itself
        return this_thread_only(fn)

    with eval_mode(model), hooks(model, {name: keep(i) for i, name in enumerate(names)}):
        try:
            model(prep.ids)
        except StopForward:
            pass
    # One product for every layer at once: (S*T, E) @ (E, V) runs faster than S products of (T, E).
    all_logits = model.out_head(model.final_norm(resid.reshape(-1, resid.shape[-1]))).float()
    all_logits = all_logits.reshape(n + 1, prep.n_tokens, -1)                  # (S, T, V)

    k = min(top_k, model.cfg.vocab_size)
    track = torch.tensor(list(track_ids), dtype=torch.long, device=model.device)
    t = prep.n_tokens
    top_ids = torch.empty((n + 1, t, k), dtype=torch.long)
    top_probs = torch.empty((n + 1, t, k))
    tr_rank = torch.empty((n + 1, t, len(track_ids)), dtype=torch.long)
    tr_prob = torch.empty((n + 1, t, len(track_ids)))
    for s in reversed(range(n + 1)):        # last first: its top-1 is what we follow back
        logits = all_logits[s]                                                 # (T, V)
        probs = torch.softmax(logits, dim=-1)
        p, i = torch.topk(probs, k, dim=-1)                                    # (T, k)
        top_ids[s], top_probs[s] = i.cpu(), p.cpu()
        if s == n:
            final = i[:, :1]                                                   # (T, 1)
            final_rank = torch.empty((n + 1, t), dtype=torch.long)
            final_prob = torch.empty((n + 1, t))
        final_rank[s] = _rank(logits, final)[:, 0].cpu()
        final_prob[s] = probs.gather(-1, final)[:, 0].cpu()
        if len(track_ids):
            ids = track.expand(t, -1)                                          # (T, n_tracked)
            tr_rank[s] = _rank(logits, ids).cpu()
            tr_prob[s] = probs.gather(-1, ids).cpu()
    fn = make_label_fn(model, tokenizer, label_fn)
    cache: dict[int, str] = {}

    def lab(i: int) -> str:
        if i not in cache:
            cache[i] = fn(i)
        return cache[i]

    top_labels = tuple(tuple(tuple(lab(i) for i in cell) for cell in layer) for layer in top_ids.tolist())
    return LogitLens(
        layer_names=("embeddings",) + tuple(f"block {i}" for i in range(n)),
        token_ids=tuple(prep.token_ids), labels=prep.labels, top_ids=top_ids, top_probs=top_probs,
        top_labels=top_labels, final_rank=final_rank, final_prob=final_prob,
        tracked_ids=tuple(int(i) for i in track_ids),
        tracked_rank=tr_rank if len(track_ids) else None, tracked_prob=tr_prob if len(track_ids) else None,
        offset=prep.offset, note=prep.note)
