"""Fast inference for :class:`GPTModel`: the same maths, weights prepared once, no hooks.

The book's model stays the readable reference (and the only path hooks see).
Generation runs here when nobody is watching: :func:`fast_path_allowed` says
when. What changes is only how the numbers are laid out and called:

- the three attention projections ``W_query``/``W_key``/``W_value`` are
  concatenated into one ``(3E, E)`` matrix, so each layer reads its input once;
- on the CPU every matrix is prepacked once into oneDNN's blocked layout (in
  bf16, converted first: plain bf16 ``F.linear`` repacks on every call and is no
  faster than fp32), and GELU and the residual additions are fused into the
  matrix products that precede them;
- ``int8`` stores each weight row as int8 with one bf16 scale per output
  (weight-only quantisation: activations stay bf16) — half the bytes of bf16;
- one preallocated cache holds the keys and values of every layer, and the
  vocabulary head is applied to the last position only;
- a product holds at most :attr:`FastWeights.exact_rows` rows, the most for which
  every row was measured to come out bit for bit as it does alone
  (:mod:`playground.row_invariance`), so a row's numbers do not depend on how many
  others share its pass (the continuous batcher's promise; bf16 and int8 here).
  fp32 keeps its faster one-row layout where one was chosen: a row decoded alone
  and in a batch then differ in the last bits of float32.

Decoding one token is memory-bound: every weight is read once per step, so
bytes per weight set the speed limit (fp32 4, bf16 2, int8 1).

The prepared weights are derived from the model's parameters and cached per
model; they are rebuilt when a parameter is replaced or changed in place
(its storage or version counter moves). Edits made through ``p.data`` bypass
the version counter: call :func:`invalidate` after those. At most two
precisions are kept per model, the default (fp32) and the last other one
asked for, so memory stays at about the model plus two prepared copies.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import background
from .kv_cache import FusedKVCache
from .model import GPTModel
from .packed_linear import DEFAULT_PRECISION, PRECISIONS, PackedLinear
from .positions import check_context, future_mask
from .row_invariance import in_chunks, rows_exact

MIN_EXACT_ROWS = 8     # products split into pieces of fewer rows than this would cost batching its point
Edit = "Callable[[int, torch.Tensor], torch.Tensor] | None"    # (block, activation) -> activation


@dataclass
class FastLayer:
    ln1: tuple[torch.Tensor, torch.Tensor]
    qkv: PackedLinear          # (3E, E): W_query, W_key, W_value stacked
    out: PackedLinear
    ln2: tuple[torch.Tensor, torch.Tensor]
    fc: PackedLinear           # (4E, E), GELU fused
    proj: PackedLinear         # (E, 4E)


def _fingerprint(model: GPTModel) -> tuple:
    """Changes when any parameter is replaced, moved, cast or edited in place."""
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in model.parameters())


class FastWeights:
    """The model's weights laid out for fast inference in one precision."""

    def __init__(self, model: GPTModel, precision: str, backend: str | None = None) -> None:
        """``backend`` "dense" forces plain ``F.linear`` for fp32/bf16 (for comparisons)."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        cfg = model.cfg
        self.cfg = cfg
        self.precision = precision
        self.device = model.device
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError("int8 weights are implemented for the CPU only")
        self.dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        self.cache_dtype = torch.float32 if self.device.type == "cpu" else self.dtype
        self.fingerprint = _fingerprint(model)
        self.eps = model.final_norm.eps
        # Embeddings: one row is read per token, so they stay the model's own tensors.
        self.tok_emb = model.tok_emb.weight.detach()
        self.pos_emb = model.pos_emb.weight.detach()
        self.layers: list[FastLayer] = []
        per_weight = 4 if precision == "fp32" else 2
        ws = per_weight * sum(m.weight.numel() for b in model.trf_blocks
                              for m in (b.att.W_query, b.att.W_key, b.att.W_value, b.att.out_proj,
                                        b.ff.layers[0], b.ff.layers[2])) + per_weight * model.out_head.weight.numel()
        for block in model.trf_blocks:
            att, ff = block.att, block.ff
            qkv_w = torch.cat([att.W_query.weight, att.W_key.weight, att.W_value.weight])  # (3E, E)
            qkv_b = (torch.cat([att.W_query.bias, att.W_key.bias, att.W_value.bias])
                     if att.W_query.bias is not None else None)
            self.layers.append(FastLayer(
                ln1=self._norm(block.norm1),
                qkv=PackedLinear(qkv_w, qkv_b, precision, backend, ws),
                out=PackedLinear(att.out_proj.weight, att.out_proj.bias, precision, backend, ws),
                ln2=self._norm(block.norm2),
                fc=PackedLinear(ff.layers[0].weight, ff.layers[0].bias, precision, backend, ws),
                proj=PackedLinear(ff.layers[2].weight, ff.layers[2].bias, precision, backend, ws),
            ))
        self.ln_f = self._norm(model.final_norm)
        self.head = PackedLinear(model.out_head.weight, model.out_head.bias, precision, backend, ws)
        exact = self._measure_exact_rows()
        # Products are split only where that keeps batching worth it; below, rows may differ in the last bits.
        self.exact_rows: int | None = exact if exact >= MIN_EXACT_ROWS else None
        # Every row of a batch bit for bit as alone: products of any size exact, and one layout for one row
        # and for several (fp32's faster one-row layout, where kept, differs from the other in the last bits).
        self.batch_exact = self.exact_rows is not None and all(m.many is None for m in self.matrices())

    def _measure_exact_rows(self) -> int:
        """The most rows a product of several rows may hold with each row bit for bit what it is in a
        product of one in the same layout (:mod:`playground.row_invariance`): products are split into
        pieces that size, so a row's numbers never depend on how many others share its product (the
        continuous batcher's promise). Measured once per matrix kind, the ops as used."""
        e, v = self.cfg.emb_dim, self.cfg.vocab_size
        kinds = [(self.head, "__call__", e, v)]
        if self.layers:
            first = self.layers[0]
            kinds += [(first.qkv, "__call__", e, 3 * e), (first.out, "add", e, e), (first.fc, "gelu", e, 4 * e),
                      (first.proj, "add", 4 * e, e)]
        found = []
        with torch.inference_mode():
            for matrix, op, n_in, n_out in kinds:
                fn = getattr(matrix.for_rows(2), op)
                found.append(rows_exact(lambda x, r, fn=fn: fn(x) if r is None else fn(x, r), n_in, n_out,
                                        self.dtype, self.device, with_residual=op == "add"))
        return min(found)

    def _norm(self, norm) -> tuple[torch.Tensor, torch.Tensor]:
        return norm.scale.detach().to(self.dtype), norm.shift.detach().to(self.dtype)

    def matrices(self) -> list[PackedLinear]:
        return [m for l in self.layers for m in (l.qkv, l.out, l.fc, l.proj)] + [self.head]

    def kernels(self) -> dict[str, str]:
        """The layout each kind of matrix runs in (``{"qkv": "onednn", ..., "head": "dense_t"}``)."""
        first = self.layers[0] if self.layers else None
        named = {"qkv": first.qkv, "out_proj": first.out, "ff_expand": first.fc, "ff_contract": first.proj}
        return {**({k: m.layout() for k, m in named.items()} if first else {}), "head": self.head.layout()}

    def bytes_per_token(self) -> int:
        """Weight bytes read to decode one token (every matrix once; two embedding rows ignored)."""
        return sum(m.nbytes() for m in self.matrices())

    def held_bytes(self) -> int:
        """Bytes of prepared matrices held (a second layout for several rows counted where kept)."""
        return sum(m.held_bytes() for m in self.matrices())

    def new_cache(self, batch_size: int, max_len: int) -> FusedKVCache:
        """On the CPU a float32 cache in every precision: one-query attention in bf16 is
        several times slower than in float32 there, and the cache is small beside the weights."""
        cfg = self.cfg
        return FusedKVCache(cfg.n_layers, batch_size, cfg.n_heads, max_len, cfg.head_dim,
                            device=self.device, dtype=self.cache_dtype)

    # ---------------------------------------------------------------- forward

    def _product(self, matrix: PackedLinear, op: str, x: torch.Tensor, *residual: torch.Tensor) -> torch.Tensor:
        """``matrix``'s ``op`` ("__call__", "gelu" or "add") on the rows of ``x`` ``(N, in)``: in the layout
        for N rows, at most :attr:`exact_rows` rows at a time (where that bound was found)."""
        return in_chunks(getattr(matrix.for_rows(x.shape[0]), op), self.exact_rows, x, *residual)

    def blocks(self, x: torch.Tensor, attend: "Callable[[int, torch.Tensor], torch.Tensor]", ff_edit: Edit = None
               ) -> torch.Tensor:
        """The transformer blocks on ``x`` ``(N, E)``: the residual stream after the last one, ``(N, E)``.

        ``attend(i, qkv)`` is block ``i``'s attention: the ``(N, 3E)`` projections in, the context
        vectors ``(N, E)`` out (storing keys and values in the cache as it goes); the two forwards
        below differ only there (inspection passes its own: :mod:`.inspection.fast_patterns`).
        ``ff_edit(i, out)`` may change block ``i``'s MLP output ``(N, E)`` before it is added (ablation).
        """
        e = self.cfg.emb_dim
        for i, layer in enumerate(self.layers):
            y = F.layer_norm(x, (e,), layer.ln1[0], layer.ln1[1], self.eps)
            x = self._product(layer.out, "add", attend(i, self._product(layer.qkv, "__call__", y)), x)  # shortcut fused
            y = F.layer_norm(x, (e,), layer.ln2[0], layer.ln2[1], self.eps)
            if ff_edit is None:
                x = self._product(layer.proj, "add", self._product(layer.fc, "gelu", y), x)
            else:                                   # the residual add unfused, after the edit
                x = x + ff_edit(i, self._product(layer.proj, "__call__", self._product(layer.fc, "gelu", y)))
        return x

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm and vocabulary head on the positions kept, ``(B, E)`` -> float32 ``(B, V)``."""
        x = F.layer_norm(x, (self.cfg.emb_dim,), self.ln_f[0], self.ln_f[1], self.eps)
        return self._product(self.head, "__call__", x).float()

    def _check_room(self, cache: FusedKVCache, end: int) -> None:
        """Positions up to ``end`` fit the context window and ``cache``."""
        check_context(end, self.cfg.context_length)
        if end > cache.max_len:
            raise ValueError(f"KV cache full: {end} > {cache.max_len} positions")

    @staticmethod
    def _chunk_mask(t: int, start: int, device: torch.device) -> torch.Tensor | None:
        """For ``t > 1`` new positions after ``start`` cached ones: ``(T, start + T)``, True where query
        i (position start+i) may see the key; None where no mask is needed."""
        return ~future_mask(t, start + t, start, device) if start > 0 and t > 1 else None

    def _split_heads(self, qkv: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """``(B*T, 3E)`` projections -> ``(B, T, 3, H, D)``."""
        return qkv.view(b, t, 3, self.cfg.n_heads, self.cfg.head_dim)

    def _attend(self, kv: torch.Tensor, qkv: torch.Tensor, start: int, mask: torch.Tensor | None) -> torch.Tensor:
        """Attention of the ``T`` new positions ``qkv`` ``(B, T, 3, H, D)`` that follow ``start`` cached ones
        in the layer cache ``kv`` ``(B, 2, H, L, D)``: stores their keys and values there, then attends
        over the fresh keys (causal) on an empty cache or over the cache otherwise. ``(B, H, T, D)``."""
        end = start + qkv.shape[1]
        kv[:, :, :, start:end].copy_(qkv[:, :, 1:].permute(0, 2, 3, 1, 4))  # (B, 2, H, T, D)
        q = qkv[:, :, 0].transpose(1, 2)                                    # (B, H, T, D)
        if start == 0:  # nothing cached before: attend over the fresh keys as computed
            k, v = qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
            return F.scaled_dot_product_attention(q, k, v, is_causal=end > 1)
        return F.scaled_dot_product_attention(q.to(kv.dtype), kv[:, 0, :, :end], kv[:, 1, :, :end],
                                              attn_mask=mask).to(self.dtype)

    @torch.inference_mode()
    def forward(self, idx: torch.Tensor, cache: FusedKVCache, z_edit: Edit = None, ff_edit: Edit = None
                ) -> torch.Tensor:
        """Logits ``(B, V)`` (float32) of the last position of ``idx`` ``(B, T)``.

        Appends the keys and values of ``idx`` to ``cache``; positions continue
        from ``cache.length``. Prefill and one-token decode are the same code. ``z_edit(i, z)`` may change
        block ``i``'s merged context vectors ``(B*T, E)`` before ``out_proj``, ``ff_edit`` its MLP output.
        """
        b, t = idx.shape
        start = cache.length
        end = start + t
        self._check_room(cache, end)
        e = self.cfg.emb_dim
        x = F.embedding(idx, self.tok_emb) + self.pos_emb[start:end]             # (B, T, E)
        x = x.to(self.dtype).reshape(b * t, e)                                  # (B*T, E)
        mask = self._chunk_mask(t, start, idx.device)

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            ctx = self._attend(cache.kv[i], self._split_heads(qkv, b, t), start, mask)   # (B, H, T, D)
            ctx = ctx.transpose(1, 2).reshape(b * t, e)                         # (B*T, E)
            return ctx if z_edit is None else z_edit(i, ctx)
        x = self.blocks(x, attend, ff_edit)
        cache.advance(t)
        return self._logits(x.view(b, t, e)[:, -1])                             # head on the last position only

    @torch.inference_mode()
    def forward_segments(self, segments: "list[tuple[torch.Tensor, FusedKVCache]]") -> torch.Tensor:
        """Logits ``(S, V)`` of the last position of each segment: ``segments[i] = (ids, cache)``,
        ``ids`` ``(T_i,)`` continuing the sequence held in ``cache`` (a batch-of-one cache, each at
        its own length). A segment is one new token of a running row or a whole prompt.

        The matrix products run once for all the segments' positions together (one read of every
        weight); attention runs per segment over that segment's own keys, exactly as
        :meth:`forward` does for a batch of one: fresh keys (causal) on an empty cache, the cache
        otherwise. No segment ever sees another's keys or any padding. The caches advance only
        when the whole pass succeeded, so a failed pass can be run again. The continuous
        batcher's step (:mod:`playground.batching`): decoding rows and joining prompts at once.
        """
        e = self.cfg.emb_dim
        lengths = [int(ids.shape[0]) for ids, _ in segments]
        starts = [c.length for _, c in segments]
        for (ids, c), t, start in zip(segments, lengths, starts):
            if ids.ndim != 1 or t == 0:
                raise ValueError("each segment is a non-empty 1-D tensor of ids")
            self._check_room(c, start + t)
        device = segments[0][0].device
        ids = torch.cat([s for s, _ in segments])                                   # (N,)
        positions = torch.cat([torch.arange(st, st + t, device=device) for st, t in zip(starts, lengths)])
        n = ids.shape[0]
        x = (F.embedding(ids, self.tok_emb) + self.pos_emb[positions]).to(self.dtype)  # (N, E)
        offsets = [0]
        for t in lengths:
            offsets.append(offsets[-1] + t)
        masks = [self._chunk_mask(t, st, device) for t, st in zip(lengths, starts)]

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            ctx = torch.empty(n, e, dtype=self.dtype, device=device)               # (N, E)
            for (_, c), t, start, o, mask in zip(segments, lengths, starts, offsets, masks):
                out = self._attend(c.kv[i], self._split_heads(qkv[o:o + t], 1, t), start, mask)  # (1, H, T, D)
                ctx[o:o + t] = out[0].transpose(0, 1).reshape(t, e)                 # (T, E)
            return ctx
        x = self.blocks(x, attend)
        for (_, c), t in zip(segments, lengths):
            c.advance(t)
        last = torch.tensor([o - 1 for o in offsets[1:]], device=device)
        return self._logits(x[last])                                               # (S, V) head on the last positions only


# ------------------------------------------------------------------ per-model cache

_prepared: "weakref.WeakKeyDictionary[GPTModel, dict[str, FastWeights]]" = weakref.WeakKeyDictionary()
_building: dict[tuple[int, str], threading.Event] = {}
_lock = threading.Lock()


def fast_weights(model: GPTModel, precision: str = DEFAULT_PRECISION) -> FastWeights:
    """The prepared weights of ``model`` in ``precision``, built on first use and
    rebuilt whenever the model's parameters changed since.

    Built outside the lock, so preparing one model or precision never holds up a
    request for another; a request for weights being built waits for that build.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    key = (id(model), precision)
    while True:
        now = _fingerprint(model)
        with _lock:
            fw = _prepared.get(model, {}).get(precision)
            if fw is not None and fw.fingerprint == now:
                return fw
            pending = _building.get(key)
            if pending is None:
                pending = _building[key] = threading.Event()
                break
        pending.wait()  # someone else is building it: use theirs if still current
    try:
        fw = FastWeights(model, precision)
        with _lock:
            per_model = _prepared.setdefault(model, {})
            for p, old in list(per_model.items()):
                if old.fingerprint != fw.fingerprint:  # parameters changed: every precision is stale
                    del per_model[p]
                elif p not in (DEFAULT_PRECISION, precision):
                    del per_model[p]   # memory: the default and one other precision at most
            per_model[precision] = fw
        return fw
    finally:
        with _lock:
            del _building[key]
        pending.set()


