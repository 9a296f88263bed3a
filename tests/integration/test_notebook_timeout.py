"""Notebook execution is bounded by its timeout, and on timeout the kernel and every process it started are
killed: nothing is left running (on a real Jupyter kernel, through `mlship.adapters.jupyter.run_notebook`).

The notebooks record the pids of the kernel and of the processes they start (a child, a grandchild in a
session of its own, a multiprocessing worker) in a file outside the notebook's temporary copy, then hang.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import nbformat
import pytest

from mlship.adapters.jupyter import run_notebook
from mlship.errors import NotebookError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Unique arguments, so that a pid reused by an unrelated process is never mistaken for ours.
CHILD_SECONDS = "6001"
GRANDCHILD_SECONDS = "6002"

SPAWN = f"""\
import json, multiprocessing, os, subprocess, sys, time

def _worker():
    time.sleep(6003)

child = subprocess.Popen(["sleep", "{CHILD_SECONDS}"])
shell = subprocess.Popen(["sh", "-c", "sleep {GRANDCHILD_SECONDS} & wait"], start_new_session=True)
worker = multiprocessing.get_context("fork").Process(target=_worker)
worker.start()
time.sleep(0.5)
grandchild = [int(p) for p in open(f"/proc/{{shell.pid}}/task/{{shell.pid}}/children").read().split()]
json.dump(
    {{"kernel": os.getpid(), "child": child.pid, "shell": shell.pid, "grandchild": grandchild,
      "worker": worker.pid, "started": time.time()}},
    open(PIDS, "w"),
)
"""

HANG_IGNORING_INTERRUPTS = """\
import time
while True:
    try:
        time.sleep(1)
    except KeyboardInterrupt:
        pass  # a cell that swallows the interrupt nbclient sends first
"""


def _notebook(folder: Path, pids: Path, *cells: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(f"PIDS = {str(pids)!r}")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "hangs.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in {"Z", "X"}


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def _recorded(pids: Path) -> dict[str, object]:
    recorded: dict[str, object] = json.loads(pids.read_text())
    return recorded


def _processes(recorded: dict[str, object]) -> dict[str, int]:
    grandchildren = recorded["grandchild"]
    assert isinstance(grandchildren, list) and len(grandchildren) == 1, recorded
    names = ("kernel", "child", "shell", "worker")
    found = {name: int(str(recorded[name])) for name in names}
    found["grandchild"] = int(grandchildren[0])
    return found


def _wait_until_gone(pids: dict[str, int], seconds: float = 10.0) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while True:
        left = {name: pid for name, pid in pids.items() if _alive(pid)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("options", "limit"),
    [
        pytest.param({"timeout_s": 8}, "the notebook did not finish within 8 s", id="notebook-timeout"),
        pytest.param(
            {"timeout_s": 600, "cell_timeout_s": 6}, "the cell did not finish within 6 s", id="cell-timeout"
        ),
    ],
)
def test_a_hanging_notebook_is_stopped_at_its_timeout_with_every_process_it_started(
    tmp_path: Path, options: dict[str, float], limit: str
) -> None:
    pids_file = tmp_path / "pids.json"
    path = _notebook(tmp_path / "nb", pids_file, SPAWN, HANG_IGNORING_INTERRUPTS)

    with pytest.raises(NotebookError) as caught, run_notebook(path, progress=False, **options):
        pytest.fail("a notebook that never finishes came back")
    stopped = time.time()

    message = caught.value.message
    assert "cell 3 (`import time`)" in message and limit in message, message
    assert "the kernel and its processes were stopped" in message
    recorded = _recorded(pids_file)
    processes = _processes(recorded)
    assert _cmdline(processes["child"]) in ([], ["sleep", CHILD_SECONDS])
    assert _cmdline(processes["grandchild"]) in ([], ["sleep", GRANDCHILD_SECONDS])
    # Bounded: the hanging cell started after the spawning one; it was stopped at its limit, not later.
    budget = float(options.get("cell_timeout_s") or options["timeout_s"])
    elapsed = stopped - float(str(recorded["started"]))
    assert elapsed < budget + 5, f"stopped {elapsed:.1f} s after the cells started (limit {budget:g} s)"
    left = _wait_until_gone(processes)
    assert not left, f"still running after the timeout: {left}"


def test_processes_started_by_a_notebook_that_finishes_are_stopped_too(tmp_path: Path) -> None:
    """Leaving the `run_notebook` block normally also kills the kernel's whole process tree."""
    pids_file = tmp_path / "pids.json"
    path = _notebook(tmp_path / "nb", pids_file, SPAWN)

    with run_notebook(path, progress=False, timeout_s=120) as session:
        processes = _processes(_recorded(pids_file))
        assert session.kernel_pid == processes["kernel"]
        assert all(_alive(pid) for pid in processes.values()), processes
        workdir = session.workdir

    left = _wait_until_gone(processes)
    assert not left, f"still running after the notebook finished: {left}"
    assert not workdir.exists()


DAEMONIZE = """\
import json, subprocess, time
subprocess.run(["sh", "-c", "setsid sleep 6004 >/dev/null 2>&1 &"], check=True)
time.sleep(0.5)
daemon = [int(line.split()[0]) for line in subprocess.run(
    ["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
    if line.split()[1:] == ["sleep", "6004"]]
json.dump({"daemon": daemon}, open(PIDS, "w"))
"""


def test_a_daemonised_process_does_not_survive_the_notebook(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    path = _notebook(tmp_path / "nb", pids_file, DAEMONIZE, HANG_IGNORING_INTERRUPTS)
    with pytest.raises(NotebookError), run_notebook(path, progress=False, timeout_s=6):
        pass
    daemons = {f"daemon {pid}": pid for pid in json.loads(pids_file.read_text())["daemon"]}
    assert daemons
    left = _wait_until_gone(daemons, seconds=3)
    for pid in left.values():  # leave nothing behind, whatever the verdict
        if _cmdline(pid) == ["sleep", "6004"]:
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after the timeout: {left}"
