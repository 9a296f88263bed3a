"""The one place output goes: human output to stderr through rich, machine output (--json) to stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(stderr=True, highlight=False)


def emit_json(payload: Any) -> None:
    """Write one JSON document to stdout (for --json); nothing else is ever written there."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()
