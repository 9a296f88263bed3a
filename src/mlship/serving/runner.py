"""Running the service: one uvicorn server per worker process, under a small supervisor.

The supervisor binds the socket, starts worker 0 (which answers /health/live at once and /health/ready
with 503 until its model is loaded and self-tested), then the other workers (which load their model before
they accept a connection, so a request never reaches a worker that is not ready). A worker that dies after
it was ready (SIGKILL, OOM) is replaced; one that fails to start ends the service with exit code 3 and the
worker's one log line. SIGTERM or SIGINT: every worker finishes its in-flight requests, then exit 0.

This module imports neither pandas nor the model: the supervisor stays small and starts fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from .handoff import INFO_ENV, RECYCLE_EXIT, STARTUP_FAILED, graceful_timeout
from .logs import JsonLog
from .settings import ServiceInfo, ServiceSettings, SettingsError, cpu_affinity, usable_cpus

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GRACE_S = 30.0
# Native thread pools (BLAS, OpenMP): each worker gets its share of the cores unless the user set them.
THREAD_POOL_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the host is), inheritable by workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    ready_fd: int
    ready: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts, watches and stops the worker processes; see the module docstring."""

    def __init__(self, project_dir: Path, info: ServiceInfo, host: str, port: int, workers: int) -> None:
        self.project_dir = project_dir.resolve()
        self.info = info
        self.settings = info.serving
        self.host = host
        self.port = port
        self.count = workers
        self.log = JsonLog(role="supervisor")
        self.workers: list[_Worker] = []
        self.stopping = False
        self._metrics_dir: str | None = None

    def _handle_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            for worker in self.workers:
                _signal(worker.process, signal.SIGTERM)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[(__package__ or "").count(".") + 1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        env[INFO_ENV] = json.dumps(self.info.to_dict())
        if self._metrics_dir is not None:
            env[MULTIPROC_ENV] = self._metrics_dir
        share = str(max(1, usable_cpus() // self.count))
        for name in THREAD_POOL_ENV:
            env.setdefault(name, share)
        return env

    def _spawn(self, index: int, sock: socket.socket, background: bool) -> _Worker:
        read_fd, write_fd = os.pipe()
        command = [
            sys.executable,
            "-m",
            f"{__package__}.worker",
            "--project",
            str(self.project_dir),
            "--fd",
            str(sock.fileno()),
            "--ready-fd",
            str(write_fd),
            "--supervisor",
            str(os.getpid()),
        ]
        if background:
            command.append("--background")
        process = subprocess.Popen(command, env=self._environment(), pass_fds=(sock.fileno(), write_fd))
        cpus = sorted(cpu_affinity())
        if len(cpus) == self.count > 1:  # a core per worker: keep each on its own (warm caches, no migration)
            with contextlib.suppress(OSError):  # before the worker starts a thread, which would inherit it
                os.sched_setaffinity(process.pid, {cpus[index]})
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return _Worker(index, process, read_fd)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (→ 0) or a worker that cannot start (→ 3)."""
        sock = bind_socket(self.host, self.port)
        if self.count > 1 and not os.environ.get(MULTIPROC_ENV):
            self._metrics_dir = tempfile.mkdtemp(prefix="mlship-metrics-")
        previous = {sig: signal.signal(sig, self._handle_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.log.info(
                "listening", host=self.host, port=sock.getsockname()[1], workers=self.count, pid=os.getpid()
            )
            self.workers.append(self._spawn(0, sock, background=True))
            return self._watch(sock)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()
            sock.close()
            if self._metrics_dir is not None:
                shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _watch(self, sock: socket.socket) -> int:
        while True:
            pipes = {w.ready_fd: w for w in self.workers if not w.ready}
            if pipes:
                try:
                    readable, _, _ = select.select(list(pipes), [], [], 0.1)
                except InterruptedError:
                    readable = []
                for fd in readable:
                    if _read_ready(fd):
                        pipes[fd].ready = True
            else:
                time.sleep(0.1)
            if self.stopping:
                return 0
            if all(w.ready for w in self.workers) and len(self.workers) < self.count:
                self.workers.append(self._spawn(len(self.workers), sock, background=False))
            for worker in list(self.workers):
                code = worker.process.poll()
                if code is None:
                    continue
                if self.stopping:
                    return 0
                if code == STARTUP_FAILED or not worker.ready:
                    if code != STARTUP_FAILED:  # it died without saying why: say it once here
                        self.log.error(
                            "startup_failed",
                            message=f"worker {worker.index} exited with {_describe(code)} "
                            "before it was ready",
                        )
                    return STARTUP_FAILED
                self.log.error(
                    "worker_recycled" if code == RECYCLE_EXIT else "worker_died",
                    worker=worker.index,
                    pid=worker.process.pid,
                    exit=_describe(code),
                )
                self._forget_metrics(worker.process.pid)
                os.close(worker.ready_fd)
                self.workers[self.workers.index(worker)] = self._spawn(worker.index, sock, background=False)

    def _forget_metrics(self, pid: int) -> None:
        """A dead worker's live gauges (in-flight requests) must not count any more."""
        if self._metrics_dir is None:
            return
        for path in Path(self._metrics_dir).glob(f"gauge_live*_{pid}.db"):
            path.unlink(missing_ok=True)

    def _stop_all(self) -> None:
        for worker in self.workers:
            _signal(worker.process, signal.SIGTERM)
        deadline = time.monotonic() + graceful_timeout(self.settings) + 3
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            with contextlib.suppress(OSError):
                os.close(worker.ready_fd)


def _read_ready(fd: int) -> bool:
    try:
        return bool(os.read(fd, 16))
    except BlockingIOError:
        return False


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def serve(
    project_dir: Path | str,
    settings: ServiceSettings | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int | str | None = None,
    *,
    info: ServiceInfo | None = None,
    supervise: bool = True,
) -> int:
    """Serve the project until SIGTERM/SIGINT; return the process exit code (0, or 3 when it cannot start).

    ``info`` describes what to serve (default: the project's service.json, else defaults named after the
    folder — ``mlship serve`` passes one built from mlship.yaml); ``settings`` replaces its serving section;
    ``port`` and ``workers`` override those. With ``supervise=False`` and one worker the server runs in this
    very process (nothing replaces it after a crash).
    """
    project_dir = Path(project_dir)
    if info is None:
        try:
            info = ServiceInfo.for_project(project_dir)
        except SettingsError as error:
            JsonLog().error("startup_failed", message=str(error))
            return STARTUP_FAILED
    settings = settings or info.serving
    settings = settings.with_overrides(
        port=settings.port if port is None else port, workers=settings.workers if workers is None else workers
    )
    info = replace(info, serving=settings)
    count = settings.worker_count
    if supervise or count > 1:
        return Supervisor(project_dir, info, host, settings.port, count).run()
    from .worker import run_worker

    return run_worker(project_dir, info, bind_socket(host, settings.port), ready_fd=None, background=True)
