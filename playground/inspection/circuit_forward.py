"""The model's forward pass written as a graph of nodes, for edge attribution and circuit evaluation.

The book's model adds every block's attention and MLP output into one residual
stream, so the stream entering any reader is the sum of what every writer
upstream of it wrote (see :mod:`.circuit_graph`), plus the constant
``out_proj`` biases of earlier layers. Written that way the forward pass is
exact (the same logits as ``model(ids)``, up to float rounding), and two things
become possible that the fused forward cannot do:

- every head reads its *own copy* of ``resid_pre`` (a ``(H, B, T, E)`` tensor
  of copies feeding its own slices of ``W_query``/``W_key``/``W_value``), so the
  gradient with respect to a head's input flows through that head only;
- every reader's input can be assembled edge by edge (:func:`run_masked`),
  from this forward's value of one writer and the corrupted run's of another.

Weights are read detached: autograd never touches the parameters, nothing is
hooked, and dropout is not applied (eval-mode behaviour), so the model is left
exactly as it was.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model import GPTModel, TransformerBlock
from .circuit_graph import Graph

ROWS_BUDGET_BYTES = 512 << 20    # the masked forward's (n_up, rows, T, E) differences, per chunk


def graph_of(model: GPTModel) -> Graph:
    return Graph(model.cfg.n_layers, model.cfg.n_heads)


def _layer_norm(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    return F.layer_norm(x, norm.scale.shape, norm.scale.detach(), norm.shift.detach(), norm.eps)


def embed(model: GPTModel, ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` ids -> ``(B, T, E)`` ``tok_emb + pos_emb``: the ``input`` node's output."""
    positions = torch.arange(ids.shape[1], device=ids.device)
    return F.embedding(ids, model.tok_emb.weight.detach()) + model.pos_emb.weight.detach()[positions]


