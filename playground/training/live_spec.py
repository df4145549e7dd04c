"""What a live run is asked to do (:class:`RunSpec`), the server's caps on it (:class:`Limits`), the named
presets, and :func:`check`: every impossible request refused up front with a sentence saying why."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..config import GPTConfig
from .tasks import GPT2_VOCAB, CopyTask, TextTask, text_tokens

TASKS = ("copy", "text")
MAX_BATCH = 512
MAX_TEXT_CHARS = 500_000
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    """One server's caps (``playground.settings``: ``PLAYGROUND_TRAIN_*``)."""

    max_s: float = 300.0            # training time of one run (pauses not counted)
    max_steps: int = 5000
    threads: int = 1                # torch threads of the training thread
    max_waiting: int = 8            # runs in line behind the one training
    idle_s: float = 120.0           # a run nobody reads for this long stops (its page was closed)
    max_pause_s: float = 300.0      # a run paused longer stops (someone may be waiting)
    max_params: int = 20_000_000
    max_logits: int = 2**27         # batch x context x vocabulary: 512 MB of fp32 logits per step


TINY_COPY = GPTConfig(vocab_size=256, context_length=64, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0,
                      qkv_bias=False, tie_embeddings=False)


@dataclass(frozen=True)
class RunSpec:
    task: str = "copy"
    config: GPTConfig = TINY_COPY
    seed: int = 0
    lr: float = 1e-3                 # constant (AdamW, weight decay on matrices as in the CLI)
    steps: int = 1500
    batch_size: int = 32
    weight_decay: float = 0.1
    clip: float = 1.0
    min_len: int = 8                 # copying: the shortest and longest random sequence
    max_len: int = 32
    text: str | None = None          # text task: the user's text; None = the bundled corpus sample
    text_tokens: int = 20_000        # the slice of it trained on (its first tokens)
    probe_every: int = 10            # steps between two measures of the heads
    sample_every: int = 50           # text task: steps between two sample generations

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["config"] = self.config.to_dict()
        out["text"] = None if self.text is None else f"{len(self.text):,} characters of the visitor's text"
        return out

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, RunSpec] = {
    # The measured one: the phase change came at steps 571, 684, 608 (seeds 0-2), 23-29 s in on one training
    # thread of this 2-core machine (bench/results/train_load.md).
    "induction-tiny": RunSpec(),
    # The same with one layer: an induction head needs two (a previous-token head to read from). Measured: the
    # loss on the copies falls only to ~4.5 in 1,500 steps (guessing among the tokens seen before), against ~0.4
    # with two layers, and no head scores above 0.07 for induction.
    "induction-one-layer": RunSpec(config=TINY_COPY.replace(n_layers=1)),
    # A text model of the tiny size: 64 tokens of context, 4 windows a step (about 0.25 s a step on one busy thread
    # here: the 50,257-wide output head is most of it); its samples turn from noise into English-like words.
    "text-tiny": RunSpec(task="text", config=GPTConfig(vocab_size=GPT2_VOCAB, context_length=64, emb_dim=64,
                                                        n_heads=4, n_layers=2, drop_rate=0.0, qkv_bias=False,
                                                        tie_embeddings=True),
                         lr=3e-3, steps=800, batch_size=4),
    # The bundled model's shape (weights/default.safetensors), from scratch, within the default time cap: words
    # and punctuation appear, not yet sentences (the bundled model trained for hours).
    "bundled-shape": RunSpec(task="text", config=GPTConfig(vocab_size=GPT2_VOCAB, context_length=256, emb_dim=128,
                                                            n_heads=4, n_layers=6, drop_rate=0.0, qkv_bias=True,
                                                            tie_embeddings=True),
                             lr=1e-3, steps=300, batch_size=2, sample_every=25),
}
DEFAULT_PRESET = "induction-tiny"


def parameter_count(cfg: GPTConfig) -> int:
    """The analytic count of the Parameters tab (nothing allocated)."""
    from ..inspection.params import param_breakdown
    return param_breakdown(cfg).total


def check(spec: RunSpec, limits: Limits) -> None:
    """Raise ValueError with a sentence for the user when ``spec`` cannot or may not run here."""
    if spec.task not in TASKS:
        raise ValueError(f"the task must be one of {', '.join(TASKS)}, got {spec.task!r}")
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or not 0 <= spec.seed <= MAX_SEED:
        raise ValueError(f"the seed must be a whole number from 0 to {MAX_SEED:,}, got {spec.seed!r}")
    if not (isinstance(spec.lr, (int, float)) and math.isfinite(spec.lr) and 0 < spec.lr <= 1):
        raise ValueError(f"the learning rate must be a number above 0 and at most 1, got {spec.lr!r}")
    if not (math.isfinite(spec.weight_decay) and 0 <= spec.weight_decay <= 10):
        raise ValueError(f"the weight decay must be between 0 and 10, got {spec.weight_decay!r}")
    for name, value, lo, hi in (("steps", spec.steps, 1, limits.max_steps),
                                ("batch size", spec.batch_size, 1, MAX_BATCH),
                                ("steps between probes", spec.probe_every, 1, 10_000),
                                ("steps between samples", spec.sample_every, 1, 10_000)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"the {name} must be a whole number from {lo:,} to {hi:,} on this server, got {value!r}")
    cfg = spec.config
    if cfg.context_length < 4:
        raise ValueError(f"the context must hold at least 4 tokens (the probe shows 2 twice), got {cfg.context_length}")
    n_params = parameter_count(cfg)
    if n_params > limits.max_params:
        raise ValueError(f"this model would have {n_params:,} parameters; this server trains at most "
                         f"{limits.max_params:,}: fewer layers, a smaller embedding or a smaller vocabulary")
    logits = spec.batch_size * cfg.context_length * cfg.vocab_size
    if logits > limits.max_logits:
        raise ValueError(f"batch size x context x vocabulary = {logits:,} logits per step; this server allows at "
                         f"most {limits.max_logits:,} (about {limits.max_logits * 4 // 2**20:,} MB): a smaller batch "
                         f"or a shorter context")
    if spec.task == "copy":
        CopyTask(cfg.vocab_size, cfg.context_length, spec.min_len, spec.max_len)   # raises on bad lengths
        return
    if cfg.vocab_size != GPT2_VOCAB:
        raise ValueError(f"the text task reads text with the GPT-2 tokenizer: the vocabulary must be "
                         f"{GPT2_VOCAB:,}, got {cfg.vocab_size:,}")
    if spec.text is not None and len(spec.text) > MAX_TEXT_CHARS:
        raise ValueError(f"the text is {len(spec.text):,} characters; at most {MAX_TEXT_CHARS:,} are trained on here")
    if spec.text is not None and not spec.text.strip():
        raise ValueError("the text is empty: paste some text, or train on the corpus sample")
    tokens, source = text_tokens(spec.text, spec.text_tokens)
    TextTask(tokens, cfg.context_length, source=source)                             # raises on a short text
