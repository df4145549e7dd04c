"""The same random weights for everyone, and one callable per contender.

A random ``transformers.GPT2LMHeadModel`` is saved as safetensors and loaded
into our engine through the Hugging Face path (``load_model``), so both sides
compute with identical numbers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from playground.fast_decode import fast_weights
from playground.generation import generate_text_simple, stream_ids
from playground.model import GPTModel
from playground.sampling import SamplingParams
from playground.checkpoints import load_model

SHAPES = {  # name -> (layers, width, heads), OpenAI's sizes
    "gpt2": (12, 768, 12),
    "gpt2-medium": (24, 1024, 16),
}
GREEDY = SamplingParams(temperature=0)
OURS = ("fp32", "bf16", "int8")                          # our precisions
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}   # the peer's


@dataclass
class Pair:
    """One shape: the transformers model and ours, from the same file."""

    name: str
    path: Path                                   # model.safetensors (HF layout)
    hf: "object"                                 # GPT2LMHeadModel, fp32, SDPA attention
    ours: GPTModel                               # fp32
    _copies: dict = field(default_factory=dict)

    def hf_in(self, dtype: torch.dtype):
        if dtype == torch.float32:
            return self.hf
        key = ("hf", dtype)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(self.hf).to(dtype)
        return self._copies[key]

    def hf_variant(self, dtype: torch.dtype, attn: str):
        """The transformers model in ``dtype`` with attention ``attn`` ("sdpa", its default, or "eager")."""
        if attn == "sdpa":
            return self.hf_in(dtype)
        key = ("hf", dtype, attn)
        if key not in self._copies:
            m = copy.deepcopy(self.hf_in(dtype))
            m.set_attn_implementation(attn)
            self._copies[key] = m
        return self._copies[key]

    def ours_for(self, precision: str) -> GPTModel:
        """Our model as one user of ``precision`` holds it: the same parameters, its own prepared weights.

        The engine keeps at most two precisions prepared per model (the default and the last other
        one), so alternating fp32, bf16 and int8 on one model object, as an interleaved benchmark
        does, would re-prepare bf16 or int8 inside every timed run: no user who stays with one
        precision pays that. A shallow copy shares every parameter and module but is another key
        in the engine's cache."""
        if precision == "fp32":
            return self.ours
        key = ("ours view", precision)
        if key not in self._copies:
            self._copies[key] = copy.copy(self.ours)
        return self._copies[key]

    def ours_in(self, dtype: torch.dtype) -> GPTModel:
        """Our model itself in ``dtype`` (for the book's loop, which runs the model as is)."""
        if dtype == torch.float32:
            return self.ours
        key = ("ours", dtype)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(self.ours).to(dtype)
        return self._copies[key]


def make_pair(name: str, folder: Path, seed: int = 0) -> Pair:
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, width, heads = SHAPES[name]
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=layers, n_embd=width, n_head=heads)).eval()
    hf.generation_config.eos_token_id = None  # never stop early: every run makes all its tokens
    hf.generation_config.pad_token_id = 50256
    out = folder / name
    hf.save_pretrained(out)  # model.safetensors + config.json
    path = out / "model.safetensors"
    ours = load_model(path).model
    return Pair(name, path, hf, ours)


def prompt(n: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 50257, (batch, n), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ runners

def ours_generate(model: GPTModel, idx: torch.Tensor, new: int, precision: str):
    """Our public streaming loop, greedy; returns the ids."""
    def run():
        return torch.stack([s.ids for s in stream_ids(model, idx, new, GREEDY, precision=precision)], 1)
    return run


def hf_generate(hf, idx: torch.Tensor, new: int, cache: str | None):
    mask = torch.ones_like(idx)

    def run():
        with torch.inference_mode():
            out = hf.generate(idx, attention_mask=mask, max_new_tokens=new, do_sample=False,
                              cache_implementation=cache)
        return out[:, idx.shape[1]:]
    return run


def book_generate(model: GPTModel, idx: torch.Tensor, new: int):
    def run():
        return generate_text_simple(model, idx, new, model.cfg.context_length)[:, idx.shape[1]:]
    return run


def ours_prefill(model: GPTModel, idx: torch.Tensor, precision: str):
    """Prompt in, next-token logits out: what the first generated token waits for."""
    def run():
        fw = fast_weights(model, precision)
        return fw.forward(idx, fw.new_cache(idx.shape[0], idx.shape[1]))
    return run


def hf_prefill(hf, idx: torch.Tensor):
    def run():
        with torch.inference_mode():
            return hf(idx, use_cache=True, logits_to_keep=1).logits[:, -1]
    return run


def book_prefill(model: GPTModel, idx: torch.Tensor):
    """The book loop's step: the whole model on the window (every position's logits)."""
    def run():
        with torch.no_grad():
            return model(idx)[:, -1]
    return run
