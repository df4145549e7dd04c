"""Embeddings seen through PCA: token embeddings, positional embeddings, and the residual stream.

PCA is exact: the SVD of the centred matrix, ``Xc = U S V^T``; the coordinates are ``U S``
(= ``Xc V``), the explained-variance ratio of component c is ``S_c^2 / sum S^2``. The first 3
components are returned; a 2-D figure uses the first two.

- tokens: the prompt's tokens, word lists (``assets/word_lists.json``, or the caller's), the
  nearest neighbours (cosine over the whole vocabulary) of one token. A word is looked up
  with a leading space (``" March"``) and must be *one* token: a word that is not is refused
  (``ValueError`` naming each such word and how it splits; :func:`check_words` tells the UI
  beforehand), never silently dropped or replaced by its first piece.
- positions: ``pos_emb`` rows 0..P-1, to colour by position.
- residual: each prompt token's vector after the embeddings and after every block, one PCA
  fitted on all of them together; per token, a line across the layers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps, rows_to_csv
from .inputs import (LabelFn, StopForward, TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare,
                     this_thread_only)
from .saliency import resolve_target

WORD_LISTS_PATH = Path(__file__).resolve().parent.parent / "assets" / "word_lists.json"
N_COMPONENTS = 3


def default_word_lists() -> dict[str, list[str]]:
    """The shipped lists (a fresh copy the caller may edit)."""
    data = json.loads(WORD_LISTS_PATH.read_text(encoding="utf-8"))
    return {k: list(v) for k, v in data.items() if not k.startswith("_")}


@dataclass(frozen=True)
class PCAFit:
    coords: torch.Tensor             # (N, k)
    components: torch.Tensor         # (k, E) unit rows
    explained: torch.Tensor          # (k,) explained-variance ratio
    mean: torch.Tensor               # (E,)


def pca(x: torch.Tensor, k: int = N_COMPONENTS) -> PCAFit:
    """Exact PCA of ``x`` ``(N, E)`` by SVD of the centred matrix (float64)."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 points, got {x.shape[0] if x.ndim == 2 else 'a non-matrix'}")
    x = x.detach().double().cpu()
    mean = x.mean(0)                                                          # (E,)
    u, s, vh = torch.linalg.svd(x - mean, full_matrices=False)                # (N, r), (r,), (r, E)
    k = min(k, s.numel())
    total = (s ** 2).sum()
    explained = (s[:k] ** 2) / total if total > 0 else torch.zeros(k, dtype=s.dtype)
    return PCAFit((u[:, :k] * s[:k]).float(), vh[:k].float(), explained.float(), mean.float())


@dataclass(frozen=True)
class PointsPCA:
    """Points in PCA space: token embeddings (``kind="tokens"``) or positions (``kind="positions"``)."""

    kind: str
    coords: torch.Tensor             # (N, k)
    explained: tuple[float, ...]     # (k,)
    ids: tuple[int, ...]             # token ids, or positions
    labels: tuple[str, ...]
    groups: tuple[str, ...]          # "prompt", a word list's name, "neighbours", "positions"
    neighbours: tuple[dict, ...] = ()   # [{token_id, token, cosine}], most similar first
    note: str = ""

    def rows(self) -> list[dict]:
        return [{"id": i, "label": lab, "group": g, **{f"pc{c + 1}": float(v) for c, v in enumerate(xyz)}}
                for i, lab, g, xyz in zip(self.ids, self.labels, self.groups, self.coords)]

    def to_json(self) -> str:
        return dumps({"kind": self.kind, "explained": self.explained, "points": self.rows(),
                      "neighbours": self.neighbours, "note": self.note})

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


def check_words(tokenizer: TokenizerLike, words: Sequence[str]) -> tuple[list[int], list[str]]:
    """``(ids, unknown)``: each word (with its leading space) that is one token, and the words that are not."""
    ids, unknown = [], []
    for w in words:
        enc = tokenizer.encode(" " + w.strip()) if w.strip() else []
        if len(enc) == 1:
            ids.append(int(enc[0]))
        else:
            unknown.append(w)
    return ids, unknown


def _word_points(tokenizer: TokenizerLike | None, word_lists: Mapping[str, Sequence[str]]) -> list[tuple[int, str]]:
    if word_lists and tokenizer is None:
        raise ValueError("word lists need a tokenizer")
    points, problems = [], []
    for name, words in word_lists.items():
        ids, unknown = check_words(tokenizer, words)
        if unknown:
            shown = ", ".join(f'"{w}" ({len(tokenizer.encode(" " + w.strip()))} tokens)' for w in unknown)
            problems.append(f"{name}: {shown}")
        points += [(i, name) for i in ids]
    if problems:
        raise ValueError("these words are not one token each (with a leading space) and have no single "
                         "embedding; remove or respell them — " + "; ".join(problems))
    return points


