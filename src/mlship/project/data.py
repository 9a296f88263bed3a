"""The gate's test data: a local file or an http(s) URL, CSV or Parquet, read in chunks of bounded size.

A URL is downloaded (streamed) to a temporary file first; the file's SHA-256 is computed on the way, so a
release can record exactly which data it was tested on.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from mlship.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

FIELD = "evaluation.data in mlship.yaml"
DOWNLOAD_TIMEOUT_S = 30.0
_BLOCK = 1 << 20


@dataclass
class DataFile:
    """A test-data file on local disk, where it came from, its format and its SHA-256."""

    path: Path
    source: str
    format: Literal["csv", "parquet"]
    sha256: str


def is_url(location: str) -> bool:
    return re.match(r"^https?://", location) is not None


def data_format(path: Path, name: str | None = None) -> Literal["csv", "parquet"]:
    """Parquet for a folder, a .parquet/.pq name (`name`, else the path's) or PAR1 magic; else CSV."""
    if path.is_dir() or (name or path.name).lower().endswith((".parquet", ".pq")):
        return "parquet"
    with path.open("rb") as handle:
        return "parquet" if handle.read(4) == b"PAR1" else "csv"


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, folder: Path) -> tuple[Path, str]:
    import httpx

    suffix = "".join(Path(urlparse(url).path).suffixes[-2:]) or ".csv"
    target = folder / f"test-data{suffix}"
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_S) as response:
            if response.status_code >= 400:
                raise DataError(
                    f"cannot download the test data {url} ({FIELD}): HTTP {response.status_code}",
                    hint="check the URL and that it serves the file without a login",
                )
            with target.open("wb") as handle:
                for block in response.iter_bytes(_BLOCK):
                    digest.update(block)
                    handle.write(block)
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        raise DataError(
            f"cannot download the test data {url} ({FIELD}): {reason}",
            hint="check the URL and that the server is reachable from this machine",
        ) from error
    return target, digest.hexdigest()


@contextmanager
def open_data(location: str, shown_as: str | None = None) -> Iterator[DataFile]:
    """Make the test data available as a local file for the duration of the block.

    `location` is a path or an http(s) URL; `shown_as` is how messages name it (default: `location`).
    Raises DataError when the file does not exist, cannot be downloaded, or is empty.
    """
    shown = shown_as or location
    with tempfile.TemporaryDirectory(prefix="mlship-data-") as folder:
        if is_url(location):
            path, digest = _download(location, Path(folder))
        else:
            path = Path(location)
            if not path.exists():
                raise DataError(
                    f"test data {shown} does not exist ({FIELD})",
                    hint="put the held-out rows (with the target column) there, or fix the path",
                )
            if not path.is_file():
                raise DataError(
                    f"test data {shown} is not a file ({FIELD})", hint="point it at a CSV or Parquet file"
                )
            digest = ""
        if path.stat().st_size == 0:
            raise DataError(
                f"test data {shown} is empty (0 bytes)",
                hint="write the held-out rows with a header line into it",
            )
        yield DataFile(
            path=path, source=shown, format=data_format(path, location), sha256=digest or _hash(path)
        )


def read_chunks(data: DataFile, chunk_rows: int, text_columns: Iterable[str] = ()) -> Iterator[pd.DataFrame]:
    """Yield the rows of the file as DataFrames of at most `chunk_rows` rows.

    `text_columns` are read as text whatever they look like (a CSV cannot tell "01" from 1 otherwise).
    Raises DataError when the file has no header, no rows, or cannot be parsed.
    """
    chunks = (
        _parquet_chunks(data, chunk_rows)
        if data.format == "parquet"
        else _csv_chunks(data, chunk_rows, text_columns)
    )
    rows = 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        rows += len(chunk)
        yield chunk
    if rows == 0:
        raise DataError(
            f"test data {data.source} has a header but no rows",
            hint="add the held-out rows (with the target column)",
        )


def _csv_chunks(data: DataFile, chunk_rows: int, text_columns: Iterable[str]) -> Iterator[pd.DataFrame]:
    import pandas as pd

    try:
        reader = pd.read_csv(data.path, chunksize=chunk_rows, dtype={name: str for name in text_columns})
        with reader:
            yield from reader
    except pd.errors.EmptyDataError as error:
        raise DataError(
            f"test data {data.source} is empty (no header line)",
            hint="write the held-out rows with a header line into it",
        ) from error
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"test data {data.source} cannot be read as CSV: {first}",
            hint="save it as UTF-8 CSV with a header line, or as Parquet",
        ) from error


def _parquet_chunks(data: DataFile, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise DataError(
            f"test data {data.source} is Parquet, which needs pyarrow",
            hint="pip install pyarrow (or save the test data as CSV)",
        ) from error
    try:
        parquet = pq.ParquetFile(data.path)
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise DataError(
            f"test data {data.source} cannot be read as Parquet: {error}",
            hint="check that the file is complete and really Parquet",
        ) from error
