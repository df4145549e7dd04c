"""Model configuration: the book's field names, validated, with named presets."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a GPT-2-style model.

    Field names are those of the book's ``GPT_CONFIG_124M`` dict, plus
    ``tie_embeddings``: when True the output head shares the token-embedding
    matrix (OpenAI GPT-2); the book's model keeps a separate head.
    """

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"GPTConfig.{name} must be an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive, got {value}")
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"GPTConfig.emb_dim ({self.emb_dim}) must be divisible by "
                f"GPTConfig.n_heads ({self.n_heads})"
            )
        rate = self.drop_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0.0 <= rate < 1.0):
            raise ValueError(f"GPTConfig.drop_rate must be in [0, 1), got {rate!r}")
        for name in ("qkv_bias", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "GPTConfig":
        """Build from a dict such as the book's ``GPT_CONFIG_124M`` (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s): {', '.join(unknown)}")
        return cls(**dict(cfg))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GPTConfig":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("config JSON must be an object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "GPTConfig":
        return dataclasses.replace(self, **changes)


# The book's dict, verbatim, so code pasted from ch04 runs unchanged.
GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}

_OPENAI = dict(vocab_size=50257, context_length=1024, drop_rate=0.1, qkv_bias=True, tie_embeddings=True)

PRESETS: dict[str, GPTConfig] = {
    "book-124M": GPTConfig.from_dict(GPT_CONFIG_124M),
    "gpt2": GPTConfig(emb_dim=768, n_heads=12, n_layers=12, **_OPENAI),
    "gpt2-medium": GPTConfig(emb_dim=1024, n_heads=16, n_layers=24, **_OPENAI),
    "gpt2-large": GPTConfig(emb_dim=1280, n_heads=20, n_layers=36, **_OPENAI),
    "gpt2-xl": GPTConfig(emb_dim=1600, n_heads=25, n_layers=48, **_OPENAI),
}


def get_preset(name: str) -> GPTConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def as_config(cfg: "GPTConfig | Mapping[str, Any]") -> GPTConfig:
    """Accept a GPTConfig or the book's plain dict."""
    if isinstance(cfg, GPTConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return GPTConfig.from_dict(cfg)
    raise TypeError(f"expected a GPTConfig or a dict, got {type(cfg).__name__}")