def nearest_neighbours(model: GPTModel, token_id: int, n: int = 20) -> list[tuple[int, float]]:
    """The ``n`` tokens with the highest cosine to ``token_id``'s embedding (itself excluded)."""
    with torch.no_grad():
        w = model.tok_emb.weight.float()                                      # (V, E)
        unit = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cos = unit @ unit[token_id]                                           # (V,)
        cos[token_id] = -torch.inf
        top = torch.topk(cos, min(n, cos.numel() - 1))
    return [(int(i), float(c)) for i, c in zip(top.indices, top.values)]


def token_embedding_pca(model: GPTModel, *, prompt: TokenInput | None = None,
                        word_lists: Mapping[str, Sequence[str]] | None = None,
                        neighbours_of: "int | str | None" = None, n_neighbours: int = 20,
                        tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None) -> PointsPCA:
    """PCA of the token embeddings of the prompt's tokens, the word lists' words and a token's neighbours.

    Each token appears once (in the first group that names it); the fit uses exactly the points shown.
    """
    label = make_label_fn(model, tokenizer, label_fn)
    points: list[tuple[int, str]] = []
    if prompt is not None:
        points += [(i, "prompt") for i in prepare(model, prompt, tokenizer=tokenizer, label_fn=label_fn).token_ids]
    points += _word_points(tokenizer, word_lists or {})
    table: list[dict] = []
    if neighbours_of is not None:
        centre = resolve_target(model, neighbours_of, tokenizer)
        near = nearest_neighbours(model, centre, n_neighbours)
        table = [{"token_id": i, "token": label(i), "cosine": c} for i, c in near]
        points += [(centre, "neighbours")] + [(i, "neighbours") for i, _ in near]
    seen: dict[int, str] = {}
    for i, g in points:
        seen.setdefault(i, g)
    if len(seen) < 2:
        raise ValueError("give at least two distinct tokens (a prompt, a word list or a token's neighbours)")
    ids = list(seen)
    fit = pca(model.tok_emb.weight[ids])
    return PointsPCA("tokens", fit.coords, tuple(fit.explained.tolist()), tuple(ids),
                     tuple(label(i) for i in ids), tuple(seen.values()), tuple(table))


def positional_pca(model: GPTModel, n_positions: int | None = None) -> PointsPCA:
    """PCA of ``pos_emb`` rows ``0..n_positions-1`` (default: the whole context)."""
    n = int(n_positions or model.cfg.context_length)
    if not 2 <= n <= model.cfg.context_length:
        raise ValueError(f"n_positions must be in 2..{model.cfg.context_length}, got {n_positions}")
    fit = pca(model.pos_emb.weight[:n])
    return PointsPCA("positions", fit.coords, tuple(fit.explained.tolist()), tuple(range(n)),
                     tuple(str(p) for p in range(n)), ("positions",) * n)


@dataclass(frozen=True)
class ResidualPCA:
    """Each token's residual-stream vector at every stage, in one PCA: ``coords[s, t]``."""

    coords: torch.Tensor             # (S, T, k), S = n_layers + 1 stages
    explained: tuple[float, ...]
    stages: tuple[str, ...]          # "embed", "block 0", ...
    labels: tuple[str, ...]
    token_ids: tuple[int, ...]
    offset: int = 0
    note: str = ""

    def line(self, position: int) -> torch.Tensor:
        """``(S, k)`` one token's path across the stages."""
        return self.coords[:, position]

    def rows(self) -> list[dict]:
        return [{"stage": s, "position": t, "token": self.labels[t],
                 **{f"pc{c + 1}": float(v) for c, v in enumerate(self.coords[si, t])}}
                for si, s in enumerate(self.stages) for t in range(len(self.labels))]

    def to_json(self) -> str:
        return dumps({"explained": self.explained, "stages": self.stages, "labels": self.labels,
                      "token_ids": self.token_ids, "coords": self.coords, "offset": self.offset, "note": self.note})

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


@torch.inference_mode()
def residual_pca(model: GPTModel, tokens: TokenInput, *, tokenizer: TokenizerLike | None = None,
                 label_fn: LabelFn | None = None) -> ResidualPCA:
    """One forward pass; the stream after the embeddings and after each block, fitted together."""
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    L = model.cfg.n_layers
    names = ["hook_embed"] + [f"trf_blocks.{l}.hook_resid_post" for l in range(L)]
    store: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, name: str) -> None:                             # x: (1, T, E)
        store[name] = x[0].detach()
        if name == names[-1]:
            raise StopForward                                                 # no final norm, no head
    with eval_mode(model), hooks(model, {n: this_thread_only(keep) for n in names}):
        try:
            model(prep.ids)
        except StopForward:
            pass
    stream = torch.stack([store[n] for n in names])                        # (S, T, E)
    S, T, E = stream.shape
    fit = pca(stream.reshape(S * T, E))
    return ResidualPCA(fit.coords.reshape(S, T, -1), tuple(fit.explained.tolist()),
                       ("embed",) + tuple(f"block {l}" for l in range(L)), prep.labels,
                       tuple(prep.token_ids), prep.offset, prep.note)
