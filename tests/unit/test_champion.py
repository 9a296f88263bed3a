"""Reading a release's model out of its image layers (a fake registry holding real tar layers): the newest
layer wins, whiteouts hide files, lower layers are never fetched once every listed file is found, and a
file that differs from the image's files manifest is refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mlship.errors import RegistryError
from mlship.ops.factory.champion import extract_model


def _layer(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue())


class FakeRegistry:
    host = "fake:5000"

    def __init__(self, layers: list[dict[str, bytes]], manifest_files: dict[str, bytes]) -> None:
        lines = "".join(
            f"{hashlib.sha256(content).hexdigest()}  {name}\n"
            for name, content in sorted(manifest_files.items())
        ).encode()
        layers = [*layers, {"app/mlship-files.sha256": lines}]
        self.blobs = {f"sha256:{i}": _layer(files) for i, files in enumerate(layers)}
        self.label = hashlib.sha256(lines).hexdigest()
        self.fetched: list[str] = []

    def manifest(self, repo: str, ref: str) -> Any:
        class Manifest:
            def json(inner) -> dict[str, Any]:  # noqa: N805
                return {"layers": [{"digest": digest} for digest in self.blobs]}

        return Manifest()

    def labels(self, repo: str, ref: str) -> dict[str, str]:
        return {"dev.mlship.files.sha256": self.label}

    def blob(self, repo: str, digest: str) -> bytes:
        self.fetched.append(digest)
        return self.blobs[digest]


PROJECT = {
    "project/solution.py": b"class Model: ...\n",
    "project/model/model.joblib": b"new weights",
    "project/schema.json": json.dumps({"columns": []}).encode(),
}


def test_the_newest_layer_wins_and_lower_layers_are_never_fetched(tmp_path: Path) -> None:
    layers = [
        {"opt/venv/huge.so": b"x" * 1000},  # the dependencies: below the model, never needed
        {
            "app/project/solution.py": PROJECT["project/solution.py"],
            "app/project/schema.json": PROJECT["project/schema.json"],
        },
        {"app/project/model/model.joblib": b"old weights", "app/project/model/stale.bin": b"gone"},
        {"app/project/model/model.joblib": b"new weights", "app/project/model/.wh.stale.bin": b""},
    ]
    registry = FakeRegistry(layers, PROJECT)
    found = extract_model(registry, "repo", "sha256:abc", tmp_path)  # type: ignore[arg-type]
    assert set(found) == {"solution.py", "model/model.joblib", "schema.json"}
    assert (tmp_path / "model" / "model.joblib").read_bytes() == b"new weights"
    assert not (tmp_path / "model" / "stale.bin").exists()
    assert "sha256:0" not in registry.fetched


def test_a_file_that_differs_from_the_manifest_is_refused(tmp_path: Path) -> None:
    layers = [{f"app/{name}": content for name, content in PROJECT.items()}]
    layers.append({"app/project/model/model.joblib": b"swapped after the build"})
    registry = FakeRegistry(layers, PROJECT)
    with pytest.raises(RegistryError, match="model/model.joblib differs from the files manifest"):
        extract_model(registry, "repo", "sha256:abc", tmp_path)  # type: ignore[arg-type]


def test_a_manifest_that_does_not_match_its_label_is_refused(tmp_path: Path) -> None:
    registry = FakeRegistry([{f"app/{name}": content for name, content in PROJECT.items()}], PROJECT)
    registry.label = "0" * 64
    with pytest.raises(RegistryError, match="does not match its label"):
        extract_model(registry, "repo", "sha256:abc", tmp_path)  # type: ignore[arg-type]
