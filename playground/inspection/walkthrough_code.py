"""The book's source lines behind each walkthrough step, and their line numbers in the source files.

``_CODE`` names, per step id, the file, an anchor and the stripped text of the line(s) that
compute the step; ``CODE_LINES`` holds their 1-based line numbers, looked up once at import.
A line no longer in its file resolves to ``None`` (``missing_code_lines`` lists them; the UI
highlights nothing for it).
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

log = logging.getLogger(f"{__package__}.walkthrough")   # the tour's logger, as before the split

MODEL_SOURCE = "playground/model.py"
BOOK_LOOP_SOURCE = "playground/generation.py"   # generate_text_simple: the book's loop, verbatim

# step id -> (source, anchor, lines). Each line is the stripped text of one source line; it is
# looked up as the first line at or after the anchor (the anchor tells apart the two
# ``shortcut = x`` of a block, say). Probabilities and the greedy pick are not in the model:
# they come from the book's ``generate_text_simple``.
_CODE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "token_ids": (MODEL_SOURCE, "class GPTModel", (
        "batch_size, seq_len = in_idx.shape                                # (B, T)",)),
    "tok_emb": (MODEL_SOURCE, "class GPTModel", (
        "tok_embeds = self.hook_tok_emb(self.tok_emb(in_idx))               # (B, T, E)",)),
    "pos_emb": (MODEL_SOURCE, "class GPTModel", (
        "positions = torch.arange(start, start + seq_len, device=in_idx.device)",
        "pos_embeds = self.hook_pos_emb(self.pos_emb(positions))           # (T, E)")),
    "input_embeddings": (MODEL_SOURCE, "class GPTModel", (
        "x = self.hook_embed(self.drop_emb(tok_embeds + pos_embeds))",)),
    "norm1": (MODEL_SOURCE, "class TransformerBlock", (
        "x = self.hook_norm1(self.norm1(x))",)),
    "queries": (MODEL_SOURCE, "class MultiHeadAttention", (
        "queries = self._heads(self.W_query(x))                       # (B, H, T, D)",
        "queries = self.hook_q(queries)",
        "return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)")),
    "keys": (MODEL_SOURCE, "class MultiHeadAttention", (
        "keys = self._heads(self.W_key(x))",
        "keys = self.hook_k(keys)")),
    "values": (MODEL_SOURCE, "class MultiHeadAttention", (
        "values = self._heads(self.W_value(x))",
        "values = self.hook_v(values)")),
    "attn_scores": (MODEL_SOURCE, "class MultiHeadAttention", (
        "attn_scores = self.hook_scores(q @ k.transpose(2, 3))        # (B, H, T, Tk)",)),
    "masked_scores": (MODEL_SOURCE, "class MultiHeadAttention", (
        "mask = self._future_mask(q.shape[2], k.shape[2], past, q.device)",
        "attn_scores = self.hook_masked_scores(attn_scores.masked_fill(mask, -torch.inf))")),
    "attn_weights": (MODEL_SOURCE, "class MultiHeadAttention", (
        "attn_weights = torch.softmax(attn_scores / k.shape[-1] ** 0.5, dim=-1)",
        "attn_weights = self.hook_pattern(attn_weights)")),
    "context_vec": (MODEL_SOURCE, "class MultiHeadAttention", (
        "return attn_weights @ v                                      # (B, H, T, D)",
        "context = context.transpose(1, 2).reshape(b, num_tokens, self.d_out)  # (B, T, E)",
        "context = self.hook_z(context)")),
    "out_proj": (MODEL_SOURCE, "class MultiHeadAttention", (
        "return self.out_proj(context)",
        "x = self.hook_attn_out(self.att(x, cache))")),
    "shortcut_1": (MODEL_SOURCE, "class TransformerBlock", (
        "shortcut = x",
        "x = self.drop_shortcut(x)",
        "x = self.hook_resid_mid(x + shortcut)")),
    "norm2": (MODEL_SOURCE, "class TransformerBlock", (
        "x = self.hook_norm2(self.norm2(x))",)),
    "ff_expand": (MODEL_SOURCE, "class FeedForward", (
        "nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),",
        "hidden = self.hook_pre(self.layers[0](x))      # (B, T, 4E)")),
    "gelu": (MODEL_SOURCE, "class GELU", (
        'return F.gelu(x, approximate="tanh")',
        "activated = self.hook_post(self.layers[1](hidden))")),
    "ff_contract": (MODEL_SOURCE, "class FeedForward", (
        "return self.layers[2](activated)               # (B, T, E)",
        "x = self.hook_ff_out(self.ff(x))")),
    "shortcut_2": (MODEL_SOURCE, "x = self.hook_resid_mid(x + shortcut)", (
        "shortcut = x",
        "x = self.drop_shortcut(x)",
        "return self.hook_resid_post(x + shortcut)")),
    "other_blocks": (MODEL_SOURCE, "class GPTModel", (
        "for i, block in enumerate(self.trf_blocks):",
        "x = block(x, cache.layers[i] if cache is not None else None)")),
    "final_norm": (MODEL_SOURCE, "class GPTModel", (
        "x = self.hook_final_norm(self.final_norm(x))",)),
    "logits": (MODEL_SOURCE, "class GPTModel", (
        "return self.hook_logits(self.out_head(x))                         # (B, T, V)",)),
    "probas": (BOOK_LOOP_SOURCE, "def generate_text_simple", (
        "probas = torch.softmax(logits, dim=-1)",)),
    "next_token": (BOOK_LOOP_SOURCE, "def generate_text_simple", (
        "idx_next = torch.argmax(probas, dim=-1, keepdim=True)",
        "idx = torch.cat((idx, idx_next), dim=1)")),
}

_PACKAGE = Path(__file__).resolve().parents[1]   # playground/
SOURCE_FILES = {src: _PACKAGE / Path(src).name for src in (MODEL_SOURCE, BOOK_LOOP_SOURCE)}


def _find_lines(text: str, anchor: str, lines: Sequence[str]) -> list[int | None]:
    """1-based line numbers of ``lines`` (stripped text), each the first at or after ``anchor``."""
    rows = [r.strip() for r in text.splitlines()]
    start = next((i for i, r in enumerate(rows) if r.startswith(anchor)), 0)
    found: list[int | None] = []
    for line in lines:
        found.append(next((i + 1 for i in range(start, len(rows)) if rows[i] == line), None))
    return found


@lru_cache(maxsize=None)
def source_text(src: str) -> str:
    """The text of one of ``SOURCE_FILES``, read once: the line numbers are resolved against it."""
    return SOURCE_FILES[src].read_text(encoding="utf-8")


def _resolve_code() -> dict[str, tuple[int | None, ...]]:
    texts = {src: source_text(src) for src in SOURCE_FILES}
    out = {sid: tuple(_find_lines(texts[src], anchor, lines)) for sid, (src, anchor, lines) in _CODE.items()}
    missing = missing_code_lines(out)
    if missing:   # the model's source changed under the tour: the UI highlights nothing for these
        log.warning("walkthrough: code lines not found in the source: %s", missing)
    return out


def missing_code_lines(resolved: "dict[str, tuple[int | None, ...]] | None" = None) -> list[tuple[str, str]]:
    """``(step id, line)`` for every code line that is not (any more) in its source file."""
    resolved = CODE_LINES if resolved is None else resolved
    return [(sid, line) for sid, (_, _, lines) in _CODE.items()
            for line, n in zip(lines, resolved[sid]) if n is None]


CODE_LINES: dict[str, tuple[int | None, ...]] = _resolve_code()   # searched once, at import


def code_line_numbers(step: "str | _HasId") -> list[int]:
    """Line numbers (1-based) in the step's source file of its ``code`` lines (missing ones left out)."""
    sid = step if isinstance(step, str) else step.id
    return [n for n in CODE_LINES[sid] if n is not None]


class _HasId(Protocol):   # a WalkStep, without importing it (walkthrough imports this module)
    @property
    def id(self) -> str: ...
