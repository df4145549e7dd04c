"""GPT-2 as in "Build a Large Language Model (From Scratch)", ch04 — same names.

Two additions to the book's code, neither of which changes its results:
- hook points (``hook_*``) that intermediate tensors pass through, so the
  inspection tools can read them without a second code path;
- an optional KV cache for incremental decoding, and a fast attention path
  (``scaled_dot_product_attention``) used whenever nobody asks for the
  attention weights.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPTConfig, as_config
from .hooks import HookPoint, name_hook_points
from .kv_cache import KVCache, LayerCache
from .positions import check_context, future_mask


class LayerNorm(nn.Module):
    """The book's LayerNorm: ``scale * (x - mean) / sqrt(var + eps) + shift``.

    Biased variance, eps 1e-5. Computed with the fused ``F.layer_norm``, which
    evaluates exactly this formula in one kernel instead of six.
    """

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """tanh approximation: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (fused op)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),
            GELU(),
            nn.Linear(4 * cfg.emb_dim, cfg.emb_dim),
        )
        self.hook_pre = HookPoint()   # (B, T, 4E) before GELU
        self.hook_post = HookPoint()  # (B, T, 4E) after GELU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.hook_pre(self.layers[0](x))      # (B, T, 4E)
        activated = self.hook_post(self.layers[1](hidden))
        return self.layers[2](activated)               # (B, T, E)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float,
                 num_heads: int, qkv_bias: bool = False) -> None:
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        # Force the explicit path (weights computed by hand) even without hooks.
        self.explicit = False
        self.hook_q = HookPoint()              # (B, H, T, D)
        self.hook_k = HookPoint()              # (B, H, Tk, D)
        self.hook_v = HookPoint()              # (B, H, Tk, D)
        self.hook_scores = HookPoint()         # (B, H, T, Tk)  q·k, before scaling and mask
        self.hook_masked_scores = HookPoint()  # (B, H, T, Tk)  future keys set to -inf
        self.hook_pattern = HookPoint()        # (B, H, T, Tk)  softmax weights, rows sum to 1
        self.hook_z = HookPoint()              # (B, T, E)      heads merged back

    def wants_weights(self) -> bool:
        return (self.explicit or self.hook_scores.has_hooks()
                or self.hook_masked_scores.has_hooks() or self.hook_pattern.has_hooks())

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        b, num_tokens, _ = x.shape                                   # (B, T, E)
        queries = self._heads(self.W_query(x))                       # (B, H, T, D)
        keys = self._heads(self.W_key(x))
        values = self._heads(self.W_value(x))
        queries = self.hook_q(queries)
        past = 0
        if cache is not None:
            past = cache.length
            keys, values = cache.append(keys, values)                # (B, H, past+T, D)
        keys = self.hook_k(keys)
        values = self.hook_v(values)

        if self.wants_weights():
            context = self._explicit(queries, keys, values, past)
        else:
            context = self._fast(queries, keys, values, past)        # (B, H, T, D)

        context = context.transpose(1, 2).reshape(b, num_tokens, self.d_out)  # (B, T, E)
        context = self.hook_z(context)
        return self.out_proj(context)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    _future_mask = staticmethod(future_mask)   # (T, Tk) True where query i would see a later key

    def _explicit(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int) -> torch.Tensor:
        attn_scores = self.hook_scores(q @ k.transpose(2, 3))        # (B, H, T, Tk)
        mask = self._future_mask(q.shape[2], k.shape[2], past, q.device)
        attn_scores = self.hook_masked_scores(attn_scores.masked_fill(mask, -torch.inf))
        attn_weights = torch.softmax(attn_scores / k.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.hook_pattern(attn_weights)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ v                                      # (B, H, T, D)

    def _fast(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int) -> torch.Tensor:
        p = self.dropout.p if self.training else 0.0
        n_query, n_key = q.shape[2], k.shape[2]
        if past == 0:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=n_query > 1)
        if n_query == 1:  # one new token sees every cached key
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        allowed = ~self._future_mask(n_query, n_key, past, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)


