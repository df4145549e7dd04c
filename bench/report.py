"""Markdown tables and the JSON record under ``bench/results/``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""

    def add(self, *cells) -> None:
        self.rows.append(list(cells))

    def markdown(self) -> str:
        head = f"### {self.title}\n\n| " + " | ".join(self.columns) + " |\n|" + "---|" * len(self.columns)
        body = ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        text = "\n".join([head, *body])
        return text + (f"\n\n{self.note}" if self.note else "")

    def as_dict(self) -> dict:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}


def fmt(x) -> str:
    if isinstance(x, float):
        if x != x:
            return "–"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        return f"{x:.2f}"
    return str(x)


def ratio(a: float, b: float) -> str:
    return f"**{a / b:.2f}x**" if a > 0 and b > 0 else "–"


def machine_line(m: dict) -> str:
    return (f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
            f"torch {m['torch']}, transformers {m['transformers']}, Python {m['python']}, "
            f"avx512_bf16 {'yes' if m['avx512_bf16'] else 'no'}, AMX {'yes' if m['amx'] else 'no'}; {m['date']}")


def write(folder: Path, machine: dict, tables: list[Table], summary: list[str], raw: dict,
          seconds: float, stem: str = "latest") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md = [f"# Benchmark ({machine['date']})", "", f"Machine: {machine_line(machine)}.",
          f"Whole run: {seconds / 60:.1f} min. Medians of interleaved repetitions; "
          "ratios are ours / peer measured in the same run.", ""]
    if summary:
        md += ["## Summary", "", *[f"- {s}" for s in summary], ""]
    for t in tables:
        md += [t.markdown(), ""]
    md_path = folder / f"{stem}.md"
    md_path.write_text("\n".join(md))
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps({"machine": machine, "seconds": seconds, "summary": summary,
                                     "tables": [t.as_dict() for t in tables], "raw": raw},
                                    indent=1, default=str))
    return md_path, json_path
