"""What a conversion did: the files, the model it chose and why, the metrics and thresholds, the warnings."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("../..") else relative


def written(files: list[str]) -> list[str]:
    """The files written, folders with many files counted: 'data/notebook/ (3 files)'."""
    shown: list[str] = []
    counts: dict[str, int] = {}
    for name in files:
        parts = name.split("/")
        key = "/".join(parts[:2]) + "/" if len(parts) > 2 else name
        counts[key] = counts.get(key, 0) + 1
        if key not in shown:
            shown.append(key)
    return [f"{key} ({counts[key]} files)" if counts[key] > 1 else key for key in shown]


class OtherCandidate(BaseModel):
    """A fitted estimator of the notebook that was not chosen."""

    name: str
    type: str
    cell: int | None
    tested_on: str | None  # the held-out pair it is consistent with, if any


class ConvertResult(BaseModel):
    """The outcome of `convert_notebook`."""

    project: Path
    notebook: Path
    name: str
    files: list[str]  # written, relative to the project
    kept: list[str] = []  # existing files left as they were (mlship convert without --force)
    variable: str  # the chosen model, as the notebook names it
    cell: int  # 1-based cell where it was last fitted
    estimator: str  # what it is: Pipeline(ColumnTransformer → GradientBoostingClassifier)
    reason: str
    candidates: list[OtherCandidate]
    task: str
    target: str
    features: list[str]
    test_data: str | None  # e.g. "X_test/y_test: 250 held-out rows", None when the notebook had none
    metrics: dict[str, float]
    thresholds: dict[str, dict[str, float]]
    warnings: list[str]
    kernel: str
    seconds: float
    notebook_seconds: float

    def summary(self) -> str:
        """A few lines of rich markup for the terminal."""
        where = shown(self.project)
        lines = [
            f"[green]✓[/] converted [bold]{self.notebook.name}[/] into [bold]{self.name}[/] in "
            f"{where} ({len(self.files)} files, {self.seconds:.1f}s; the notebook itself ran "
            f"{self.notebook_seconds:.1f}s)",
            f"  model: [bold]{self.variable}[/] from cell {self.cell} — {self.estimator} ({self.task})",
            f"  why:   {self.reason}",
        ]
        if self.test_data:
            lines.append(f"  test data: data/test.csv ← {self.test_data}")
        else:
            lines.append(
                "  [yellow]test data: none[/] — the notebook has no held-out rows the model is consistent "
                "with; put held-out rows with the target column in data/test.csv and set the thresholds in "
                "mlship.yaml"
            )
        if self.metrics:
            achieved = ", ".join(
                f"{name} {value:.4f} (gate {'≥' if 'min' in self.thresholds.get(name, {}) else '≤'} "
                f"{next(iter(self.thresholds.get(name, {'': float('nan')}).values())):g})"
                for name, value in self.metrics.items()
            )
            lines.append(f"  metrics: {achieved}")
        lines.append(f"  wrote: {', '.join(written(self.files))}")
        lines.append(
            f"  input: {len(self.features)} columns ({', '.join(self.features[:8])}"
            f"{', …' if len(self.features) > 8 else ''}) → schema.json"
        )
        if self.candidates:
            lines.append(
                "  other candidates: "
                + "; ".join(
                    f"{other.name} ({other.type}{f', cell {other.cell}' if other.cell else ''})"
                    for other in self.candidates[:8]
                )
            )
            lines.append(
                "  [dim]to ship another one, tag its cell 'mlship-model' or add '# mlship: model=NAME' to "
                "the notebook, then run 'mlship convert "
                f"{where} --notebook {shown(self.notebook)} --force'[/]"
            )
        if self.kept:
            lines.append(f"  kept as they were: {', '.join(self.kept)} (use --force to regenerate them)")
        for warning in self.warnings:
            lines.append(f"  [yellow]note:[/] {warning}")
        lines.append(f"  next: mlship test {where}")
        return "\n".join(lines)
