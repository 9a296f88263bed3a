"""What a scoring run returns, and the columns it writes (shared by both engines)."""

from __future__ import annotations

from typing import Literal

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


def reason_column(reason: str) -> str:
    """The column a reason names ("column 'amount': …" → amount), for counting rejects per column."""
    if reason.startswith("column '"):
        return reason[len("column '") :].split("'", 1)[0]
    return reason
