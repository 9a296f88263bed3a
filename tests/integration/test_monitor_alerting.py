"""Drift end to end on the real things: a running service — a two-worker process, and a container of an image
built from the `mlship init` template — scraped by a real Prometheus (Debian package, loopback, 1 s scrape and
evaluation) with the shipped rules, alerting a real Alertmanager, which delivers to a webhook in this test."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np  # noqa: TID253 - tests build rows directly
import pytest
import yaml

from mlship.ops.monitor.rules import RuleSettings, alertmanager_example, rules_document
from tests.serving.conftest import free_port, run_service, write_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW = "10s"
PSI = "job_feature:mlship_feature_psi:10s"
DELIVERY_S = 30.0  # from the first drifted row to the webhook


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        from tests.integration.conftest import unavailable

        unavailable(f"{name} is not installed; run scripts/ops-tools.sh")
    return path


class Webhook:
    """A tiny HTTP receiver that keeps every Alertmanager notification it gets."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for message in list(self.received) for alert in message.get("alerts", [])]


@contextmanager
def process(command: list[str], log: Path, ready_url: str, timeout: float = 30.0) -> Iterator[None]:
    with log.open("wb") as sink:
        running = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if running.poll() is not None:
                raise AssertionError(f"{command[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{command[0]} not ready: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield
    finally:
        running.terminate()
        try:
            running.wait(timeout=10)
        except subprocess.TimeoutExpired:
            running.kill()
            running.wait()


def drift_project(root: Path) -> Path:
    """The serving fixture regressor, with the training reference of x1 ~ N(0, 1) in schema.json."""
    write_project(root, "regressor")
    schema = json.loads((root / "schema.json").read_text())
    training = np.random.default_rng(0).normal(size=5000)
    levels = (0.01, 0.25, 0.5, 0.75, 0.99)
    edges = np.quantile(training, levels)
    counts = np.bincount(np.searchsorted(edges, training, side="left"), minlength=6)
    schema["columns"][0]["observed"] = {
        "null_fraction": 0.0,
        "quantiles": {str(q): float(v) for q, v in zip(levels, edges, strict=True)},
        "bins": {"edges": edges.tolist(), "shares": (counts / counts.sum()).tolist()},
    }
    # x2 is always 0 (in training and in the test's traffic): its PSI stays 0
    schema["columns"][1]["observed"] = {"null_fraction": 0.0, "bins": {"edges": [0.0], "shares": [1.0, 0.0]}}
    (root / "schema.json").write_text(json.dumps(schema))
    return root


class Traffic:
    """Posts batches of ``rows(drifted)`` to the service in a thread; set ``drifted`` to move the inputs."""

    def __init__(self, url: str, rows: Callable[[bool], list[dict[str, Any]]]) -> None:
        self.url = url
        self.rows = rows
        self.drifted = False
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                rows = self.rows(self.drifted)
                answer = client.post(f"{self.url}/predict", json=rows)
                assert answer.status_code == 200, answer.text
                self.sent += len(rows)
                time.sleep(0.05)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def normal_rows(drifted: bool, rng: np.random.Generator = np.random.default_rng(1)) -> list[dict[str, Any]]:
    """x1 ~ N(0, 1) as in training, or three standard deviations away (most rows past the 99th percentile)."""
    x1 = rng.normal(size=50) + (3.0 if drifted else 0.0)
    return [{"x1": float(v), "x2": 0.0} for v in x1]


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_drifted_rows_raise_psi_fire_the_alert_and_reach_the_webhook(tmp_path: Path) -> None:
    with run_service(drift_project(tmp_path / "project"), workers=2) as service:
        service.wait_ready()
        project = tmp_path / "project"
        watch(tmp_path, service.url, normal_rows, drifted="x1", steady="x2", schema=project / "schema.json")


@pytest.fixture(scope="module")
def template_image(
    tmp_path_factory: pytest.TempPathFactory, base_image: str, init_project: Callable[[str, Path], Path]
) -> Iterator[tuple[str, Path]]:
    """The `mlship init` template project (breast-cancer data, 30 numeric features) built into an image."""
    from mlship.adapters import engine as image
    from mlship.build.assemble import build_project

    root = init_project("fraud-detector", tmp_path_factory.mktemp("monitor-image") / "fraud-detector")
    tag = f"mlship-test-monitor:{uuid.uuid4().hex[:12]}"
    result = build_project(root, tag=tag, base_image=base_image)
    print(f"\nbuilt {tag} in {result.seconds:.1f} s")
    try:
        yield tag, root
    finally:
        image.remove(tag)


def test_a_running_image_drifts_and_alerts(template_image: tuple[str, Path], tmp_path: Path) -> None:
    import pandas as pd

    from mlship.adapters import engine as image

    ref, root = template_image
    schema = json.loads((root / "schema.json").read_text())
    radius = next(c for c in schema["columns"] if c["name"] == "mean radius")
    test = pd.read_csv(root / "data" / "test.csv").drop(columns=["label"])
    records = json.loads(test.to_json(orient="records"))
    rng = np.random.default_rng(2)

    def rows(drifted: bool) -> list[dict[str, Any]]:
        batch = [dict(records[i]) for i in rng.integers(0, len(records), 50)]
        if drifted:  # the radius past the training's 99th percentile, within the enforced bounds
            for row in batch:
                row["mean radius"] = radius["observed"]["max"]
        return batch

    with image.run(ref, read_only=True, tmpfs={"/tmp": "rw,size=64m"}) as container:
        image.wait_ready(container, timeout=120)
        assert container.url is not None
        watch(tmp_path, container.url, rows, drifted="mean radius", steady="mean texture")


def watch(
    tmp_path: Path,
    url: str,
    rows: Callable[[bool], list[dict[str, Any]]],
    *,
    drifted: str,
    steady: str,
    schema: Path | None = None,
) -> None:
    """Prometheus scrapes ``url`` with the shipped rules; training-like rows, then drifted ones: the PSI of
    ``drifted`` passes the threshold and its alert reaches the webhook; ``steady`` stays calm."""
    prometheus, alertmanager = tool("prometheus"), tool("prometheus-alertmanager")
    hook = Webhook()
    settings = RuleSettings(window=WINDOW, min_rows=50).with_duration("2s")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules_document(settings)))
    am_config = alertmanager_example(hook.url)
    am_config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    (tmp_path / "alertmanager.yaml").write_text(yaml.safe_dump(am_config))
    am_port, prom_port = free_port(), free_port()
    target = url.removeprefix("http://")
    (tmp_path / "prometheus.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yaml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [{"job_name": "fraud", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    am_command = [
        alertmanager,
        f"--config.file={tmp_path / 'alertmanager.yaml'}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    ]
    prom_command = [
        prometheus,
        f"--config.file={tmp_path / 'prometheus.yaml'}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def psi(feature: str = drifted) -> float | None:
        query = f'{PSI}{{job="fraud",feature="{feature}"}}'
        result = httpx.get(f"{api}/query", params={"query": query}, timeout=5).json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def drift_alerts() -> list[dict[str, Any]]:
        return [a for a in hook.alerts() if a["labels"]["alertname"] == "MlshipFeatureDrift"]

    with (
        process(am_command, tmp_path / "am.log", f"http://127.0.0.1:{am_port}/-/ready"),
        process(prom_command, tmp_path / "prom.log", f"http://127.0.0.1:{prom_port}/-/ready"),
        Traffic(url, rows) as traffic,
    ):
        calm = wait_for(lambda: [v for v in [psi()] if v is not None and v == v], 20, "a PSI")[0]
        assert calm < settings.psi_threshold, f"PSI {calm} on training-like rows"
        assert not drift_alerts()

        traffic.drifted = True
        drifted_at = time.monotonic()
        wait_for(lambda: (psi() or 0) > settings.psi_threshold, DELIVERY_S, "the PSI to pass the threshold")
        alerts = wait_for(
            drift_alerts, DELIVERY_S - (time.monotonic() - drifted_at), "the alert at the webhook"
        )
        delivered_s = time.monotonic() - drifted_at
        final_psi, steady_psi = psi(), psi(steady)
        if schema is not None:  # the report reads the same counters from Prometheus
            from mlship.ops.monitor.report import write_report

            report = write_report(
                schema, tmp_path / "report.html", prometheus=f"http://127.0.0.1:{prom_port}", job="fraud"
            )
            by_feature = {f.feature: f for f in report.features}
            assert by_feature[drifted].psi is not None and by_feature[drifted].psi > settings.psi_threshold
            assert 0 < by_feature[drifted].rows <= traffic.sent + 50

    alert = alerts[0]
    assert alert["status"] == "firing"
    assert alert["labels"]["feature"] == drifted and alert["labels"]["job"] == "fraud"
    assert alert["annotations"]["summary"] == f"Input drift on feature {drifted} of fraud"
    assert final_psi is not None and final_psi > settings.psi_threshold
    assert steady_psi is not None and steady_psi < settings.psi_threshold
    assert not [a for a in drift_alerts() if a["labels"].get("feature") == steady]
    print(f"calm PSI {calm:.3f}, drifted PSI {final_psi:.2f}, alert at the webhook after {delivered_s:.1f} s")
