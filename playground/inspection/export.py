"""Plain JSON and CSV for downloads: every result's ``to_json``/``to_csv`` goes through here.

Tensors become nested lists, tuples lists, dataclasses dicts; floats that JSON
cannot hold (NaN, inf) become null, so any browser can parse the file.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from typing import Any, Iterable, Mapping

import torch


def to_jsonable(obj: Any) -> Any:
    """Recursively convert tensors, numpy arrays, dataclasses and tuples into JSON types."""
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().float().cpu().tolist() if obj.is_floating_point()
                           else obj.detach().cpu().tolist())
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):      # numpy
        return to_jsonable(obj.tolist())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), ensure_ascii=False, allow_nan=False)


def rows_to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text with a header from the first row's keys ('' for no rows)."""
    rows = list(rows)
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return v
