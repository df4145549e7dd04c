"""One weight matrix laid out for one precision: the fast decoder's building block.

:class:`PackedLinear` computes ``x @ W.T + b`` (and the same with GELU or a residual add fused)
from a matrix prepared once in one of :data:`kernel_choice.LAYOUTS` or as int8. Which layouts this
machine can run at all is one predicate, :func:`layout_unavailable`: the engine's trial asks it
before timing, and so do the tests that force a layout, so neither assumes a CPU feature.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from . import kernel_choice

PRECISIONS: dict[str, str] = {
    "fp32": "float32, same numbers as the book's model (the reference)",
    "bf16": "bfloat16 weights and activations: about twice as fast, greedy text may differ slightly",
    "int8": "int8 weights (one scale per output), bf16 activations: fastest, least exact",
}
DEFAULT_PRECISION = "fp32"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

_ONEDNN = torch.ops.mkldnn


def layout_unavailable(layout: str, dtype: torch.dtype, device: "torch.device | str" = "cpu") -> str | None:
    """Why ``layout`` cannot hold a ``dtype`` matrix on ``device`` here, or None when it can.

    Only oneDNN's packed layouts depend on the machine: they need oneDNN in this torch build, and
    its bf16 path needs AVX-512 (BW/VL/DQ) or AVX-NE-CONVERT, which some CPUs lack (AMD EPYC before
    Zen 4, or any CPU under ``ONEDNN_MAX_CPU_ISA=AVX2``). Probed once per dtype, by packing a matrix.
    """
    if not layout.startswith("onednn"):
        return None
    if torch.device(device).type != "cpu":
        return "oneDNN's packed layouts are for the CPU"
    if not torch.backends.mkldnn.is_available():
        return "this build of torch has no oneDNN"
    return _onednn_refusal(dtype)


@functools.lru_cache(maxsize=None)
def _onednn_refusal(dtype: torch.dtype) -> str | None:
    try:
        _ONEDNN._reorder_linear_weight(torch.zeros(8, 8, dtype=dtype), 1)
        return None
    except RuntimeError as err:   # e.g. "bf16 path needs the cpu support avx_ne_convert or avx512bw, ..."
        return f"oneDNN cannot pack {str(dtype).replace('torch.', '')} weights on this CPU ({str(err).strip()})"


def layouts_missing(precision: str, device: "torch.device | str" = "cpu") -> dict[str, str]:
    """``{layout: why}`` for each layout the trial cannot offer ``precision`` on ``device`` here (the
    Model tab and ``/model_info`` show it beside the layouts chosen)."""
    if precision not in DTYPES or torch.device(device).type != "cpu":
        return {}
    return {layout: why for layout in kernel_choice.LAYOUTS
            if (why := layout_unavailable(layout, DTYPES[precision], device)) is not None}


class PackedLinear:
    """``x @ W.T + b`` for 2-D ``x``, with ``W`` prepared once for one precision.

    ``mode`` is ``"onednn"`` or ``"onednn_b8"`` (fp32 or bf16 weights prepacked in oneDNN's blocked
    layout for one row or for eight, GELU / residual add fused into the product), ``"dense"`` (plain
    ``F.linear``), ``"dense_t"`` (``W`` transposed once, ``addmm``) or ``"int8"``
    (weight-only int8, one scale per output row). For fp32 and bf16 on the CPU the
    layout is the fastest measured on this machine for this shape
    (:mod:`playground.kernel_choice`) unless ``backend`` names one; elsewhere dense.
    """

    __slots__ = ("mode", "weight", "bias", "scales", "many")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, precision: str,
                 backend: str | None = None, working_set: int = 0) -> None:
        """``working_set``: bytes of all the model's matrices in ``precision`` (how much a decode step
        streams), which sets the regime of the layout trial (:func:`kernel_choice.stream_copies`) and
        whether a second layout for products of several rows may be kept (``many``,
        :func:`kernel_choice.dual_allowed`)."""
        weight = weight.detach()
        bias = bias.detach() if bias is not None else None
        self.scales = None
        self.many: PackedLinear | None = None   # the layout for several rows, where it differs
        if precision == "int8":
            w = weight.float()
            scales = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0               # (out,)
            self.mode = "int8"
            self.weight = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            self.scales = scales.to(torch.bfloat16)
            self.bias = bias.to(torch.bfloat16) if bias is not None else None
            return
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        w = weight.to(dtype).contiguous()  # fp32: the parameter itself, no copy
        self.bias = bias.to(dtype) if bias is not None else None
        if backend is None:
            backend, many = self._choose(w, self.bias, precision, working_set)
            if many != backend:
                self.many = PackedLinear(w, self.bias, precision, many)
        if backend in ("onednn", "onednn_b8"):
            if (why := layout_unavailable(backend, dtype, w.device)) is not None:
                raise ValueError(f"layout {backend!r} is not available: {why}")
            self.mode = backend          # blocked for one row, or for eight (a classroom's batch)
            self.weight = _ONEDNN._reorder_linear_weight(w, 8 if backend == "onednn_b8" else 1)
        elif backend == "dense_t":
            self.mode, self.weight = "dense_t", w.t().contiguous()             # (in, out)
        elif backend == "dense":
            self.mode, self.weight = "dense", w
        else:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(kernel_choice.LAYOUTS)}")

    @staticmethod
    def _choose(w: torch.Tensor, bias: torch.Tensor | None, precision: str, working_set: int) -> tuple[str, str]:
        """The layouts for one row and for several: measured (the same one unless both may be kept)."""
        if w.device.type != "cpu":
            return "dense", "dense"
        candidates = tuple(b for b in kernel_choice.LAYOUTS if layout_unavailable(b, w.dtype, w.device) is None)
        copies = kernel_choice.stream_copies(w.numel() * w.element_size(), working_set)

        def choose(rows: tuple[int, ...]) -> str:                                   # each copy its own memory
            return kernel_choice.choose(tuple(w.shape), precision, candidates,
                                        lambda layout: PackedLinear(w.clone() if copies > 1 else w, bias, precision,
                                                                    layout), w.dtype, copies, rows)
        # fp32 only: there two layouts differ in the last bits of a float32 sum, as one layout already
        # does between one row and eight (so a batched row keeps the ids it would get alone); two bf16
        # layouts round differently to bf16, which changes sampled text.
        if precision != "fp32" or not kernel_choice.dual_allowed(working_set):
            one = choose(kernel_choice.TRIAL_ROWS)
            return one, one
        return choose((1,)), choose((8,))

    def for_rows(self, n: int) -> "PackedLinear":
        """The layout a product of ``n`` rows runs in."""
        return self.many if self.many is not None and n > 1 else self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.many is not None and x.shape[0] > 1:
            return self.many(x)
        if self.mode.startswith("onednn"):
            return _ONEDNN._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        if self.mode == "int8":
            y = torch.ops.aten._weight_int8pack_mm(x, self.weight, self.scales)
            return y.add_(self.bias) if self.bias is not None else y
        if self.mode == "dense_t":
            return torch.addmm(self.bias, x, self.weight) if self.bias is not None else x @ self.weight
        return F.linear(x, self.weight, self.bias)

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        """``gelu_tanh(x @ W.T + b)``."""
        if self.many is not None and x.shape[0] > 1:
            return self.many.gelu(x)
        if self.mode.startswith("onednn"):
            return _ONEDNN._linear_pointwise(x, self.weight, self.bias, "gelu", [], "tanh")
        return F.gelu(self(x), approximate="tanh")

    def add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b + residual``."""
        if self.many is not None and x.shape[0] > 1:
            return self.many.add(x, residual)
        if self.mode.startswith("onednn"):
            return _ONEDNN._linear_pointwise.binary(x, residual, self.weight, self.bias, "add")
        return self(x).add_(residual)

    def nbytes(self) -> int:
        """Bytes one single-row product reads (the layout for one row)."""
        n = self.weight.numel() * self.weight.element_size()   # oneDNN's opaque tensor: the elements it holds
        extra = [t for t in (self.bias, self.scales) if t is not None]
        return n + sum(t.numel() * t.element_size() for t in extra)

    def held_bytes(self) -> int:
        """Bytes held: both layouts where a second one is kept for several rows."""
        return self.nbytes() + (self.many.nbytes() if self.many is not None else 0)

    def layout(self) -> str:
        """``"dense_t"``, or ``"dense_t, rows>1 onednn_b8"`` where products of several rows take another."""
        return self.mode if self.many is None else f"{self.mode}, rows>1 {self.many.mode}"


__all__ = ["PRECISIONS", "DEFAULT_PRECISION", "DTYPES", "PackedLinear", "layout_unavailable", "layouts_missing"]
