"""``python -m mlship_serving --project DIR [--host H] [--port P] [--workers N]``: serve a built project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runner import serve
from .settings import AUTO, SERVICE_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlship_serving", description=__doc__)
    parser.add_argument(
        "--project",
        type=Path,
        default=Path("."),
        help=f"folder with solution.py, the artifacts, schema.json and {SERVICE_FILE}",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=None, help=f"default: serving.port from {SERVICE_FILE}")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help=f"a number, or {AUTO} (one per core); default: serving.workers from {SERVICE_FILE}",
    )
    args = parser.parse_args(argv)
    return serve(args.project, host=args.host, port=args.port, workers=args.workers)


def _workers(value: str) -> int | str:
    if value == AUTO:
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1 or {AUTO}, got {value!r}")
    return int(value)


if __name__ == "__main__":
    sys.exit(main())
