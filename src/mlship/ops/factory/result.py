"""What a scoring run returns, and the columns it writes (shared by both engines)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

PREDICTION = "prediction"
MODEL_VERSION = "model_version"
Engine = Literal["local", "spark"]


class ScoreResult(BaseModel):
    """What a scoring run read, wrote and refused."""

    input: str
    output: str
    rejects: str
    engine: Engine
    model_version: str
    rows: int
    scored: int
    rejected: int
    reject_reasons: dict[str, int]
    chunk_rows: int
    seconds: float
    rows_per_second: float
    max_rss_mb: float | None = None
    model_max_rss_mb: float | None = None

    @classmethod
    def counted(
        cls,
        started: float,
        paths: tuple[Path, Path, Path],
        engine: Engine,
        scored: int,
        rejected: int,
        **more: Any,
    ) -> ScoreResult:
        """The result of a run begun at `started` (perf_counter) over (input, output, rejects)."""
        seconds = time.perf_counter() - started
        rows = scored + rejected
        data, out, rejects = paths
        return cls(
            input=str(data),
            output=str(out),
            rejects=str(rejects),
            engine=engine,
            rows=rows,
            scored=scored,
            rejected=rejected,
            seconds=round(seconds, 3),
            rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
            **more,
        )


def reason_column(reason: str) -> str:
    """The column a reason names ("column 'amount': …" → amount), for counting rejects per column."""
    if reason.startswith("column '"):
        return reason[len("column '") :].split("'", 1)[0]
    return reason
