import subprocess
import sys

import pytest
import torch

from playground.cli import main
from playground.generation import generate
from playground.checkpoints import save_model
from tests.factories import make_model


def test_generate_greedy_prints_continuation(tmp_path, capsys):
    model = make_model()
    path = save_model(model, tmp_path / "tiny.safetensors")
    assert main(["generate", "Hello, I am", "--weights", str(path), "--max-new-tokens", "8",
                 "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    expected = generate(model, "Hello, I am", 8, temperature=0)
    assert out == "Hello, I am" + expected.text + "\n"


def test_generate_precision_flag(tmp_path, capsys):
    model = make_model()
    path = save_model(model, tmp_path / "tiny.safetensors")
    assert main(["generate", "Hello", "--weights", str(path), "--max-new-tokens", "6", "--temperature", "0",
                 "--precision", "int8"]) == 0
    expected = generate(model, "Hello", 6, temperature=0, precision="int8")
    assert capsys.readouterr().out == "Hello" + expected.text + "\n"
    with pytest.raises(SystemExit) as exc:
        main(["generate", "Hello", "--weights", str(path), "--precision", "fp64"])
    assert exc.value.code == 2 and "invalid choice: 'fp64'" in capsys.readouterr().err


def test_info_and_errors(tmp_path, capsys):
    path = save_model(make_model(), tmp_path / "tiny.safetensors", dtype=torch.bfloat16)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "n_layers:" in out and "bfloat16" in out and f"{make_model().num_parameters():,}" in out
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    assert main(["info", str(bad)]) == 1
    assert "error:" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    path = save_model(make_model(), tmp_path / "tiny.safetensors")
    out = subprocess.run([sys.executable, "-m", "playground", "info", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "parameters:" in out.stdout


def test_download_offline_says_why(monkeypatch, capsys):
    """``python -m playground download gpt2`` with the network forbidden: exit 1 and a sentence, no traceback."""
    from playground.cli import main
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-playground-cache")
    assert main(["download", "gpt2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "HF_HUB_OFFLINE" in err and "Traceback" not in err
