"""GPT-2 Playground: the book's GPT-2, its weights, and tools to look inside it."""
from .config import GPT_CONFIG_124M, PRESETS, GPTConfig, get_preset
from .generation import GenerationResult, TokenStep, generate, generate_text_simple, stream_generate
from .hooks import capture, hooks
from .model import GELU, FeedForward, GPTModel, LayerNorm, MultiHeadAttention, TransformerBlock
from .tokenizer import Tokenizer, get_tokenizer
from .checkpoints import WeightsError, load_model, save_model

__all__ = [
    "GPT_CONFIG_124M", "PRESETS", "GPTConfig", "get_preset",
    "GPTModel", "TransformerBlock", "MultiHeadAttention", "LayerNorm", "GELU", "FeedForward",
    "Tokenizer", "get_tokenizer", "capture", "hooks",
    "generate", "stream_generate", "generate_text_simple", "GenerationResult", "TokenStep",
    "load_model", "save_model", "WeightsError",
]
