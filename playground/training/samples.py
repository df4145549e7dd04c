"""A live text run's sample generations: what the model writes now, from a fixed prompt with a fixed seed,
so two samples differ only because the weights did."""
from __future__ import annotations

import torch

from ..generation import generate
from ..inspection.inputs import eval_mode
from ..model import GPTModel
from ..tokenizer import get_tokenizer

SAMPLE_TOKENS = 40


@torch.no_grad()
def sample_text(model: GPTModel, prompt: list[int], seed: int = 0, max_new_tokens: int = SAMPLE_TOKENS,
                temperature: float = 0.8, top_k: int = 40) -> str:
    """The prompt and ``max_new_tokens`` sampled tokens as text (a seeded generator; nothing global moves)."""
    room = max(0, model.cfg.context_length - len(prompt))
    with eval_mode(model):
        result = generate(model, prompt, min(max_new_tokens, room), temperature=temperature, top_k=top_k,
                          seed=seed, stop_at_eot=False)
    tok = get_tokenizer()
    return tok.decode(prompt) + result.text
