"""mlship.adapters.engine against fake engines: tiny Docker-API servers on unix sockets, real SDK."""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mlship.adapters import engine as image
from mlship.adapters.credentials import Credentials, registry_credentials
from mlship.adapters.engine import core as engine_core
from mlship.adapters.engine import images as engine_images
from mlship.errors import BuildFailed, EngineUnavailable, ExitCode, RegistryError

Stream = list[dict[str, Any]]


class _QuietUnixServer(socketserver.ThreadingUnixStreamServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the "engine dies mid-build" case breaks connections on purpose


@dataclass
class FakeEngine:
    """Answers /_ping, /version, /build, /images/{name}/json and /images/{name}/push like podman does."""

    socket_path: Path
    name: str = "Podman Engine"
    build_stream: Stream = field(default_factory=list)
    failed_builds: list[Stream] = field(default_factory=list)  # answered, in order, before build_stream
    push_stream: Stream = field(default_factory=list)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    die_mid_build: bool = False
    pings: int = 0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _server: socketserver.UnixStreamServer | None = None

    def start(self) -> FakeEngine:
        engine = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                engine._handle(self, "GET")

            def do_HEAD(self) -> None:
                engine._handle(self, "HEAD")

            def do_POST(self) -> None:
                engine._handle(self, "POST")

        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self._server = _QuietUnixServer(str(self.socket_path), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.socket_path.unlink(missing_ok=True)

    # --- HTTP ---

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?")[0]
        parts = path.split("/")
        if len(parts) > 1 and parts[1].startswith("v1."):
            path = "/" + "/".join(parts[2:])
        self.requests.append((method, handler.path, dict(handler.headers)))
        self._drain_body(handler)
        if path == "/_ping":
            self.pings += 1
            return self._send(handler, 200, b"OK", "text/plain")
        if path == "/version":
            version = {
                "Version": "4.3.1",
                "ApiVersion": "1.41",
                "Os": "linux",
                "Arch": "amd64",
                "Components": [{"Name": self.name, "Version": "4.3.1"}],
            }
            if self.name != "Podman Engine":
                version["Platform"] = {"Name": self.name}
            return self._send(handler, 200, json.dumps(version).encode())
        if path == "/build":
            if self.failed_builds:
                return self._stream(handler, self.failed_builds.pop(0))
            return self._stream(handler, self.build_stream, die=self.die_mid_build)
        if path.startswith("/images/") and path.endswith("/push"):
            return self._stream(handler, self.push_stream)
        if path.startswith("/images/") and path.endswith("/json"):
            name = path[len("/images/") : -len("/json")]
            if name in self.images:
                return self._send(handler, 200, json.dumps(self.images[name]).encode())
            return self._send(handler, 404, json.dumps({"message": f"no such image {name}"}).encode())
        return self._send(handler, 404, b'{"message": "not found"}')

    @staticmethod
    def _drain_body(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(handler.rfile.readline().strip() or b"0", 16)
                handler.rfile.read(size + 2)
                if size == 0:
                    break
        elif handler.headers.get("Content-Length"):
            handler.rfile.read(int(handler.headers["Content-Length"]))

    @staticmethod
    def _send(handler: Any, status: int, body: bytes, content_type: str = "application/json") -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _stream(self, handler: Any, items: Stream, die: bool = False) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for item in items:
            data = json.dumps(item).encode() + b"\r\n"
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()
        if die:  # the engine process goes away mid-stream: no final chunk, socket gone
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
            self.socket_path.unlink(missing_ok=True)
            threading.Thread(target=self.stop, daemon=True).start()
            handler.close_connection = True
            return
        handler.wfile.write(b"0\r\n\r\n")


@pytest.fixture(autouse=True)
def isolated_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No real engine is ever found: every well-known socket points into tmp_path."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.setattr(engine_core, "DOCKER_SOCKET", tmp_path / "var-run" / "docker.sock")
    monkeypatch.setattr(
        engine_core, "DOCKER_DESKTOP_SOCKET", tmp_path / "home" / ".docker" / "run" / "docker.sock"
    )
    monkeypatch.setattr(engine_core, "PODMAN_ROOT_SOCKET", tmp_path / "run-podman" / "podman.sock")
    image.forget_engine()
    yield
    image.forget_engine()


@pytest.fixture
def engines() -> Iterator[Callable[..., FakeEngine]]:
    started: list[FakeEngine] = []

    def start(path: Path, **kwargs: Any) -> FakeEngine:
        engine = FakeEngine(path, **kwargs).start()
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()


@pytest.fixture
def engine(tmp_path: Path, engines: Callable[..., FakeEngine], monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = engines(tmp_path / "engine.sock")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{fake.socket_path}")
    return fake


def _stale_socket(path: Path) -> None:
    """A socket file nobody listens on (what a crashed daemon leaves behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))


# --- discovery ---


def test_docker_host_alone_when_set() -> None:
    candidates = image.engine_candidates(
        {"DOCKER_HOST": "tcp://10.0.0.1:2375", "XDG_RUNTIME_DIR": "/run/user/1"}
    )
    assert [(c.url, c.source) for c in candidates] == [("tcp://10.0.0.1:2375", "DOCKER_HOST")]


def test_candidates_order_docker_first_then_podman(tmp_path: Path) -> None:
    urls = [c.url for c in image.engine_candidates({"XDG_RUNTIME_DIR": "/run/user/1000"})]
    assert urls == [
        f"unix://{tmp_path}/var-run/docker.sock",
        f"unix://{tmp_path}/home/.docker/run/docker.sock",
        "unix:///run/user/1000/docker.sock",
        "unix:///run/user/1000/podman/podman.sock",
        f"unix://{tmp_path}/run-podman/podman.sock",
    ]


def test_first_answering_socket_wins(tmp_path: Path, engines: Callable[..., FakeEngine]) -> None:
    _stale_socket(engine_core.DOCKER_SOCKET)
    rootless = engines(tmp_path / "xdg" / "podman" / "podman.sock")
    rootful = engines(engine_core.PODMAN_ROOT_SOCKET)
    info = image.engine_info()
    assert info.source == "rootless podman socket"
    assert info.url == f"unix://{rootless.socket_path}"
    assert info.name == "podman" and info.version == "4.3.1" and info.api_version == "1.41"
    assert "podman 4.3.1" in str(info)
    assert rootful.pings == 0


def test_docker_socket_comes_before_podman(engines: Callable[..., FakeEngine]) -> None:
    engines(engine_core.DOCKER_SOCKET, name="Docker Engine - Community")
    podman = engines(engine_core.PODMAN_ROOT_SOCKET)
    info = image.engine_info()
    assert (info.source, info.name) == ("docker socket", "Docker Engine - Community")
    assert podman.pings == 0


def test_client_is_cached_per_process(engine: FakeEngine) -> None:
    first = image.connect()
    assert image.connect() is first
    assert engine.pings == 1


def test_no_engine_names_every_place_tried_and_what_to_start(tmp_path: Path) -> None:
    _stale_socket(engine_core.PODMAN_ROOT_SOCKET)
    with pytest.raises(EngineUnavailable) as caught:
        image.connect()
    error = caught.value
    assert error.exit_code == ExitCode.NO_ENGINE == 6
    assert "\n" not in error.message
    assert str(engine_core.DOCKER_SOCKET) in error.message and "no such socket" in error.message
    assert f"{engine_core.PODMAN_ROOT_SOCKET} (connection refused)" in error.message
    assert "podman system service" in (error.hint or "") and "systemctl start docker" in (error.hint or "")


def test_dead_docker_host_is_not_silently_replaced(
    tmp_path: Path, engines: Callable[..., FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    engines(engine_core.PODMAN_ROOT_SOCKET)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/gone.sock")
    with pytest.raises(EngineUnavailable) as caught:
        image.connect()
    assert "gone.sock" in caught.value.message
    assert "DOCKER_HOST is set" in (caught.value.hint or "")


# --- build ---


def _context(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM localhost/pybase:bookworm\nRUN exit 3\n")
    return context


IMAGE_ID = "sha256:" + "ab" * 32


def test_build_streams_every_line_and_describes_the_image(tmp_path: Path, engine: FakeEngine) -> None:
    engine.build_stream = [
        {"stream": "STEP 1/3: FROM localhost/pybase:bookworm\n"},
        {"stream": "STEP 2/3: RUN pip install x\n"},
        {"stream": "--> Using cache 0123\n"},
        {"stream": "STEP 3/3: COPY . /app\n"},
        {"stream": "line a\nline b\n"},
        {"aux": {"ID": IMAGE_ID}},
        {"stream": "Successfully tagged localhost/m:1\n"},
    ]
    engine.images["localhost/m:1"] = {"Id": IMAGE_ID, "Size": 123456, "RootFS": {"Layers": ["a", "b", "c"]}}
    lines: list[str] = []
    built = image.build(_context(tmp_path), "localhost/m:1", labels={"x": "1"}, on_log=lines.append)
    assert lines == [
        "STEP 1/3: FROM localhost/pybase:bookworm",
        "STEP 2/3: RUN pip install x",
        "--> Using cache 0123",
        "STEP 3/3: COPY . /app",
        "line a",
        "line b",
        "Successfully tagged localhost/m:1",
    ]
    assert (built.ref, built.id, built.size_bytes, built.layers) == ("localhost/m:1", IMAGE_ID, 123456, 3)
    assert (built.steps, built.cached_steps) == (3, 1)
    build_request = next(path for method, path, _ in engine.requests if "/build" in path)
    for param in ("rm=True", "forcerm=True", "pull=False", "t=localhost%2Fm%3A1"):
        assert param in build_request, param


def test_failed_step_names_the_step_and_the_tail_of_its_log(tmp_path: Path, engine: FakeEngine) -> None:
    engine.build_stream = [
        {"stream": "STEP 1/3: FROM localhost/pybase:bookworm\n"},
        {"stream": "STEP 2/3: RUN pip install -r requirements.txt\n"},
        {"stream": "\n".join(f"noise {i}" for i in range(30)) + "\n"},
        {"stream": "ERROR: No matching distribution found for nosuchpkg==9\n"},
        {
            "errorDetail": {
                "message": 'building at STEP "RUN pip install -r requirements.txt": exit status 1\n'
            },
            "error": 'building at STEP "RUN pip install -r requirements.txt": exit status 1\n',
        },
    ]
    with pytest.raises(image.BuildStepFailed) as caught:
        image.build(_context(tmp_path), "localhost/m:1")
    error = caught.value
    assert isinstance(error, BuildFailed) and error.exit_code == ExitCode.BUILD_FAILED == 7
    assert "\n" not in error.message
    assert (
        "step 2/3 `RUN pip install -r requirements.txt`" in error.message and "exit status 1" in error.message
    )
    assert error.step == "RUN pip install -r requirements.txt"
    assert error.log_tail[-1] == "ERROR: No matching distribution found for nosuchpkg==9"
    assert len(error.log_tail) <= image.LOG_TAIL_LINES
    assert "noise 29" in (error.hint or "") and "noise 5" not in (error.hint or "")
    assert "STEP 1/3" not in (error.hint or "")


_CACHE_RACE = [
    {"stream": "STEP 1/2: FROM localhost/pybase:bookworm\n"},
    {"stream": "STEP 2/2: LABEL a=b\n"},
    {
        "error": "checking if cached image exists from a previous build: getting top layer info: "
        "layer not known"
    },
]


def test_a_cache_lookup_race_in_the_engine_builds_again(tmp_path: Path, engine: FakeEngine) -> None:
    engine.failed_builds = [list(_CACHE_RACE)]
    engine.build_stream = [{"stream": "STEP 1/1: FROM x\n"}, {"aux": {"ID": IMAGE_ID}}]
    engine.images["localhost/m:1"] = {"Id": IMAGE_ID, "Size": 1, "RootFS": {"Layers": ["a"]}}
    lines: list[str] = []
    built = image.build(_context(tmp_path), "localhost/m:1", on_log=lines.append)
    assert built.id == IMAGE_ID
    assert sum("/build" in path for _, path, _ in engine.requests) == 2
    assert any("building again" in line for line in lines)


def test_a_cache_race_that_persists_fails_after_the_retries(tmp_path: Path, engine: FakeEngine) -> None:
    engine.failed_builds = [list(_CACHE_RACE) for _ in range(engine_images.CACHE_RACE_RETRIES + 1)]
    with pytest.raises(image.BuildStepFailed, match="layer not known"):
        image.build(_context(tmp_path), "localhost/m:1")
    assert sum("/build" in path for _, path, _ in engine.requests) == engine_images.CACHE_RACE_RETRIES + 1


def test_error_before_any_step(tmp_path: Path, engine: FakeEngine) -> None:
    engine.build_stream = [{"error": "dockerfile parse error line 2: unknown instruction: RUNN"}]
    with pytest.raises(BuildFailed, match="before the first step: dockerfile parse error"):
        image.build(_context(tmp_path), "localhost/m:1")


def test_missing_dockerfile_fails_before_contacting_the_engine(tmp_path: Path, engine: FakeEngine) -> None:
    with pytest.raises(BuildFailed, match="no Dockerfile"):
        image.build(tmp_path, "localhost/m:1")
    assert engine.requests == []


def test_engine_dying_mid_build_is_engine_unavailable(tmp_path: Path, engine: FakeEngine) -> None:
    engine.build_stream = [
        {"stream": "STEP 1/2: FROM localhost/pybase:bookworm\n"},
        {"stream": "STEP 2/2: RUN x\n"},
    ]
    engine.die_mid_build = True
    seen: list[str] = []
    with pytest.raises(EngineUnavailable) as caught:
        image.build(_context(tmp_path), "localhost/m:1", on_log=seen.append)
    assert caught.value.exit_code == ExitCode.NO_ENGINE
    assert "localhost/m:1" in caught.value.message
    assert seen[0].startswith("STEP 1/2")


def test_parse_step() -> None:
    assert image.parse_step("STEP 2/7: RUN pip install -r r.txt") == (2, 7, "RUN pip install -r r.txt")
    assert image.parse_step("Step 3/5 : COPY . /app") == (3, 5, "COPY . /app")
    assert image.parse_step("--> Using cache 123") is None


# --- progress view ---


def test_build_progress_prints_each_step_once_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(engine_images, "console", Console(file=out, force_terminal=False, width=120))
    with image.BuildProgress("fraud-detector") as progress:
        for line in ["STEP 1/2: FROM base", "downloading...", "STEP 2/2: RUN pip install", "Successfully x"]:
            progress(line)
    text = out.getvalue()
    assert "step 1/2 FROM base" in text and "step 2/2 RUN pip install" in text
    assert "downloading" not in text
    assert progress.step == (2, 2, "RUN pip install") and progress.last_line == "Successfully x"


def test_build_progress_live_view_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(engine_images, "console", Console(file=out, force_terminal=True, width=120))
    with image.BuildProgress("fraud-detector") as progress:
        progress("STEP 1/4: FROM base")
        progress("Collecting pandas")
        assert progress._progress is not None
        task = progress._progress.tasks[0]
        assert (task.completed, task.total) == (0, 4)
        assert task.fields["last"] == "Collecting pandas"
        assert "step 1/4" in task.description
    assert progress._progress is None


# --- push ---


def test_push_returns_the_digest(engine: FakeEngine) -> None:
    digest = "sha256:" + "cd" * 32
    engine.push_stream = [
        {"status": "The push refers to repository [127.0.0.1:5000/m:v1]"},
        {"status": f"v1: digest: {digest} size: 585"},
    ]
    assert image.push("127.0.0.1:5000/m:v1") == digest
    method, path, _ = next(r for r in engine.requests if r[1].endswith("/push?tag=v1") or "/push" in r[1])
    assert "/images/127.0.0.1:5000/m/push" in path and "tag=v1" in path


def test_push_digest_from_aux_item(engine: FakeEngine) -> None:
    digest = "sha256:" + "ef" * 32
    engine.push_stream = [{"status": "Pushed"}, {"aux": {"Tag": "v1", "Digest": digest, "Size": 1}}]
    assert image.push("registry.example.com/team/m:v1") == digest


def test_push_stream_with_an_error_item_raises(engine: FakeEngine) -> None:
    engine.push_stream = [
        {"status": "The push refers to repository [127.0.0.1:5999/m:v1]"},
        {
            "errorDetail": {
                "message": 'pinging container registry 127.0.0.1:5999: Get "https://127.0.0.1:5999/v2/": '
                "dial tcp 127.0.0.1:5999: connect: connection refused"
            },
            "error": "…connection refused",
        },
        {"status": "v1: digest: sha256:" + "00" * 32 + " size: 1"},  # must never be trusted after an error
    ]
    with pytest.raises(RegistryError) as caught:
        image.push("127.0.0.1:5999/m:v1")
    assert caught.value.exit_code == ExitCode.REGISTRY_ERROR == 8
    assert "registry 127.0.0.1:5999 is unreachable" in caught.value.message
    assert "\n" not in caught.value.message


def test_push_to_plain_http_registry_hints_insecure(engine: FakeEngine) -> None:
    engine.push_stream = [
        {"error": 'Get "https://reg.lan:5000/v2/": http: server gave HTTP response to HTTPS client'}
    ]
    with pytest.raises(RegistryError) as caught:
        image.push("reg.lan:5000/m:v1")
    assert "reg.lan:5000" in caught.value.message
    assert "insecure" in (caught.value.hint or "")


def test_push_without_digest_is_an_error(engine: FakeEngine) -> None:
    engine.push_stream = [{"status": "The push refers to repository [127.0.0.1:5000/m:v1]"}]
    with pytest.raises(RegistryError, match="without the registry confirming a digest"):
        image.push("127.0.0.1:5000/m:v1")


def test_push_sends_env_credentials_and_never_shows_them(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSHIP_REGISTRY_USERNAME", "ci-bot")
    monkeypatch.setenv("MLSHIP_REGISTRY_PASSWORD", "hunter2-secret")
    engine.push_stream = [{"error": "unauthorized: authentication required"}]
    with pytest.raises(RegistryError) as caught:
        image.push("registry.example.com/team/m:v1")
    _, _, headers = next(r for r in engine.requests if "/push" in r[1])
    sent = json.loads(base64.urlsafe_b64decode(headers["X-Registry-Auth"]))
    assert (sent["username"], sent["password"]) == ("ci-bot", "hunter2-secret")
    assert "credentials" in caught.value.message
    assert "hunter2-secret" not in f"{caught.value.message} {caught.value.hint}"


# --- credentials from the docker config ---


def test_registry_credentials_env_first_then_docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    auth = base64.b64encode(b"alice:from-config").decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.delenv("MLSHIP_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("MLSHIP_REGISTRY_PASSWORD", raising=False)
    assert registry_credentials("ghcr.io") == Credentials("alice", "from-config")
    assert registry_credentials("quay.io") is None
    monkeypatch.setenv("MLSHIP_REGISTRY_USERNAME", "bob")
    monkeypatch.setenv("MLSHIP_REGISTRY_PASSWORD", "from-env")
    assert registry_credentials("ghcr.io") == Credentials("bob", "from-env")


# --- references ---


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("127.0.0.1:5000/fraud:v2", ("127.0.0.1:5000/fraud", "v2")),
        ("127.0.0.1:5000/fraud", ("127.0.0.1:5000/fraud", "latest")),
        ("fraud", ("fraud", "latest")),
        ("ghcr.io/team/fraud:git-abc123", ("ghcr.io/team/fraud", "git-abc123")),
        ("ghcr.io/team/fraud@sha256:" + "1" * 64, ("ghcr.io/team/fraud", "sha256:" + "1" * 64)),
    ],
)
def test_split_ref(ref: str, expected: tuple[str, str]) -> None:
    assert image.split_ref(ref) == expected


def test_registry_of() -> None:
    assert image.registry_of("127.0.0.1:5000/fraud:v1") == "127.0.0.1:5000"
    assert image.registry_of("localhost/pybase:bookworm") == "localhost"
    assert image.registry_of("ghcr.io/team/x") == "ghcr.io"
    assert image.registry_of("team/x:1") == "docker.io"
    assert image.registry_of("python:3.11-slim") == "docker.io"


# --- wait_ready ---


class _Ready(http.server.BaseHTTPRequestHandler):
    calls = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).calls += 1
        ready = type(self).calls >= 3 and self.path == "/health/ready"
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_wait_ready_polls_until_200() -> None:
    _Ready.calls = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert image.wait_ready(url, timeout=10) >= 0
        assert _Ready.calls == 3
        with pytest.raises(BuildFailed, match="did not answer 200 within 0.5 s"):
            image.wait_ready(url, timeout=0.5, path="/never")
    finally:
        server.shutdown()
        server.server_close()


def test_no_docker_import_at_module_level() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlship.adapters.engine, mlship.adapters.registry; "
        "print('docker' in sys.modules, 'httpx' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.stdout.split() == ["False", "False"]
