"""Turn a data scientist's notebook into a tested mlship project: `convert_notebook(notebook, target_dir)`.

The notebook runs once, top to bottom, in a fresh kernel (`mlship.adapters.jupyter`). In that same kernel,
mlship's probe (`probe.py`) finds the fitted estimators and the train/held-out pairs, the rule in
`select.py` picks the model, and the probe dumps it with the held-out rows it is consistent with.
`source.py` extracts the training code into `train()`, `render.py` writes solution.py, the probe imports
that solution.py and predicts the written test data with it (so the golden predictions, the metrics and the
thresholds all come from the same execution), and `writer.py` writes the rest of the project."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlship.convert.cells import clean_cell, explicit_choices
from mlship.convert.job import Conversion
from mlship.convert.result import ConvertResult
from mlship.convert.writer import check_overwrite, install
from mlship.errors import UsageError

__all__ = ["ConvertResult", "convert_notebook"]

_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


def project_name(name: str | None, target: Path) -> str:
    """The project (image) name: `name` if given (it must be valid), else one made from the folder's name."""
    if name is not None:
        if not _NAME.fullmatch(name):
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"
            raise UsageError(
                f"'{name}' is not a valid project name (lowercase letters, digits, '.', '_', '-')",
                hint=f"use e.g. '{slug}'",
            )
        return name
    return re.sub(r"[^a-z0-9]+", "-", target.name.lower()).strip("-") or "model"


def convert_notebook(
    notebook: Path,
    target_dir: Path,
    *,
    name: str | None,
    force: bool,
    timeout_s: float = 900,
    keep_code: bool = False,
    cell_timeout_s: float | None = None,
    progress: bool = True,
) -> ConvertResult:
    """Run `notebook` and write a project for the model it trains into `target_dir`.

    Never overwrites an existing solution.py or tests/test_solution.py without `force` (UsageError listing
    them); with `keep_code` (mlship convert) they are kept and everything else is regenerated. Raises
    NotebookError when a cell fails or times out, when there is no fitted estimator, or when the rule cannot
    decide which one to ship.
    """
    from mlship.adapters.jupyter import run_notebook
    from mlship.adapters.jupyter_support import code_cells, read_notebook

    started = time.perf_counter()
    notebook = Path(notebook).resolve()
    target = Path(target_dir).resolve()
    if notebook.suffix != ".ipynb":
        raise UsageError(
            f"{notebook.name} is not a notebook (.ipynb)", hint="give the path of an .ipynb file"
        )
    nb = read_notebook(notebook)
    slug = project_name(name, target)
    kept = check_overwrite(target, force=force, keep_code=keep_code)
    cells = [clean_cell(index, source) for index, source in code_cells(nb)]
    named, tagged = explicit_choices(nb)
    inside = target != notebook.parent and target.is_relative_to(notebook.parent)
    staging = Path(tempfile.mkdtemp(prefix="mlship-convert-"))
    warmup = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlship-warmup")
    installed = warmup.submit(_warm_up)  # while the kernel runs the notebook, this process is idle
    try:
        with run_notebook(
            notebook,
            notebook=nb,
            timeout_s=timeout_s,
            cell_timeout_s=cell_timeout_s,
            setup=_install_probe,
            exclude=[target] if inside else [],
            progress=progress,
        ) as session:
            job = Conversion(session, notebook, target, staging, cells, slug, kept, installed)
            job.run(named, tagged)
            notebook_seconds = session.seconds
        files = install(staging, target, kept)
        result = job.result(files, notebook_seconds, time.perf_counter() - started)
    finally:
        warmup.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _warm_up() -> dict[str, list[str]]:
    """Map this environment's modules to their distributions (for requirements.in)."""
    from importlib import metadata

    return dict(metadata.packages_distributions())


# The probe's source files, run in this order into one module in the kernel (each part uses the ones before).
PROBE_PARTS = ("probe.py", "probe_survey.py", "probe_export.py")


def _install_probe(session: Any) -> None:
    runs = "".join(
        f"exec(compile({(Path(__file__).with_name(part)).read_text(encoding='utf-8')!r}, "
        f"'<mlship {part}>', 'exec'), __import__('sys').modules['_mlship_probe'].__dict__); "
        for part in PROBE_PARTS
    )
    code = (
        "__import__('sys').modules['_mlship_probe'] = __import__('types').ModuleType('_mlship_probe'); "
        + runs
        + f"__import__('sys').modules['_mlship_probe'].install(get_ipython(), {str(session.root / 'work')!r})"
    )
    session.call(code, what="mlship's probe setup")