def heads_forward(block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """``(H, B, T, E)`` per-head input copies -> ``(H, B, T, E)`` per-head outputs.

    Head h reads only ``x[h]`` (through ``norm1`` and its own query/key/value
    slices) and writes ``z_h @ W_O[:, hD:(h+1)D].T``; ``out_proj``'s bias is left
    out (it belongs to no head).
    """
    att = block.att
    n_heads, d = att.num_heads, att.head_dim
    e = x.shape[-1]
    h_in = _layer_norm(x, block.norm1)                                          # (H, B, T, E)

    def project(lin: torch.nn.Linear) -> torch.Tensor:
        w = lin.weight.detach().view(n_heads, d, e)                              # (H, D, E)
        out = torch.einsum("hbte,hde->bhtd", h_in, w)                            # (B, H, T, D)
        if lin.bias is not None:
            out = out + lin.bias.detach().view(1, n_heads, 1, d)
        return out

    q, k, v = project(att.W_query), project(att.W_key), project(att.W_value)
    context = F.scaled_dot_product_attention(q, k, v, is_causal=x.shape[2] > 1)  # (B, H, T, D)
    w_o = att.out_proj.weight.detach().view(e, n_heads, d)                       # (E, H, D)
    return torch.einsum("bhtd,ehd->hbte", context, w_o)                          # (H, B, T, E)


def mlp_forward(block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """``(B, T, E)`` -> ``(B, T, E)``: ``norm2`` then the ``ff`` MLP (its output bias included)."""
    fc, proj = block.ff.layers[0], block.ff.layers[2]
    hidden = F.linear(_layer_norm(x, block.norm2), fc.weight.detach(), fc.bias.detach())   # (B, T, 4E)
    return F.linear(F.gelu(hidden, approximate="tanh"), proj.weight.detach(), proj.bias.detach())


def logit_direction(model: GPTModel, target_id: int, distractor_id: int) -> torch.Tensor:
    """``(E,)``: ``final_norm(x) @`` this is ``logit(target) - logit(distractor)`` (the head has no bias)."""
    w = model.out_head.weight.detach()
    return w[target_id] - w[distractor_id]


def metric_of(model: GPTModel, final: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """``(B, T, E)`` final residual stream -> ``(B,)`` metric at the last position."""
    return _layer_norm(final[:, -1], model.final_norm) @ direction


@dataclass
class Trace:
    """One plain run, every writer's output and every reader's input.

    With ``track=True`` (the clean run) the reader inputs are the separate copies
    that autograd differentiates against; ``head_outputs`` too.
    """

    outputs: torch.Tensor              # (n_up, B, T, E) every writer's output, upstream order
    head_inputs: list[torch.Tensor]    # per layer (H, B, T, E): each head's own copy of resid_pre
    head_outputs: list[torch.Tensor]   # per layer (H, B, T, E)
    mlp_inputs: list[torch.Tensor]     # per layer (B, T, E): the MLP's copy of resid_mid
    final: torch.Tensor                # (B, T, E) what logits reads, before final_norm
    metric: torch.Tensor               # (B,)

    def reader_inputs(self) -> list[torch.Tensor]:
        """The tensors whose gradients are the per-reader ``dM/d in_v``, layer by layer, logits last."""
        out: list[torch.Tensor] = []
        for heads, mlp in zip(self.head_inputs, self.mlp_inputs):
            out += [heads, mlp]
        return out + [self.final]


def run_plain(model: GPTModel, ids: torch.Tensor, direction: torch.Tensor, *, track: bool = False) -> Trace:
    """The whole forward pass as a sum of nodes (``track``: build the autograd graph for the reader copies)."""
    n_heads = model.cfg.n_heads
    resid = embed(model, ids)                                                    # (B, T, E)
    if track:
        resid = resid.detach().requires_grad_(True)
    outputs = [resid]
    head_inputs, head_outputs, mlp_inputs = [], [], []
    for block in model.trf_blocks:
        # (H, B, T, E): one copy per head; the expanded view is its own autograd node, whose
        # gradient keeps the heads apart (head h's slice gets only head h's gradient)
        x_heads = resid.unsqueeze(0).expand(n_heads, *resid.shape)
        heads = heads_forward(block, x_heads)                                    # (H, B, T, E)
        resid = resid + heads.sum(0) + block.att.out_proj.bias.detach()         # resid_mid
        x_mlp = resid.clone()                                                    # the MLP's own copy
        mlp = mlp_forward(block, x_mlp)
        resid = resid + mlp                                                      # resid_post
        head_inputs.append(x_heads)
        head_outputs.append(heads)
        mlp_inputs.append(x_mlp)
        outputs += [*heads.unbind(0), mlp]
    final = resid.clone()
    return Trace(torch.stack(outputs), head_inputs, head_outputs, mlp_inputs, final,
                 metric_of(model, final, direction))


def reader_grads(trace: Trace, graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
    """``dM/d in_v`` for every reader ``(n_down, T, E)`` and ``dM/d z_h`` for every head ``(L, H, T, E)``,
    for a tracked run of one prompt (``B = 1``)."""
    readers = trace.reader_inputs()
    grads = torch.autograd.grad(trace.metric.sum(), readers + trace.head_outputs)
    per_reader = []
    for layer in range(graph.n_layers):
        per_reader += [grads[2 * layer][:, 0], grads[2 * layer + 1][0:1]]     # (H, T, E), (1, T, E)
    per_reader.append(grads[len(readers) - 1][0:1])                           # logits
    head_grads = torch.stack([g[:, 0] for g in grads[len(readers):]])          # (L, H, T, E)
    return torch.cat(per_reader), head_grads


def _rows_per_chunk(graph: Graph, n_tokens: int, emb_dim: int, element_size: int) -> int:
    per_row = graph.n_upstream * n_tokens * emb_dim * element_size
    return max(1, ROWS_BUDGET_BYTES // per_row)


@torch.inference_mode()
def run_masked(model: GPTModel, ids: torch.Tensor, keep: torch.Tensor, corrupted: Trace,
               direction: torch.Tensor) -> torch.Tensor:
    """The metric of one forward per circuit: ``keep (K, n_up, n_down)`` -> ``(K,)``.

    Reader v's input is ``sum_u [keep[u, v] ? out_u (this forward) : out_u (corrupted)]``
    plus the constant biases, computed as the corrupted run's input to v plus the kept
    edges' differences ``out_u (this) - out_u (corrupted)``. All edges kept gives the
    run of ``ids``; none gives the corrupted run. ``ids`` is ``(1, T)``; the K circuits
    go through in chunks that fit :data:`ROWS_BUDGET_BYTES`.
    """
    graph = graph_of(model)
    t, e = ids.shape[1], model.cfg.emb_dim
    rows = _rows_per_chunk(graph, t, e, model.tok_emb.weight.element_size())
    keep = keep.to(device=ids.device, dtype=corrupted.outputs.dtype)
    out = [_masked_chunk(model, graph, ids, keep[s:s + rows], corrupted, direction)
           for s in range(0, keep.shape[0], rows)]
    return torch.cat(out) if out else torch.empty(0)


def _masked_chunk(model: GPTModel, graph: Graph, ids: torch.Tensor, keep: torch.Tensor, corrupted: Trace,
                  direction: torch.Tensor) -> torch.Tensor:
    k, n_heads = keep.shape[0], graph.n_heads
    corr = corrupted.outputs[:, 0]                                               # (n_up, T, E)
    t, e = corr.shape[1:]
    # differences this run - corrupted run, row-major per circuit so each reader's sum is one bmm
    diff = torch.empty((k, graph.n_upstream, t * e), dtype=corr.dtype, device=corr.device)   # (K, n_up, T*E)
    diff[:, 0] = (embed(model, ids)[0] - corr[0]).flatten()

    def kept_sum(down: slice, p: int) -> torch.Tensor:                           # -> (K, readers, T*E)
        return torch.bmm(keep[:, :p, down].transpose(1, 2), diff[:, :p])

    for layer, block in enumerate(model.trf_blocks):
        first = graph.head_down(layer, 0)
        mix = kept_sum(slice(first, first + n_heads), graph.n_inputs(first))      # (K, H, T*E)
        resid_pre = corrupted.head_inputs[layer][0, 0]                            # (T, E) corrupted resid_pre
        x_heads = resid_pre + mix.view(k, n_heads, t, e).transpose(0, 1)          # (H, K, T, E)
        heads = heads_forward(block, x_heads) - corrupted.head_outputs[layer]    # (H, K, T, E)
        up = graph.head_up(layer, 0)
        diff[:, up:up + n_heads] = heads.transpose(0, 1).reshape(k, n_heads, t * e)
        v = graph.mlp_down(layer)
        x_mlp = corrupted.mlp_inputs[layer][0] + kept_sum(slice(v, v + 1), graph.n_inputs(v)).view(k, t, e)
        diff[:, graph.mlp_up(layer)] = (mlp_forward(block, x_mlp) - corr[graph.mlp_up(layer)]).view(k, t * e)
    v = graph.logits_down
    final = corrupted.final[0] + kept_sum(slice(v, v + 1), graph.n_upstream).view(k, t, e)
    return metric_of(model, final, direction)


def detached(trace: Trace) -> Trace:
    """The same run without its autograd graph (kept for later forwards)."""
    return Trace(trace.outputs.detach(), [x.detach() for x in trace.head_inputs],
                 [x.detach() for x in trace.head_outputs], [x.detach() for x in trace.mlp_inputs],
                 trace.final.detach(), trace.metric.detach())


@torch.inference_mode()
def noise_heads(model: GPTModel, clean: Trace, corrupted: Trace, direction: torch.Tensor) -> torch.Tensor:
    """``(L, H)``: the metric of the clean run with one head's output taken from the corrupted run.

    Everything before that head's layer is the clean run, so each layer's H patched runs start
    from the clean ``resid_mid`` of that layer (plus the head's difference) and run only the rest:
    about half the work of patching whole forwards.
    """
    n_layers = model.cfg.n_layers
    out = torch.empty(n_layers, model.cfg.n_heads)
    blocks = list(model.trf_blocks)
    for layer in range(n_layers):
        change = corrupted.head_outputs[layer][:, 0] - clean.head_outputs[layer][:, 0]     # (H, T, E)
        resid = clean.mlp_inputs[layer] + change                                # (H, T, E) one row per head
        resid = resid + mlp_forward(blocks[layer], resid)
        for block in blocks[layer + 1:]:
            heads = heads_forward(block, resid.unsqueeze(0).expand(model.cfg.n_heads, *resid.shape))
            resid = resid + heads.sum(0) + block.att.out_proj.bias.detach()
            resid = resid + mlp_forward(block, resid)
        out[layer] = metric_of(model, resid, direction).float().cpu()
    return out
