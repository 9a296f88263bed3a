"""Run a notebook as "Restart & Run All" would: a fresh kernel, every code cell in order, in a temporary copy
of the notebook's folder (relative paths work, the user's folder stays byte-identical).

This module is the only importer of nbclient, nbformat and jupyter_client. `run_notebook` is a context
manager: it yields a `KernelSession` once every cell has run, with the kernel still alive, so that mlship's
own introspection code (`KernelSession.call`) runs in the same kernel and sees the very objects the
notebook made. On leaving, the kernel and every process it started are killed and the copy is removed.

A failing cell becomes one `NotebookError` naming the cell, its first line and the error (the last line of
the traceback, ANSI codes stripped); a timeout kills the kernel and its children.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlship.adapters.jupyter_support import (
    MARK,
    choose_kernel,
    code_cells,
    kill_tree,
    marked,
    neutralise_installs,
    read_notebook,
    stage_copy,
)
from mlship.console import console
from mlship.errors import NotebookError

FALLBACK_KERNEL = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass
class SkippedLine:
    """A package-installing line mlship did not run (it never changes the user's environment)."""

    cell: int
    line: str


@dataclass
class KernelSession:
    """A kernel that has run every cell of the notebook, alive until the `run_notebook` block ends."""

    notebook: Path
    root: Path
    workdir: Path
    scratch: Path
    kernel_name: str
    kernel_note: str | None
    executed: list[int] = field(default_factory=list)
    skipped: list[SkippedLine] = field(default_factory=list)
    library_warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    kernel_pid: int | None = None
    _client: Any = None

    def call(self, code: str, *, timeout_s: float = 300.0, what: str = "mlship's analysis") -> None:
        """Run mlship's own code in the kernel (silently, outside the history); raise on error."""

        client = self._client
        client.timeout = max(1, int(timeout_s))
        msg_id = client.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        try:
            reply = client.wait_for_reply(msg_id)
        except Exception as error:  # a timeout (CellTimeoutError), a dead kernel, a broken channel
            raise NotebookError(
                f"{self.notebook.name}: {what} did not finish in the notebook's kernel "
                f"({type(error).__name__})",
                hint="run again with 'mlship --debug …' and report it",
            ) from error
        if reply is None:
            raise NotebookError(
                f"{self.notebook.name}: {what} did not finish within {timeout_s:g} s",
                hint="the notebook's objects may be very large; report it if it persists",
            )
        content = reply["content"]
        if content.get("status") == "error":
            raise KernelCallError(
                str(content.get("ename", "Error")),
                str(content.get("evalue", "")),
                strip_ansi("\n".join(content.get("traceback", []))),
            )


class KernelCallError(Exception):
    """mlship's own code raised inside the kernel (callers turn it into a NotebookError with context)."""

    def __init__(self, ename: str, evalue: str, traceback: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks are full of them)."""
    return _ANSI.sub("", text)


def first_line(source: str, limit: int = 80) -> str:
    """The first line of code of a cell (else its first comment), shortened to `limit` characters."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith("#")]
    text = (code or lines or ["(empty cell)"])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- running -----------------------------------------------------------------------------------------------


def _failure_hint(
    ename: str, evalue: str, notebook: Any, skipped: list[SkippedLine], earlier: list[str]
) -> str:
    """What the user can do about a failing cell, from the kind of error (and warnings earlier cells gave)."""
    hint = _hint(ename, evalue, notebook, skipped)
    if earlier:
        hint += f"; earlier cells warned: {earlier[-1]}"
    return hint


def _library_warning(cell: Any, number: int) -> str | None:
    """A deprecation or Copy-on-Write warning a cell printed (old notebooks on new libraries)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") != "stream" or output.get("name") != "stderr":
            continue
        for line in strip_ansi(str(output.get("text", ""))).splitlines():
            if re.search(r"(ChainedAssignmentError|FutureWarning|DeprecationWarning)", line):
                text = line.strip()
                return f"cell {number}: {text[:160]}"
    return None


def _hint(ename: str, evalue: str, notebook: Any, skipped: list[SkippedLine]) -> str:
    if ename in ("ModuleNotFoundError", "ImportError") and "No module named" in evalue:
        module = evalue.split("'")[1].split(".")[0] if "'" in evalue else ""
        if module in ("google", "kaggle_secrets", "kaggle_datasets"):
            return (
                "this cell only works on Colab or Kaggle (drive mounts, secrets): remove or guard it, keep "
                "the data next to the notebook, then convert again"
            )
        installs = [line for line in skipped if module and module in line.line]
        if installs:
            return (
                f"the notebook installs it with `{installs[0].line}` (cell {installs[0].cell}); mlship never "
                f"installs packages: install {module} in the kernel's environment and convert again"
            )
        return f"install {module or 'it'} in the environment the kernel runs in, then convert again"
    kernel = str((notebook.metadata.get("kernelspec") or {}).get("name", ""))
    if ename == "SyntaxError" and ("print" in evalue or kernel.startswith("python2")):
        return (
            "the notebook is written for Python 2 (print statements): port it to Python 3 (e.g. print(...)), "
            "then convert again"
        )
    if ename == "FileNotFoundError":
        return (
            "the notebook runs in a temporary copy of its own folder: keep its data files in that folder "
            "(or name them with '../' paths) and use relative paths, not a Kaggle/Colab/absolute location"
        )
    api_change = (
        (ename == "TypeError" and "unexpected keyword argument" in evalue)
        or (ename == "AttributeError" and "has no attribute" in evalue)
        or (ename == "ImportError" and "cannot import name" in evalue)
        or ("is not a valid package style" in evalue)
        or ename in ("FutureWarning", "DeprecationWarning")
        or re.search(r"no longer|(was|been) removed|deprecated|renamed|does not support", evalue) is not None
    )
    if api_change:
        versions = library_versions(notebook)
        shown = f" (installed: {versions})" if versions else ""
        return (
            "the notebook was probably written for an older version of a library whose API has changed"
            f"{shown}: update the call, or install the version it was written with"
        )
    return "fix the cell so that 'Restart & Run All' works in Jupyter, then convert again"


def library_versions(notebook: Any) -> str:
    """'pandas 3.1.1, scikit-learn 1.9.1' for the libraries the notebook imports that are installed."""
    from importlib import metadata

    modules: list[str] = []
    for _, source in code_cells(notebook):
        for match in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", source, re.MULTILINE):
            if match.group(1) not in modules and match.group(1) not in sys.stdlib_module_names:
                modules.append(match.group(1))
    mapping = metadata.packages_distributions()
    shown: list[str] = []
    for module in modules:
        for distribution in mapping.get(module, [])[:1]:
            with contextlib.suppress(metadata.PackageNotFoundError):
                entry = f"{distribution} {metadata.version(distribution)}"
                if entry not in shown:
                    shown.append(entry)
    return ", ".join(shown[:6])


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]running[/]"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=console,
        transient=True,
    )


@contextlib.contextmanager
def _maybe_progress(enabled: bool) -> Iterator[Any]:
    from rich.errors import LiveError

    if not enabled:
        yield None
        return
    progress = _progress()
    try:
        progress.start()
    except LiveError:  # another conversion shows its progress in this process
        yield None
        return
    try:
        yield progress
    finally:
        progress.stop()


@contextlib.contextmanager
def run_notebook(
    path: Path,
    *,
    notebook: Any | None = None,
    timeout_s: float = 900.0,
    cell_timeout_s: float | None = None,
    setup: Callable[[KernelSession], None] | None = None,
    exclude: list[Path] | None = None,
    progress: bool = True,
) -> Iterator[KernelSession]:
    """Execute every code cell of the notebook at `path` in a fresh kernel, in a temporary copy of its folder.

    `setup` runs once the kernel is up and before the first cell (mlship installs its observers there).
    Yields the session with the kernel alive; afterwards the kernel and all its child processes are killed
    and the copy removed. Raises NotebookError for a failing cell, a timeout or a kernel that dies.
    """
    path = Path(path).resolve()
    notebook = read_notebook(path) if notebook is None else notebook
    root = Path(tempfile.mkdtemp(prefix="mlship-notebook-"))
    scratch = root / "mlship"
    scratch.mkdir()
    log: IO[bytes] | None = None
    client: Any = None
    session: KernelSession | None = None
    try:
        workdir, copy_warnings = stage_copy(path, notebook, root, exclude or [])
        for warning in copy_warnings:
            console.print(f"[yellow]note:[/] {warning}", soft_wrap=True)
        kernel_name, note, specs = choose_kernel(notebook)
        if note:
            console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
        log = (root / "kernel.log").open("wb")
        token = uuid.uuid4().hex
        client = _start_kernel(notebook, kernel_name, specs, workdir, log, path, token)
        session = KernelSession(
            notebook=path,
            root=root,
            workdir=workdir,
            scratch=scratch,
            kernel_name=kernel_name,
            kernel_note=note,
            kernel_pid=_kernel_pid(client),
            _client=client,
        )
        if setup is not None:
            setup(session)
        _run_cells(session, notebook, timeout_s, cell_timeout_s, progress)
        yield session
    finally:
        if client is not None:
            _stop_kernel(client, session.kernel_pid if session else _kernel_pid(client), token)
        if log is not None:
            log.close()
        shutil.rmtree(root, ignore_errors=True)


def _kernel_pid(client: Any) -> int | None:
    provisioner = getattr(client.km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    return int(process.pid) if process is not None else None


def _start_kernel(
    notebook: Any, kernel_name: str, specs: Any, workdir: Path, log: IO[bytes], path: Path, token: str
) -> Any:
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    manager = AsyncKernelManager(kernel_name=kernel_name, kernel_spec_manager=specs)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name=kernel_name,
        timeout=600,
        startup_timeout=120,
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    env = {
        **os.environ,
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", ""),
        MARK: token,
    }
    try:
        client.start_new_kernel(cwd=str(workdir), env=env, stdout=log, stderr=log)
        client.start_new_kernel_client()
    except Exception as error:
        with contextlib.suppress(Exception):
            _stop_kernel(client, _kernel_pid(client), token)
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NotebookError(
            f"{path.name}: cannot start the Jupyter kernel '{kernel_name}': {detail[:200]}",
            hint="check that ipykernel is installed in the kernel's environment (pip install ipykernel)",
        ) from error
    return client


def _stop_kernel(client: Any, pid: int | None, token: str) -> None:
    """Kill the kernel and every process it started; nothing is left running."""
    if pid is not None:
        kill_tree(pid, token)
    else:
        for other in marked(token):
            with contextlib.suppress(OSError):
                os.kill(other, signal.SIGKILL)
    client.shutdown_kernel = "immediate"
    with contextlib.suppress(Exception):
        client._cleanup_kernel()  # reaps the kernel process, removes its connection file, closes channels


def _run_cells(
    session: KernelSession, notebook: Any, timeout_s: float, cell_timeout_s: float | None, show: bool
) -> None:
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = session._client
    cells = code_cells(notebook)
    started = time.monotonic()
    deadline = started + timeout_s
    with _maybe_progress(show) as progress:
        task = progress.add_task("", total=len(cells)) if progress is not None else None
        for position, (index, source) in enumerate(cells):
            number = index + 1
            cell = notebook.cells[index]
            runnable, skipped = neutralise_installs(source)
            session.skipped.extend(SkippedLine(cell=number, line=line) for line in skipped)
            remaining = deadline - time.monotonic()
            per_cell = min(remaining, cell_timeout_s) if cell_timeout_s else remaining
            if progress is not None:
                progress.update(task, description=f"cell {number}: {first_line(source, 60)}")
            original = cell.source
            cell.source = runnable
            try:
                if per_cell <= 0:
                    raise CellTimeoutError("total timeout")
                client.timeout = max(1, int(per_cell))
                client.execute_cell(cell, index, execution_count=position + 1)
            except CellTimeoutError as error:
                total = per_cell >= remaining
                limit = timeout_s if total else (cell_timeout_s or timeout_s)
                what = "the notebook did not finish" if total else "the cell did not finish"
                raise NotebookError(
                    f"{session.notebook.name}: cell {number} (`{first_line(source)}`): {what} within "
                    f"{limit:g} s; the kernel and its processes were stopped",
                    hint="the cell waits for input, loops forever or trains for longer than the timeout: fix "
                    "it, or allow more time (mlship convert --timeout SECONDS)",
                ) from error
            except DeadKernelError as error:
                raise NotebookError(
                    f"{session.notebook.name}: cell {number} (`{first_line(source)}`): the kernel died "
                    "(out of memory, or a crash in a compiled library)",
                    hint="run the notebook in Jupyter to see what happens; reduce the data if memory is "
                    "short",
                ) from error
            except CellExecutionError as error:
                ename = str(getattr(error, "ename", "Error"))
                evalue = str(getattr(error, "evalue", ""))
                lines = [
                    line for line in strip_ansi(str(getattr(error, "traceback", ""))).splitlines() if line
                ]
                last = lines[-1].strip() if lines else f"{ename}: {evalue}"
                raise NotebookError(
                    f"{session.notebook.name}: cell {number} (`{first_line(source)}`) failed: {last[:300]}",
                    hint=_failure_hint(ename, evalue, notebook, session.skipped, session.library_warnings),
                ) from error
            finally:
                cell.source = original
            session.executed.append(index)
            warning = _library_warning(cell, number)
            if warning:
                session.library_warnings.append(warning)
            if progress is not None:
                progress.advance(task)
    session.seconds = time.monotonic() - started
