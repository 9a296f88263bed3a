"""schemathesis against the running container built from the `mlship init` template project.

The image is built with `mlship build` on the real engine and run as a deploy would run it (read-only root,
tmpfs /tmp). schemathesis v4 reads the container's own /openapi.json and runs every check with the examples,
coverage and fuzzing phases, a bounded number of cases and a time bound: zero failures, zero 5xx.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlship.adapters import engine as image
from mlship.build.assemble import BuildResult, build_project
from tests.serving.schemathesis_run import assert_clean, require_schemathesis, run_schemathesis

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built_template(
    tmp_path_factory: pytest.TempPathFactory, base_image: str, init_project: Callable[[str, Path], Path]
) -> Iterator[BuildResult]:
    root = init_project("fraud-detector", tmp_path_factory.mktemp("schemathesis") / "fraud-detector")
    tag = f"mlship-test-schemathesis:{uuid.uuid4().hex[:12]}"
    result = build_project(root, tag=tag, base_image=base_image)
    yield result
    image.remove(tag)


def test_schemathesis_finds_nothing_against_the_container(
    built_template: BuildResult, tmp_path: Path
) -> None:
    require_schemathesis()
    with image.run(built_template.image_ref, read_only=True, tmpfs={"/tmp": "rw,size=64m"}) as container:
        image.wait_ready(container, timeout=120)
        assert container.url is not None
        run = run_schemathesis(container.url, tmp_path / "schemathesis", max_examples=150, max_seconds=45)
        assert container.exit_code() is None, container.logs(tail=50)  # still running
        logs = container.logs()
    assert_clean(run, min_cases=500)
    assert '"unhandled_error"' not in logs and "Traceback" not in logs, logs[-3000:]
    assert run.by_operation("GET /docs/static/{asset}")[200] > 0  # the whole surface was exercised