class TransformerBlock(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg.emb_dim, d_out=cfg.emb_dim, context_length=cfg.context_length,
            num_heads=cfg.n_heads, dropout=cfg.drop_rate, qkv_bias=cfg.qkv_bias,
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg.emb_dim)
        self.norm2 = LayerNorm(cfg.emb_dim)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)
        self.hook_resid_pre = HookPoint()   # (B, T, E) block input
        self.hook_norm1 = HookPoint()
        self.hook_attn_out = HookPoint()    # (B, T, E) out_proj output
        self.hook_resid_mid = HookPoint()   # (B, T, E) after the first shortcut add
        self.hook_norm2 = HookPoint()
        self.hook_ff_out = HookPoint()
        self.hook_resid_post = HookPoint()  # (B, T, E) block output

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        shortcut = x
        x = self.hook_norm1(self.norm1(x))
        x = self.hook_attn_out(self.att(x, cache))
        x = self.drop_shortcut(x)
        x = self.hook_resid_mid(x + shortcut)

        shortcut = x
        x = self.hook_norm2(self.norm2(x))
        x = self.hook_ff_out(self.ff(x))
        x = self.drop_shortcut(x)
        return self.hook_resid_post(x + shortcut)


class GPTModel(nn.Module):
    """``model(in_idx)`` -> logits ``(batch, seq, vocab)``, as in the book.

    ``cfg`` is a :class:`GPTConfig` or the book's plain dict.
    """

    def __init__(self, cfg: "GPTConfig | Mapping[str, Any]") -> None:
        super().__init__()
        cfg = as_config(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            # OpenAI GPT-2 reuses the token-embedding matrix as the output head.
            self.out_head.weight = self.tok_emb.weight
        self.hook_tok_emb = HookPoint()     # (B, T, E)
        self.hook_pos_emb = HookPoint()     # (T, E)
        self.hook_embed = HookPoint()       # (B, T, E) sum, after dropout
        self.hook_final_norm = HookPoint()  # (B, T, E)
        self.hook_logits = HookPoint()      # (B, T, V)
        name_hook_points(self)

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None, *, last_only: bool = False
                ) -> torch.Tensor:
        """Logits ``(B, T, V)``; with ``last_only``, those of the last position alone, ``(B, 1, V)``: the head
        over every position is the largest product of a small model, wasted when one position is read."""
        batch_size, seq_len = in_idx.shape                                # (B, T)
        start = cache.length if cache is not None else 0
        check_context(start + seq_len, self.cfg.context_length)
        tok_embeds = self.hook_tok_emb(self.tok_emb(in_idx))               # (B, T, E)
        positions = torch.arange(start, start + seq_len, device=in_idx.device)
        pos_embeds = self.hook_pos_emb(self.pos_emb(positions))           # (T, E)
        x = self.hook_embed(self.drop_emb(tok_embeds + pos_embeds))
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.advance(seq_len)
        if last_only:
            x = x[:, -1:]                                                 # (B, 1, E)
        x = self.hook_final_norm(self.final_norm(x))
        return self.hook_logits(self.out_head(x))                         # (B, T, V)

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """A preallocated KV cache on this model's device and dtype."""
        p = self.tok_emb.weight
        return KVCache(self.cfg.n_layers, batch_size, self.cfg.n_heads,
                       max_len or self.cfg.context_length, self.cfg.head_dim,
                       device=p.device, dtype=p.dtype)

    def num_parameters(self) -> int:
        """Parameters counted once each (a tied head is not counted twice)."""
        return sum(p.numel() for p in self.parameters())

    def set_explicit_attention(self, on: bool) -> None:
        for block in self.trf_blocks:
            block.att.explicit = on

    @property
    def device(self) -> torch.device:
        return self.tok_emb.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tok_emb.weight.dtype
