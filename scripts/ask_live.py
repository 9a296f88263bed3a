"""Pull the project's `live` image from the registry, run it, and send it the schema's example row."""

from __future__ import annotations

import json
import sys

import httpx

from mlship.adapters import engine as image
from mlship.project.config import load_project
from mlship.project.schema import load_schema


def main(project_dir: str, registry: str) -> None:
    project = load_project(project_dir)
    ref = f"{registry}/{project.config.name}:live"
    image.pull(ref)
    example = load_schema(project.schema_path)["example"]
    with image.run(ref) as container:
        seconds = image.wait_ready(container, timeout=120)
        answer = httpx.post(f"{container.url}/predict", json=example, timeout=30)
        answer.raise_for_status()
    print(f"{ref} ready in {seconds:.1f} s; POST /predict {json.dumps(example)[:120]}…")
    print(json.dumps(answer.json(), indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
