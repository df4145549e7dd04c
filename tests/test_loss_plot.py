"""Loss curves: the self-contained SVG and the offline HTML."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from playground.training.loss_plot import loss_svg, write_loss_plot

NS = "{http://www.w3.org/2000/svg}"


def history(n: int = 50) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        out.append({"tokens": i * 1000, "train_loss": 4 + 7 * math.exp(-i / 2)})
        if i % 10 == 0:
            out.append({"tokens": i * 1000, "val_loss": 4.2 + 1 / i})
    return out


def test_svg_is_valid_and_draws_both_curves_and_marks():
    root = ET.fromstring(loss_svg(history(), "a <run> & more", marks=[(20_000, "stage 2")]))
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 2
    train_pts = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    val_pts = [tuple(map(float, p.split(","))) for p in lines[1].get("points").split()]
    assert len(train_pts) == 50 and len(val_pts) == 5 and len(root.findall(f"{NS}circle")) == 5
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "a <run> & more" in texts and "stage 2" in texts and "50k" in texts
    # The early spike (loss ~7.5 at the start) is clipped to the top edge; later points spread out.
    ys = [y for _, y in train_pts]
    top = float(root.find(f"{NS}rect[@fill='none']").get("y"))
    assert ys[0] == min(ys) == top and ys[-1] == max(ys)
    # x grows with tokens
    assert [x for x, _ in train_pts] == sorted(x for x, _ in train_pts)


def test_svg_needs_losses():
    with pytest.raises(ValueError, match="no loss values"):
        loss_svg([{"tokens": 5}])


def test_write_svg_and_offline_html(tmp_path):
    svg = write_loss_plot(history(), tmp_path / "a" / "curve.svg")
    assert svg.read_text().startswith("<svg")
    html = write_loss_plot(history(), tmp_path / "curve.html", marks=[(10_000, "x")]).read_text()
    assert '<script src="https://cdn.plot.ly' not in html and len(html) > 1_000_000  # plotly.js is inside
