"""The figures: each beside its baseline from the same run, with the ratio and the aim."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from benchmarks.timing import Measure


@dataclass
class Figure:
    name: str
    ours: Measure
    baseline: Measure
    aim: float | None  # ours / baseline should reach at least this (None: no aim, context only)

    @property
    def ratio(self) -> float:
        return self.ours.median / self.baseline.median if self.baseline.median else 0.0

    @property
    def met(self) -> bool | None:
        return None if self.aim is None else self.ratio >= self.aim

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "ours": self.ours.as_dict(),
            "baseline": self.baseline.as_dict(),
            "ratio": round(self.ratio, 3),
            "aim": self.aim,
            "met": self.met,
        }


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _aim(aim: float | None) -> str:
    if aim is None:
        return "-"
    return f">= {aim:.0%}" if aim < 1 else f">= {aim:.1f}x"


def _ratio(fig: Figure) -> str:
    return f"{fig.ratio:.0%}" if fig.aim is not None and fig.aim < 1 else f"{fig.ratio:.2f}x"


def _verdict(fig: Figure) -> str:
    return {None: "", True: "met", False: "MISSED"}[fig.met]


def table(figures: list[Figure], context: dict[str, Any]) -> str:
    """A plain-text table for a person (no terminal codes, pastes into Markdown)."""
    head = ("figure", "evstore ev/s", "baseline", "baseline ev/s", "ratio", "aim", "",
            "CPU us/ev (ours/base)")
    rows = [head]
    for f in figures:
        rows.append((f.name, _rate(f.ours.median), f.baseline.label, _rate(f.baseline.median),
                     _ratio(f), _aim(f.aim), _verdict(f),
                     f"{f.ours.median_cpu_us:.0f} / {f.baseline.median_cpu_us:.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {1, 3, 4, 7}

    def line(r: tuple[str, ...]) -> str:
        pairs = enumerate(zip(r, widths, strict=True))
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs]
        return "| " + " | ".join(cells) + " |"

    out = [line(rows[0]), "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                                         for i, w in enumerate(widths)) + "|"]
    out += [line(r) for r in rows[1:]]
    notes = [f"{k}: {v}" for k, v in context.items()]
    return "\n".join(out) + "\n\n" + "\n".join(notes)


def runs(figures: list[Figure]) -> str:
    """Every run's rate, to see the spread behind each median."""
    out = []
    for f in figures:
        for m in (f.ours, f.baseline):
            rates = ", ".join(_rate(r) for r in m.rates)
            out.append(f"  {f.name} / {m.label}: {rates}")
    return "runs (events/s):\n" + "\n".join(out)


def as_json(figures: list[Figure], context: dict[str, Any]) -> str:
    return json.dumps({"context": context, "figures": [f.as_dict() for f in figures]}, indent=2)
