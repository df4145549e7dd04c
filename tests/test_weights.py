import json
import struct
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from playground.config import GPTConfig
from playground.checkpoints import WeightsError, load_model, own_state_dict, read_header, save_model
from tests.factories import TINY, make_model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("tied", [True, False])
def test_round_trip_bit_exact(tmp_path, dtype, tied):
    cfg = TINY.replace(tie_embeddings=tied)
    model = make_model(cfg).to(dtype)
    path = save_model(model, tmp_path / "m.safetensors")
    meta, entries = read_header(path)
    assert GPTConfig.from_json(meta["config"]) == cfg
    assert ("out_head.weight" in entries) == (not tied)  # a tied head is stored once
    loaded = load_model(path, dtype=None)
    assert loaded.layout == "own" and loaded.file_dtype == dtype
    back = loaded.model
    assert back.cfg == cfg
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b), k
    if tied:
        assert back.out_head.weight is back.tok_emb.weight


def test_saved_file_is_readable_by_others(tmp_path):
    path = save_model(make_model(), tmp_path / "m.safetensors")
    assert path.stat().st_mode & 0o044 == 0o044
    assert not list(tmp_path.glob("*.tmp"))


def test_half_file_upcasts_by_default(tmp_path):
    model = make_model()
    path = save_model(model, tmp_path / "m.safetensors", dtype=torch.float16)
    back = load_model(path).model
    assert back.dtype == torch.float32
    idx = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(back(idx), model(idx), atol=0.05, rtol=0.05)
    assert not back.training


def _good_state() -> dict:
    return {k: v.clone() for k, v in own_state_dict(make_model()).items()}


def _save(path, state, cfg=TINY, meta=None):
    save_file(state, str(path), metadata=meta if meta is not None else
              {"format": "gpt2-playground", "config": cfg.to_json()})
    return path


def _safetensors_bytes(tmp_path) -> bytes:
    return _save(tmp_path / "good.safetensors", _good_state()).read_bytes()


def broken_files(tmp_path):
    """(name, path, expected message) for every kind of bad file."""
    good = _safetensors_bytes(tmp_path)
    cases = []

    def add(name, data, match):
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(data)
        cases.append((name, p, match))

    add("empty", b"", "is empty")
    add("tiny", b"abc", "not a safetensors file")
    add("truncated", good[: len(good) // 2], "truncated")
    add("garbage_header", struct.pack("<Q", 20) + b"\xff\xfe not json at all" + b"\0" * 40, "header is not JSON")
    add("header_too_long", struct.pack("<Q", 10**9) + b"{}", "header claims")
    n = int.from_bytes(good[:8], "little")
    header = json.loads(good[8:8 + n])
    first = next(k for k in header if k != "__metadata__")
    header[first]["data_offsets"] = [0, 10**9]
    lie = json.dumps(header).encode()
    add("lying_offsets", struct.pack("<Q", len(lie)) + lie + good[8 + n:], "points outside the file")
    add("pickle", b"\x80\x04\x95" + b"\0" * 100, "pickle")
    zpath = tmp_path / "z.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x04.")
    add("zip", zpath.read_bytes(), "zip archive")
    add("array_header", struct.pack("<Q", 2) + b"[]", "not a JSON object")

    state = _good_state()
    state["tok_emb.weight"] = state["tok_emb.weight"].to(torch.int32)
    cases.append(("int_dtype", _save(tmp_path / "int.safetensors", state), "dtype int32"))
    state = _good_state()
    state["trf_blocks.1.ff.layers.0.bias"][3] = float("nan")
    cases.append(("nan", _save(tmp_path / "nan.safetensors", state), "NaN or infinite"))
    state = _good_state()
    state["final_norm.shift"][0] = float("inf")
    cases.append(("inf", _save(tmp_path / "inf.safetensors", state), "NaN or infinite"))
    state = _good_state()
    state["trf_blocks.0.att.W_key.weight"] = torch.zeros(32, 16)
    cases.append(("wrong_shape", _save(tmp_path / "shape.safetensors", state),
                  r"wrong shape for 'trf_blocks.0.att.W_key.weight'"))
    state = _good_state()
    del state["trf_blocks.1.norm2.scale"]
    cases.append(("missing_key", _save(tmp_path / "missing.safetensors", state),
                  r"missing key 'trf_blocks.1.norm2.scale'"))
    state = _good_state()
    state["extra.weight"] = torch.zeros(2)
    cases.append(("extra_key", _save(tmp_path / "extra.safetensors", state), r"unexpected key 'extra.weight'"))
    cases.append(("zero_layers", _save(tmp_path / "zero.safetensors", _good_state(),
                                       meta={"format": "gpt2-playground",
                                             "config": json.dumps({**TINY.to_dict(), "n_layers": 0})}),
                  "n_layers must be positive"))
    cases.append(("config_mismatch", _save(tmp_path / "mismatch.safetensors", _good_state(),
                                           cfg=TINY.replace(emb_dim=64)),
                  "wrong shape .* for the config in its metadata"))
    cases.append(("bad_config_json", _save(tmp_path / "badcfg.safetensors", _good_state(),
                                           meta={"format": "gpt2-playground", "config": "{oops"}),
                  "config in its metadata is invalid"))
    cases.append(("unknown_layout", _save(tmp_path / "other.safetensors", {"encoder.w": torch.zeros(2)},
                                          meta={}), "neither our own format nor Hugging Face"))
    add("no_tensors", struct.pack("<Q", 8) + b"{}      ", "holds no tensors")
    cases.append(("missing_file", tmp_path / "nope.safetensors", "cannot open"))
    cases.append(("folder", tmp_path, "is a folder"))
    return cases


def test_every_broken_file_gets_a_clear_error(tmp_path):
    cases = broken_files(tmp_path)
    assert len(cases) >= 20
    for name, path, match in cases:
        with pytest.raises(WeightsError, match=match):
            load_model(path)


def test_a_pickled_torch_file_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, path)  # a real .pt file, renamed
    with pytest.raises(WeightsError, match="zip archive|pickle"):
        load_model(path)


def test_no_pickle_in_the_package():
    """Nothing that runs the app or its tools can unpickle: app.py, playground/ and bench/."""
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[1]
    files = sorted((root / "playground").rglob("*.py")) + sorted((root / "bench").rglob("*.py")) + [root / "app.py"]
    assert root / "app.py" in files and any(p.parent.name == "bench" for p in files)
    pattern = re.compile(r"\bimport pickle\b|\bfrom pickle\b|\bpickle\.(loads?|Unpickler)\b|torch\.load\s*\("
                         r"|from torch import [^\n]*\bload\b|\bcloudpickle\b|\bdill\b|\bjoblib\b|\bshelve\b"
                         r"|allow_pickle\s*=\s*True|weights_only\s*=\s*False")
    offenders = [f"{p.relative_to(root)}: {m.group(0)}" for p in files if p.exists()
                 for m in [pattern.search(p.read_text(encoding="utf-8"))] if m]
    assert not offenders
