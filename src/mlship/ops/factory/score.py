"""`mlship score`: batch predictions over a CSV or Parquet input of any size.

    read chunk (chunk_rows) → split_rows against schema.json → valid rows → the model (a child process)
    → append to OUT.parquet (row_id, prediction, model_version) · rejected rows → rejects CSV with reason

The parent holds one chunk at a time (two while the reader parses the next one) and the model process one,
so memory is bounded by the chunk size, not the input's. `--engine spark` hands the same steps to Spark
(`mlship.ops.factory.spark`).
"""

from __future__ import annotations

import queue
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlship.console import console
from mlship.errors import UsageError
from mlship.ops.factory.result import MODEL_VERSION, PREDICTION, Engine, ScoreResult, reason_column
from mlship.ops.factory.rows import REASON, ROW_ID, split_rows
from mlship.ops.factory.source import ChunkReader, ModelSource

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def default_rejects(out: Path) -> Path:
    return out.with_name(f"{out.stem}.rejects.csv")


def output_frame(valid: pd.DataFrame, labels: Any, version: str) -> pd.DataFrame:
    """The scored rows as written: row id, prediction, model version."""
    import pandas as pd

    return pd.DataFrame({ROW_ID: valid[ROW_ID].to_numpy(), PREDICTION: labels, MODEL_VERSION: version})


class _Writers:
    """The Parquet output (schema fixed by the first chunk) and the rejects CSV (header written once)."""

    def __init__(self, out: Path, rejects: Path) -> None:
        self.out, self.rejects = out, rejects
        self._parquet: Any = None
        self._schema: pa.Schema | None = None
        self._rejects_started = False
        self.reasons: dict[str, int] = {}

    def write(self, scored: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(scored, preserve_index=False)
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.out, table.schema)
        elif self._schema is not None and table.schema != self._schema:
            table = table.cast(self._schema)
        self._parquet.write_table(table)

    def reject(self, rejected: pd.DataFrame) -> None:
        for reason in rejected[REASON]:
            column = reason_column(reason)
            self.reasons[column] = self.reasons.get(column, 0) + 1
        rejected.to_csv(
            self.rejects,
            mode="a" if self._rejects_started else "w",
            header=not self._rejects_started,
            index=False,
        )
        self._rejects_started = True

    def close(self, columns: list[str]) -> None:
        import pandas as pd

        if self._parquet is None:  # nothing valid: still an output with the columns, and no rows
            self.write(
                pd.DataFrame({ROW_ID: pd.Series([], dtype="int64"), PREDICTION: [], MODEL_VERSION: []})
            )
        self._parquet.close()
        if not self._rejects_started:
            pd.DataFrame(columns=[*columns, ROW_ID, REASON]).to_csv(self.rejects, index=False)


def _max_rss_mb() -> float:
    """This process's peak resident memory: VmHWM on Linux (ru_maxrss there also counts the memory of the
    process that started this one, at its exec), else ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
        return round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)
    except (OSError, IndexError, ValueError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _progress(reader: ChunkReader) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]scoring[/] {task.fields[rows]:,} rows"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _checked(
    reader: ChunkReader, schema: dict[str, Any], source: str
) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(rows read, valid rows, refused rows) per chunk."""
    offset = 0
    for chunk in reader:
        valid, refused = split_rows(chunk, schema, offset, source)
        offset += len(chunk)
        yield len(chunk), valid, refused


class _Prefetch:
    """Read and check the next chunk in a thread while the model predicts this one (one chunk ahead at
    most, so memory stays bounded); the reader's errors are raised in the caller."""

    _END = object()

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlship-score-reader", daemon=True)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the caller, raised there
            self._put(error)
            return
        self._put(self._END)

    def __enter__(self) -> Iterator[Any]:
        self._thread.start()
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def score_local(
    source: ModelSource, data: Path, out: Path, rejects: Path, chunk_rows: int, timeout_s: float
) -> ScoreResult:
    """Score `data` with the model in a child process (the sandbox `mlship test` uses), chunk by chunk."""
    from mlship.gate.sandbox import ModelProcess

    started = time.perf_counter()
    reader = ChunkReader(data, chunk_rows, source.schema)
    columns = [column["name"] for column in source.schema["columns"]]
    writers = _Writers(out, rejects)
    rows = scored = rejected = 0
    with ExitStack() as stack:
        chunks = stack.enter_context(_Prefetch(_checked(reader, source.schema, str(data))))
        model = stack.enter_context(
            ModelProcess(source.solution, source.artifacts, timeout_s=timeout_s, cwd=source.cwd)
        )
        progress = stack.enter_context(_progress(reader))
        task = progress.add_task("score", total=None, rows=0)
        for size, valid, refused in chunks:
            rows += size
            if len(refused):
                writers.reject(refused)
                rejected += len(refused)
            if len(valid):
                predictions = model.predict(valid[columns], scores=False)
                writers.write(output_frame(valid, predictions.labels, source.version))
                scored += len(valid)
            del valid, refused
            progress.update(task, completed=reader.done, total=reader.total, rows=rows)
        writers.close(columns)
    model_rss = model.stats.max_rss_kb
    return ScoreResult.counted(
        started,
        (data, out, rejects),
        "local",
        scored,
        rejected,
        model_version=source.version,
        reject_reasons=writers.reasons,
        chunk_rows=chunk_rows,
        max_rss_mb=_max_rss_mb(),
        model_max_rss_mb=round(model_rss / 1024, 1) if model_rss else None,
    )


def score(
    data: Path,
    out: Path,
    *,
    project: Path = Path("."),
    version: str | None = None,
    registry: str | None = None,
    rejects: Path | None = None,
    chunk_rows: int = 100_000,
    engine: Engine = "local",
    timeout_s: float = 3600.0,
) -> ScoreResult:
    """Score every row of `data` with the project's model (or, with `version`, that release's model read
    out of its image in the registry), writing Parquet to `out` and the refused rows to `rejects`.

    Raises DataError (input missing, unreadable, a schema column missing), TestsFailed (the model failed),
    RegistryError / UsageError (the release cannot be read)."""
    if chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    rejects = rejects or default_rejects(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if version is None:
            from mlship.ops.factory.source import project_source

            source = project_source(project)
        else:
            from mlship.ops.factory.champion import release_source

            source = stack.enter_context(release_source(project, version, registry))
        if engine == "spark":
            from mlship.ops.factory.spark import score_spark

            return score_spark(source, data, out, rejects, chunk_rows)
        return score_local(source, data, out, rejects, chunk_rows, timeout_s)
