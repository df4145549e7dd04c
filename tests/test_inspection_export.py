"""Plain JSON / CSV export and the shared input handling."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from playground.config import GPTConfig
from playground.inspection.export import dumps, rows_to_csv, to_jsonable
from playground.inspection.inputs import prepare, visible
from playground.model import GPTModel


@dataclass
class Thing:
    t: torch.Tensor
    a: np.ndarray
    x: float


def test_to_jsonable_handles_tensors_arrays_dataclasses_and_nan():
    data = json.loads(dumps(Thing(torch.tensor([[1.5, float("nan")]]), np.arange(2), float("inf"))))
    assert data == {"t": [[1.5, None]], "a": [0, 1], "x": None}
    assert to_jsonable((1, torch.tensor(3))) == [1, 3]


def test_rows_to_csv():
    assert rows_to_csv([]) == ""
    text = rows_to_csv([{"a": 1, "b": "x,y"}, {"a": 2, "b": (1, 2)}])
    assert text.splitlines() == ["a,b", '1,"x,y"', "2,1 2"]


def test_prepare_crops_labels_and_validates():
    torch.manual_seed(0)
    m = GPTModel(GPTConfig(vocab_size=10, context_length=4, emb_dim=4, n_heads=1, n_layers=1))
    p = prepare(m, torch.tensor([[1, 2, 3, 4, 5, 6]]))
    assert p.token_ids == [3, 4, 5, 6] and p.offset == 2 and p.cropped and p.labels == ("3", "4", "5", "6")
    assert prepare(m, [1, 2]).note == ""
    for bad in ([], [10], torch.zeros(2, 3, dtype=torch.long)):
        with pytest.raises(ValueError):
            prepare(m, bad)
    assert visible(" a\n") == "\u2423a\u21b5" and visible("") == "\u2205"
