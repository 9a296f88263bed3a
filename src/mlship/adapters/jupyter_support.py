"""Around the Jupyter kernel: reading the notebook, the copy of its folder it runs in, choosing the kernel,
and the kernel's process tree (the kernel itself is driven by `jupyter.py`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlship.errors import NotebookError

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
_INSTALL = re.compile(
    r"^\s*(?:[!%]\s*(?:(?:sudo\s+)?(?:pip3?|conda|mamba|micromamba|apt(?:-get)?|brew|poetry|uv)\b.*\b(?:install|add)\b"
    r"|.*\bpip3?\s+install\b))",
)
_PARENT_LITERAL = re.compile(r"""(['"])(\.\.(?:[/\\][^'"\n]*)?)\1""")


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
