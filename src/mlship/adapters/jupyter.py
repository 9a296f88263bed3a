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
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlship.console import console
from mlship.errors import NotebookError

FALLBACK_KERNEL = "python3"
# Folders never worth copying next to a notebook (version control, environments, caches).
SKIPPED_FOLDERS = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".mlship",
)
LARGE_FOLDER_BYTES = 500 * 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_INSTALL = re.compile(
    r"^\s*(?:[!%]\s*(?:(?:sudo\s+)?(?:pip3?|conda|mamba|micromamba|apt(?:-get)?|brew|poetry|uv)\b.*\b(?:install|add)\b"
    r"|.*\bpip3?\s+install\b))",
)
_PARENT_LITERAL = re.compile(r"""(['"])(\.\.(?:[/\\][^'"\n]*)?)\1""")


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


def read_notebook(path: Path) -> Any:
    """Read an .ipynb file as nbformat v4; NotebookError when it is missing, not JSON or not a notebook."""
    import nbformat

    if not path.is_file():
        raise NotebookError(f"notebook {path} does not exist", hint="give the path of an .ipynb file")
    try:
        with warnings_silenced():
            notebook = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NotebookError(
            f"{path}: not a readable Jupyter notebook ({reason[:200]})",
            hint="open and save it in Jupyter, or check that the file is complete",
        ) from error
    language = _language(notebook)
    if language and language != "python":
        raise NotebookError(
            f"{path}: the notebook's language is {language}; mlship converts Python notebooks",
            hint="convert a notebook that runs on a Python kernel",
        )
    return notebook


@contextlib.contextmanager
def warnings_silenced() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _language(notebook: Any) -> str | None:
    metadata = notebook.get("metadata", {})
    language = (metadata.get("kernelspec") or {}).get("language") or (
        metadata.get("language_info") or {}
    ).get("name")
    return str(language).lower() if language else None


def code_cells(notebook: Any) -> list[tuple[int, str]]:
    """(index, source) of every non-empty code cell, in notebook order."""
    return [
        (index, str(cell.source))
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and str(cell.source).strip()
    ]


# --- the temporary copy ------------------------------------------------------------------------------------


def parent_inputs(notebook: Any, folder: Path) -> list[Path]:
    """Files and folders outside the notebook's folder that its code names with '../' paths."""
    found: list[Path] = []
    for _, source in code_cells(notebook):
        for match in _PARENT_LITERAL.finditer(source):
            candidate = (folder / match.group(2).replace("\\", "/")).resolve()
            if candidate.exists() and not candidate.is_relative_to(folder) and candidate not in found:
                found.append(candidate)
    return found


def _copy_tree(source: Path, target: Path, exclude: list[Path]) -> int:
    """Copy a folder (symlinks as links) without SKIPPED_FOLDERS and `exclude`; returns the bytes copied."""
    copied = 0
    excluded = {path.resolve() for path in exclude}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if name in SKIPPED_FOLDERS}
        base = Path(directory).resolve()
        skipped |= {name for name in names if (base / name).resolve() in excluded}
        return skipped

    def copy(src: str, dst: str) -> object:
        nonlocal copied
        copied += os.path.getsize(src) if not os.path.islink(src) else 0
        return shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, ignore=ignore, copy_function=copy, dirs_exist_ok=True)
    return copied


def stage_copy(notebook_path: Path, notebook: Any, root: Path, exclude: list[Path]) -> tuple[Path, list[str]]:
    """Copy the notebook's folder into `root` (with the '../' inputs it names mirrored around it).

    Returns the copy's folder (the kernel's working directory) and warnings.
    """
    folder = notebook_path.parent.resolve()
    outside = parent_inputs(notebook, folder)
    depth = 0
    for path in outside:
        common = Path(os.path.commonpath([folder, path]))
        depth = max(depth, len(folder.relative_to(common).parts))
    anchor = folder
    for _ in range(depth):
        anchor = anchor.parent
    workdir = root / "work" / folder.relative_to(anchor) if depth else root / "work" / folder.name
    warnings: list[str] = []
    copied = _copy_tree(folder, workdir, exclude)
    for path in outside:
        mirrored = root / "work" / path.relative_to(anchor)
        mirrored.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            copied += _copy_tree(path, mirrored, exclude)
        else:
            shutil.copy2(path, mirrored)
            copied += path.stat().st_size
    if copied > LARGE_FOLDER_BYTES:
        warnings.append(
            f"copied {copied / 1e6:,.0f} MB from the notebook's folder to run it in a temporary copy; "
            "keep large unrelated files out of the notebook's folder to make this faster"
        )
    return workdir, warnings


