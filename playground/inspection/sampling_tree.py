"""The few most likely continuations of a prompt, as a tree, under the current sampling controls.

Each node's ``prob`` is the chance that sampling (temperature, top-k, top-p)
draws its token after its parent's text — the very distribution
``sampling.sampling_distribution`` gives, which generation draws from — and
``path_prob`` the chance of the whole path (the product along it). The greedy
path (argmax of the model's own logits at every level, what temperature 0
generates) is marked. Every level is one batched forward pass: all its nodes
have the same length.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..model import GPTModel
from ..sampling import SamplingParams, sampling_distribution
from .inputs import TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare, to_id_list

MAX_DEPTH = 3
MAX_BRANCH = 5


@dataclass
class TreeNode:
    token: str                   # display label ("" for the root)
    token_id: int | None         # None for the root (the prompt)
    prob: float                  # conditional: P(token | parent's text) under the sampling controls
    path_prob: float             # product of ``prob`` from the root
    depth: int                   # 0 for the root
    greedy: bool                 # on the greedy (temperature 0) path
    children: list["TreeNode"] = field(default_factory=list)
    path: tuple[int, ...] = ()   # token ids from the root to here

    def data(self) -> dict:
        return {"token": self.token, "token_id": self.token_id, "prob": self.prob, "path_prob": self.path_prob,
                "depth": self.depth, "greedy": self.greedy, "path": list(self.path),
                "children": [c.data() for c in self.children]}

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass(frozen=True)
class SamplingTree:
    root: TreeNode
    prompt_ids: tuple[int, ...]          # the prompt as given (before any crop)
    prompt_tokens: tuple[str, ...]       # labels of the tokens the model saw
    params: SamplingParams
    depth: int
    branch: int
    greedy_ids: tuple[int, ...]          # argmax at each level along the greedy path
    note: str = ""

    def nodes(self) -> list[TreeNode]:
        return list(self.root.walk())

    def leaves(self) -> list[TreeNode]:
        return [n for n in self.root.walk() if not n.children and n is not self.root]

    def leaf_paths(self, include_prompt: bool = True) -> list[list[int]]:
        """Token ids of each leaf (prompt + path by default): where generation can continue from."""
        head = list(self.prompt_ids) if include_prompt else []
        return [head + list(n.path) for n in self.leaves()]

    def data(self) -> dict:
        p = self.params
        return {"prompt_ids": list(self.prompt_ids), "prompt_tokens": list(self.prompt_tokens),
                "params": {"temperature": p.temperature, "top_k": p.top_k, "top_p": p.top_p},
                "depth": self.depth, "branch": self.branch, "greedy_ids": list(self.greedy_ids),
                "note": self.note, "root": self.root.data(), "leaf_paths": self.leaf_paths()}


@torch.inference_mode()
def sampling_tree(model: GPTModel, prompt_ids: TokenInput, *, depth: int = 2, branch: int = 3,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
                  tokenizer: TokenizerLike | None = None) -> SamplingTree:
    """Expand the ``branch`` most likely children of the prompt, ``depth`` levels deep.

    Children are ranked by the sampling distribution; tokens it cannot draw
    (probability 0 after top-k / top-p) are left out, so a node may have fewer.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be 1..{MAX_DEPTH}, got {depth!r}")
    if isinstance(branch, bool) or not isinstance(branch, int) or not 1 <= branch <= MAX_BRANCH:
        raise ValueError(f"branch must be 1..{MAX_BRANCH}, got {branch!r}")
    params = SamplingParams(temperature=temperature, top_k=top_k or None, top_p=top_p)
    original = to_id_list(prompt_ids, tokenizer)
    ctx = model.cfg.context_length
    # room for ``depth`` more tokens inside the context (the window the model sees)
    prep = prepare(model, original, tokenizer=tokenizer, max_tokens=max(1, ctx - depth))
    label = make_label_fn(model, tokenizer)
    root = TreeNode(token="", token_id=None, prob=1.0, path_prob=1.0, depth=0, greedy=True)
    level = [root]
    greedy_ids: list[int] = []
    with eval_mode(model):
        for d in range(1, depth + 1):
            rows = torch.tensor([list(n.path) for n in level], dtype=torch.long, device=model.device)
            ids = torch.cat([prep.ids.expand(len(level), -1), rows], dim=1) if d > 1 else prep.ids
            logits = model(ids, last_only=True)[:, -1]                        # (N, V), one batched pass
            probs = sampling_distribution(logits, params)                     # (N, V)
            raw_best = torch.argmax(logits, dim=-1)                           # (N,) greedy = temperature 0
            k = min(branch, probs.shape[-1])
            top_p_vals, top_ids = torch.topk(probs, k, dim=-1)                # (N, k)
            nxt: list[TreeNode] = []
            for i, node in enumerate(level):
                best = int(raw_best[i])
                chosen = [int(t) for t, p in zip(top_ids[i].tolist(), top_p_vals[i].tolist()) if p > 0]
                if node.greedy:
                    greedy_ids.append(best)
                    if best not in chosen:   # a tie at the top ranked differently: keep the greedy child
                        chosen = chosen[:k - 1] + [best]
                for t in chosen:
                    p = float(probs[i, t])
                    child = TreeNode(token=label(t), token_id=t, prob=p, path_prob=node.path_prob * p,
                                     depth=d, greedy=node.greedy and t == best, path=node.path + (t,))
                    node.children.append(child)
                    nxt.append(child)
            level = nxt
    return SamplingTree(root=root, prompt_ids=tuple(original), prompt_tokens=prep.labels, params=params,
                        depth=depth, branch=branch, greedy_ids=tuple(greedy_ids), note=prep.note)
