"""The counts of one run of the project's pytest suite (read by `mlship test` and written to JUnit XML)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class PytestResult(BaseModel):
    """Counts from one run of the project's tests (0 tests when the project has no tests folder)."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    duration: float = 0.0
    junit_path: Path | None = None
    failures: list[str] = []
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    def summary(self) -> str:
        """'4 passed, 1 failed, 1 error' in pytest's words."""
        counts = (
            (self.passed, "passed"),
            (self.failed, "failed"),
            (self.errors, "error" if self.errors == 1 else "errors"),
            (self.skipped, "skipped"),
        )
        parts = [f"{count} {word}" for count, word in counts if count]
        return ", ".join(parts) if parts else "no tests"
