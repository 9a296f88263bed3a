"""Which model to run, and the input file to run it over, read in chunks of bounded size.

A model is the project's own (solution.py, its artefacts, schema.json) or a release's, read out of its
image in the registry (`mlship.ops.factory.champion`). Either way it is a folder with those files and a
version to stamp on every prediction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlship.errors import DataError
from mlship.project.data import data_format

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ModelSource:
    """A model on local disk: how to load it, the contract of its inputs, and its version."""

    solution: Path
    artifacts: Path
    schema: dict[str, Any]
    version: str
    cwd: Path


def project_version(artifacts: Path) -> str:
    """`project-<12 hex>`: the project's model, named by a hash of its artefact files (names and bytes)."""
    digest = hashlib.sha256()
    files = [artifacts] if artifacts.is_file() else sorted(p for p in artifacts.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(artifacts.parent)).encode())
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return f"project-{digest.hexdigest()[:12]}"


def project_source(root: Path) -> ModelSource:
    """The model of the project in `root` (mlship.yaml, solution.py, artefacts, schema.json)."""
    from mlship.project.config import load_project
    from mlship.project.schema import load_schema

    project = load_project(root)
    return ModelSource(
        solution=project.solution_path,
        artifacts=project.artifacts_path,
        schema=load_schema(project.schema_path),
        version=project_version(project.artifacts_path),
        cwd=project.root,
    )


def folder_source(folder: Path, version: str) -> ModelSource:
    """A model laid out as in the image's /app/project (service.json names solution and artefacts)."""
    service = json.loads((folder / "service.json").read_text(encoding="utf-8"))
    return ModelSource(
        solution=folder / str(service.get("solution", "solution.py")),
        artifacts=folder / str(service.get("artifacts", "model")).rstrip("/"),
        schema=json.loads((folder / "schema.json").read_text(encoding="utf-8")),
        version=version,
        cwd=folder,
    )


def check_input(path: Path) -> None:
    if not path.exists():
        raise DataError(f"input {path} does not exist", hint="give a CSV or Parquet file (or folder)")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"input {path} is empty (0 bytes)", hint="write the rows with a header line into it")


def text_columns(schema: dict[str, Any]) -> list[str]:
    return [column["name"] for column in schema["columns"] if column["type"] == "string"]


class ChunkReader:
    """The rows of a CSV or Parquet input, `chunk_rows` at a time; `done`/`total` measure progress
    (bytes read of a CSV, rows of a Parquet input)."""

    def __init__(self, path: Path, chunk_rows: int, schema: dict[str, Any]) -> None:
        check_input(path)
        self.path = path
        self.chunk_rows = chunk_rows
        self.format = data_format(path)
        self.strings = text_columns(schema)
        self.done = 0
        self.total: int | None = None
        self._handle: IO[bytes] | None = None

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self._parquet() if self.format == "parquet" else self._csv()

    def _csv(self) -> Iterator[pd.DataFrame]:
        import pandas as pd

        self.total = self.path.stat().st_size
        try:
            with (
                self.path.open("rb") as handle,
                pd.read_csv(
                    handle, chunksize=self.chunk_rows, dtype={name: str for name in self.strings}
                ) as reader,
            ):
                for chunk in reader:
                    self.done = handle.tell()
                    yield chunk
        except pd.errors.EmptyDataError as error:
            raise DataError(f"input {self.path} has no header line", hint="write a header line") from error
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            first = str(error).strip().splitlines()[0]
            raise DataError(
                f"input {self.path} cannot be read as CSV: {first}",
                hint="save it as UTF-8 CSV with a header line, or as Parquet",
            ) from error

    def _parquet(self) -> Iterator[pd.DataFrame]:
        import pyarrow as pa
        import pyarrow.dataset as ds

        try:
            dataset = ds.dataset(self.path, format="parquet")
            self.total = dataset.count_rows()
            for batch in dataset.to_batches(batch_size=self.chunk_rows):
                if batch.num_rows:
                    self.done += batch.num_rows
                    yield batch.to_pandas()
        except (pa.ArrowException, OSError) as error:
            raise DataError(
                f"input {self.path} cannot be read as Parquet: {error}",
                hint="check that the file is complete and really Parquet",
            ) from error
