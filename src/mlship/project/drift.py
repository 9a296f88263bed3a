"""How far a column of new rows lies from the training reference in schema.json: the population stability
index (PSI), over fixed bins — numbers in the bins of ``observed.bins`` (the training quantiles as edges,
with the exact training share of each bin, as the service counts them for its drift metrics), categories by
their training frequencies plus one bin for the rest.

Used by `mlship test` (a warning when the test data differs from training) and by `mlship retrain`'s shift
guard. A schema.json written before ``observed.bins`` existed falls back to the four bins the training
quartiles make: not the 1 % / 99 % tails, where one tied value (a count column's maximum) holds far more
than 1 % of the rows, and nominal shares are wrong wherever values tie. Counts add up chunk by chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

EPSILON = 1e-4  # the share of an empty bin: a small one instead of zero, as is usual


@dataclass(frozen=True)
class NumericBins:
    """Bin edges and the training share of each bin; `side` as in numpy.searchsorted."""

    edges: list[float]
    shares: list[float]
    side: Literal["left", "right"]


Reference = NumericBins | dict[str, float]


def reference_bins(column: dict[str, Any]) -> Reference | None:
    """Numbers: bin edges and training shares (exact bins, else the quartiles); text: the frequencies."""
    observed = column.get("observed") or {}
    exact = observed.get("bins")
    if column["type"] in ("number", "integer") and isinstance(exact, dict) and exact.get("shares"):
        return NumericBins([float(e) for e in exact["edges"]], [float(v) for v in exact["shares"]], "left")
    if column["type"] in ("number", "integer") and observed.get("quantiles"):
        points = sorted(
            (float(q), float(v)) for q, v in observed["quantiles"].items() if 0.2 <= float(q) <= 0.8
        )
        edges: list[float] = []
        shares: list[float] = []
        last = 0.0
        for quantile, value in points:
            if edges and value <= edges[-1]:
                continue  # tied quantiles (a column of few values) merge their bins
            edges.append(value)
            shares.append(quantile - last)
            last = quantile
        shares.append(1.0 - last)
        return NumericBins(edges, shares, "right")
    frequencies = observed.get("frequencies")
    return {str(k): float(v) for k, v in frequencies.items()} if frequencies else None


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index: Σ (a − e) · ln(a / e), empty shares replaced by a small one."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


class ShiftCounter:
    """Counts the rows of each schema column with a reference into its bins, chunk by chunk."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.references: dict[str, Reference] = {}
        for column in schema["columns"]:
            reference = reference_bins(column)
            if reference is not None:
                self.references[column["name"]] = reference
        self.counts: dict[str, list[float]] = {
            name: [0.0] * self._bins(reference) for name, reference in self.references.items()
        }

    @staticmethod
    def _bins(reference: Reference) -> int:
        return len(reference.shares) if isinstance(reference, NumericBins) else len(reference) + 1

    def add(self, frame: pd.DataFrame) -> None:
        import numpy as np
        import pandas as pd

        for name, reference in self.references.items():
            if name not in frame.columns:
                continue
            values = frame[name].dropna()
            if isinstance(reference, NumericBins):
                numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
                bins = np.searchsorted(reference.edges, numbers, side=reference.side)
                counts: list[float] = np.bincount(bins, minlength=len(reference.shares)).tolist()
            else:
                names = list(reference)
                text = values.astype(str)
                found = text.value_counts()
                counts = [float(found.get(n, 0)) for n in names] + [float(len(text) - text.isin(names).sum())]
            for i, count in enumerate(counts):
                self.counts[name][i] += float(count)

    def psi(self) -> dict[str, float]:
        """PSI per column that had any value; columns without a reference or values are left out."""
        result: dict[str, float] = {}
        for name, reference in self.references.items():
            total = sum(self.counts[name])
            if not total:
                continue
            actual = [count / total for count in self.counts[name]]
            if isinstance(reference, NumericBins):
                expected = reference.shares
            else:
                expected = [*reference.values(), max(0.0, 1.0 - sum(reference.values()))]
            result[name] = psi(expected, actual)
        return result


def column_psi(frame: pd.DataFrame, column: dict[str, Any]) -> float | None:
    """The PSI of one column of `frame` against its training reference (None: no reference or values)."""
    counter = ShiftCounter({"columns": [column]})
    counter.add(frame)
    return counter.psi().get(column["name"])
