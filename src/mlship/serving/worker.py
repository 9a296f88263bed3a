"""One worker process: a uvicorn server on the supervisor's socket (``python -m <package>.worker``)."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from . import hidden  # noqa: F401 - first of the package: hides what the image will not have
from .app import create_app
from .handoff import RECYCLE_EXIT, STARTUP_FAILED, graceful_timeout, info_from_env
from .loading import StartupError
from .logs import JsonLog, uvicorn_log_config
from .protocol import http_protocol
from .settings import ServiceInfo

PR_SET_PDEATHSIG = 1


def run_worker(
    project_dir: Path,
    info: ServiceInfo | None,
    sock: socket.socket,
    ready_fd: int | None,
    background: bool,
) -> int:
    """Serve on ``sock`` until SIGTERM/SIGINT; return 0, or 3 when the model cannot be loaded.

    ``background``: accept connections at once and load the model in a thread (readiness 503 meanwhile);
    otherwise load first, then accept. Readiness is reported by writing to ``ready_fd``.
    """
    failed: list[str] = []
    recycled: list[str] = []
    server: uvicorn.Server | None = None

    def on_ready() -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"1")

    def on_fatal(message: str) -> None:
        failed.append(message)
        if server is not None:
            server.should_exit = True

    def on_recycle(message: str) -> None:  # a stuck main-model call: finish in-flight requests, then exit
        recycled.append(message)
        if server is not None:
            server.should_exit = True

    try:
        app = create_app(project_dir, info=info, on_ready=on_ready, on_fatal=on_fatal, on_recycle=on_recycle)
    except StartupError as error:
        JsonLog().error("startup_failed", message=str(error))
        return STARTUP_FAILED
    service = app.state.service
    if not background:
        try:
            service.preloaded = service.load()
        except StartupError as error:
            service.fail(str(error))
            return STARTUP_FAILED
    config = uvicorn.Config(
        app,
        http=http_protocol(),  # httptools with the request head bounded in size and time
        lifespan="on",
        access_log=False,
        log_config=uvicorn_log_config(),
        timeout_graceful_shutdown=int(graceful_timeout(service.settings)) + 1,
        timeout_keep_alive=5,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it handled once it has shut down; a no-op handler makes it a clean exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        server.run(sockets=[sock])
    except SystemExit as exit_:
        return int(exit_.code or 0) if not failed else STARTUP_FAILED
    if recycled and not failed:  # the stuck model thread cannot be joined: leave without waiting for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(RECYCLE_EXIT)
    return STARTUP_FAILED if failed else 0


def end_with_supervisor(supervisor: int) -> None:
    """SIGTERM this worker when its supervisor dies, even by SIGKILL (Linux), so none is left serving."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: a worker outlives a killed supervisor there
    if os.getppid() != supervisor:  # it died before prctl took effect
        sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker", description=__doc__)
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket, inherited")
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--supervisor", type=int, default=None, help="the supervisor's pid")
    args = parser.parse_args(argv)
    if args.supervisor is not None:
        end_with_supervisor(args.supervisor)
    sock = socket.socket(fileno=args.fd)
    return run_worker(args.project, info_from_env(), sock, args.ready_fd, args.background)


if __name__ == "__main__":
    sys.exit(main())