def neutralise_installs(source: str) -> tuple[str, list[str]]:
    """Turn `!pip install …` / `%pip install …` (and conda/apt) lines into comments; return them too."""
    skipped: list[str] = []
    output: list[str] = []
    continuing = False
    for line in source.splitlines():
        if not continuing and not _INSTALL.match(line):
            output.append(line)
            continue
        if continuing:
            skipped[-1] += " " + line.strip()
        else:
            skipped.append(line.strip())
        indent = line[: len(line) - len(line.lstrip())]
        output.append(f"{indent}pass  # mlship did not run: {line.strip()}")
        continuing = line.rstrip().endswith("\\")
    return "\n".join(output), skipped


# --- kernels -----------------------------------------------------------------------------------------------


def choose_kernel(notebook: Any) -> tuple[str, str | None, Any]:
    """The kernel to run: the notebook's own if installed, else this environment's Python 3 (and say so).

    Returns (kernel name, a note for the user or None, the KernelSpecManager to launch it with).
    """
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

    class CurrentPython(KernelSpecManager):
        """Knows one more kernel: this very interpreter with ipykernel."""

        def get_kernel_spec(self, kernel_name: str) -> Any:
            if kernel_name == "mlship-current-python":
                return KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name=f"Python {sys.version_info[0]}.{sys.version_info[1]} (mlship)",
                    language="python",
                )
            return super().get_kernel_spec(kernel_name)

    manager = CurrentPython()
    wanted = str((notebook.metadata.get("kernelspec") or {}).get("name") or "")
    if wanted:
        try:
            spec = manager.get_kernel_spec(wanted)
        except NoSuchKernel:
            spec = None
        if spec is not None:
            if str(spec.language).lower() != "python":
                raise NotebookError(
                    f"the notebook's kernel '{wanted}' runs {spec.language}; mlship converts Python "
                    "notebooks",
                    hint="convert a notebook that runs on a Python kernel",
                )
            return wanted, None, manager
    missing = f"kernel '{wanted}' is not installed here" if wanted else "the notebook names no kernel"
    note = (
        f"{missing}; running with this environment's Python {sys.version_info[0]}.{sys.version_info[1]} "
        f"({sys.executable})"
    )
    return "mlship-current-python", note, manager


def process_tree(pid: int) -> list[int]:
    """Every descendant of `pid` (children first found, then theirs), read from /proc or `ps`."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    else:
        listing = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True)
        for line in listing.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                children.setdefault(int(parts[1]), []).append(int(parts[0]))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            if child not in found:
                found.append(child)
                queue.append(child)
    return found


def is_running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():
        with contextlib.suppress(OSError):
            text = stat.read_text()
            return text[text.rfind(")") + 2 :].split()[0] != "Z"
    return True


MARK = "MLSHIP_KERNEL"  # every process the kernel starts inherits MLSHIP_KERNEL=<token> in its environment


def marked(token: str) -> list[int]:
    """Processes whose environment carries this kernel's mark: its descendants, including daemonised ones
    (re-parented to init, so out of its tree) — Linux only (/proc/PID/environ); [] elsewhere."""
    needle = f"{MARK}={token}".encode()
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_tree(pid: int, token: str | None = None) -> list[int]:
    """SIGKILL a process, its process group and all its descendants (and, with the kernel's `token`, every
    process marked with it); returns the pids signalled."""
    victims = [pid, *process_tree(pid)]
    if token is not None:
        victims += [other for other in marked(token) if other not in victims]
    with contextlib.suppress(OSError):
        group = os.getpgid(pid)
        if group != os.getpgid(0):
            os.killpg(group, signal.SIGKILL)
    for victim in reversed(victims):
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGKILL)
    return victims


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
