"""``python -m mlship_serving --project DIR [--host H] [--port P] [--workers N]``: serve a built project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runner import serve
from .settings import SERVICE_FILE


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
        "--workers", type=int, default=None, help=f"default: serving.workers from {SERVICE_FILE}"
    )
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return serve(args.project, host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())
