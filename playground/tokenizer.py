"""GPT-2's BPE tokenizer, built offline from the rank file shipped in the package.

``tiktoken.get_encoding("gpt2")`` downloads its files at run time; we never do.
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path

import tiktoken

RANKS_PATH = Path(__file__).parent / "assets" / "gpt2.tiktoken"
# The hash tiktoken itself expects for r50k_base (GPT-2's encoding).
RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"
EOT_ID = 50256


class TokenizerError(RuntimeError):
    pass


def _load_ranks(path: Path, expected_sha256: str) -> dict[bytes, int]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TokenizerError(f"cannot read the GPT-2 rank file {path}: {e}") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise TokenizerError(
            f"the GPT-2 rank file {path} is not the expected one "
            f"(sha256 {digest[:12]}..., expected {expected_sha256[:12]}...); reinstall the package"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_encoding(path: Path = RANKS_PATH, expected_sha256: str = RANKS_SHA256) -> tiktoken.Encoding:
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=_load_ranks(Path(path), expected_sha256),
        special_tokens={EOT: EOT_ID},
        explicit_n_vocab=50257,
    )


class Tokenizer:
    """Thin wrapper: ``encode`` never raises on user text, ``decode`` never raises on ids.

    The literal string ``<|endoftext|>`` in a prompt is read as the end-of-text
    token (id 50256), the document separator GPT-2 was trained with; pass
    ``allow_special=False`` to encode it as ordinary characters instead.
    """

    eot_id = EOT_ID
    n_vocab = 50257

    def __init__(self, encoding: tiktoken.Encoding | None = None) -> None:
        self.encoding = encoding or build_encoding()

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        # Lone surrogates cannot cross into tiktoken's Rust core: replace them.
        text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text
        if allow_special:
            return self.encoding.encode(text, allowed_special={EOT})
        return self.encoding.encode(text, disallowed_special=())

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode([i for i in ids if 0 <= i < self.n_vocab], errors="replace")

    def token_text(self, token_id: int) -> str:
        """Text of one token; a token holding part of a UTF-8 character shows as U+FFFD."""
        if not 0 <= token_id < self.n_vocab:
            return "\ufffd"
        return self.encoding.decode_single_token_bytes(token_id).decode("utf-8", errors="replace")

    def token_label(self, token_id: int) -> str:
        """Text of one token for display: a byte that is only part of a UTF-8 character shows as
        ``<0xE2>`` (GPT-2 splits many characters, e.g. emoji, over two or three tokens), not as U+FFFD."""
        if not 0 <= token_id < self.n_vocab:
            return "\ufffd"
        raw = self.encoding.decode_single_token_bytes(token_id)
        text = raw.decode("utf-8", errors="surrogateescape")
        return "".join(f"<0x{ord(c) - 0xDC00:02X}>" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)

    def sequence_labels(self, ids: list[int]) -> list[str]:
        """Labels for a run of tokens as they stand in a text: where two to four tokens together hold one
        UTF-8 character (GPT-2 splits curly quotes, dashes, emoji, most CJK), each shows that character and
        its part, ``’(1/2)`` ``’(2/2)``; a byte that joins nothing stays ``<0xE2>`` (:meth:`token_label`)."""
        raw = [self.encoding.decode_single_token_bytes(i) if 0 <= i < self.n_vocab else b"" for i in ids]
        out: list[str] = []
        i = 0
        while i < len(ids):
            if _whole(raw[i]):
                out.append(self.token_label(ids[i]))
                i += 1
                continue
            for j in range(i + 1, min(i + 4, len(ids))):
                joined = b"".join(raw[i:j + 1])
                if _whole(joined):
                    text, n = joined.decode("utf-8"), j - i + 1
                    out += [f"{text}({k}/{n})" for k in range(1, n + 1)]
                    i = j + 1
                    break
            else:
                out.append(self.token_label(ids[i]))
                i += 1
        return out

    def token_texts(self, ids: list[int]) -> list[str]:
        return [self.token_text(i) for i in ids]


def _whole(raw: bytes) -> bool:
    """``raw`` is whole UTF-8 (no character cut at either end)."""
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


@lru_cache(maxsize=1)
def get_tokenizer() -> Tokenizer:
    """The shared tokenizer (built once per process, ~0.1 s)."""
    return Tokenizer()