def prepare_in_background(model: GPTModel, precisions: "tuple[str, ...]" = (DEFAULT_PRECISION,)) -> threading.Thread:
    """Prepare ``precisions`` for ``model`` in a daemon thread (call right after loading),
    so the first request finds them ready instead of paying the conversion."""
    def work() -> None:
        for p in precisions:
            fast_weights(model, p)
    return background.start(work, "prepare-fast-weights")


def ready_fast_weights(model: GPTModel, precision: str = DEFAULT_PRECISION) -> FastWeights | None:
    """The prepared weights of ``model`` in ``precision`` if they are ready, current and give what the model's
    own forward gives (:func:`fast_path_allowed`, the model in that dtype); builds nothing."""
    with _lock:
        fw = _prepared.get(model, {}).get(precision)
    ok = fw is not None and fw.dtype == model.dtype and fw.fingerprint == _fingerprint(model)
    return fw if ok and fast_path_allowed(model) else None


def prepared_kernels(model: GPTModel) -> dict[str, dict[str, str]]:
    """``{precision: FastWeights.kernels()}`` for the precisions prepared so far (builds nothing)."""
    with _lock:
        return {p: fw.kernels() for p, fw in _prepared.get(model, {}).items()}


def invalidate(model: GPTModel) -> None:
    """Forget the prepared weights of ``model`` (after edits the version counter misses)."""
    with _lock:
        _prepared.pop(model, None)


def fast_path_allowed(model: GPTModel) -> bool:
    """True when the fast path gives what the model's own forward would: eval mode
    (no dropout), no hooks on any module, no forced explicit attention."""
    if model.training:
        return False
    from torch.nn.modules import module as nn_module
    if nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks:
        return False
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
        if getattr(m, "explicit", False):
            return False
    return True


def precision_for(model: GPTModel, precision: str | None) -> str | None:
    """The fast precision to use, or None for the model's own forward.

    ``precision=None`` means "as the model is": fp32 for a float32 model,
    bf16 for a bfloat16 one, the model's own forward for anything else.
    """
    if precision is None:
        precision = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(model.dtype)
        if precision is None:
            return None
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision if fast_path_allowed(model) else None


__all__ = ["PRECISIONS", "DEFAULT_PRECISION", "PackedLinear", "FastWeights", "fast_weights", "prepare_in_background",
           "prepared_kernels", "ready_fast_weights", "invalidate", "fast_path_allowed", "precision_for"]
