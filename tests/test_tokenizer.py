import pytest

from playground import tokenizer as tk
from playground.tokenizer import Tokenizer, TokenizerError, get_tokenizer


def test_known_ids():
    tok = get_tokenizer()
    assert tok.encode("Hello, I am") == [15496, 11, 314, 716]
    assert tok.decode([15496, 11, 314, 716]) == "Hello, I am"
    assert tok.eot_id == 50256 and tok.encoding.n_vocab == 50257


def test_endoftext_in_text_does_not_crash():
    tok = get_tokenizer()
    assert tok.encode("a<|endoftext|>b") == [64, 50256, 65]
    plain = tok.encode("a<|endoftext|>b", allow_special=False)
    assert 50256 not in plain and tok.decode(plain) == "a<|endoftext|>b"


def test_odd_text_encodes():
    tok = get_tokenizer()
    for text in ["", " ", "\x00", "日本語 🙂 مرحبا", "x\ud800y"]:
        ids = tok.encode(text)
        assert all(0 <= i < 50257 for i in ids)
    assert tok.encode("") == []


def test_partial_utf8_token_text_and_bad_ids():
    tok = get_tokenizer()
    ids = tok.encode("🙂")
    assert len(ids) > 1  # emoji spans byte-level tokens
    assert "\ufffd" in tok.token_text(ids[0])
    assert tok.decode(ids) == "🙂"
    assert tok.decode([10**9, -1]) == ""


def test_checksum_is_verified(tmp_path):
    bad = tmp_path / "gpt2.tiktoken"
    data = tk.RANKS_PATH.read_bytes()
    bad.write_bytes(data[:-10])
    with pytest.raises(TokenizerError, match="not the expected one"):
        tk.build_encoding(bad)
    with pytest.raises(TokenizerError, match="cannot read"):
        tk.build_encoding(tmp_path / "missing.tiktoken")


def test_no_network_used(monkeypatch):
    import tiktoken.load
    def boom(*a, **k):
        raise AssertionError("network")
    monkeypatch.setattr(tiktoken.load, "read_file", boom)
    assert Tokenizer().encode("Hello") == [15496]


def test_partial_characters_are_labelled_by_their_bytes():
    from playground.tokenizer import get_tokenizer
    tok = get_tokenizer()
    ids = tok.encode("🙂 café")
    labels = [tok.token_label(i) for i in ids]
    assert labels[0].startswith("<0xF0>") and all("\ufffd" not in lab for lab in labels)
    assert labels[-1] == " café" and tok.token_label(tok.encode(" the")[0]) == " the"


def test_a_character_split_over_tokens_reads_as_itself_on_each():
    """Byte-level tokens that join into one character show that character and their part; a byte that joins
    nothing stays as bytes (explained where it is shown)."""
    from playground.tokenizer import get_tokenizer
    tok = get_tokenizer()
    ids = tok.encode("don’t — 中文 🙂")
    labels = tok.sequence_labels(ids)
    assert "’(1/2)" in labels and "’(2/2)" in labels and "文(2/2)" in labels
    import re
    parts = [re.fullmatch(r"(.+)\((\d)/(\d)\)", label) for label in labels]
    text = "".join(label if m is None else m.group(1) if m.group(2) == "1" else "" for label, m in zip(labels, parts))
    assert text == tok.decode(ids)                                # the labels spell the text, each character once
    lone = tok.encode("’")[:1]                        # the first byte token alone: part of a character
    assert tok.sequence_labels(lone) == [tok.token_label(lone[0])] and tok.token_label(lone[0]).startswith("<0x")
