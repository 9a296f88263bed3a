"""Past max_concurrency the service sheds load at once (503 + Retry-After) and the requests it admits keep
their latency: measured against a real service process, with and without a crowd of extra clients."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROW, run_service

pytestmark = [pytest.mark.slow, pytest.mark.serial]

SLOTS = 4
DELAY_S = 0.02


async def _client(
    url: str, seconds: float, statuses: list[int], admitted: list[float], shed: list[float]
) -> None:
    import httpx

    row = {**ROW, "delay": DELAY_S}
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await client.post(f"{url}/predict", json=row)
            elapsed = time.perf_counter() - started
            statuses.append(response.status_code)
            if response.status_code == 200:
                admitted.append(elapsed)
            else:
                assert response.status_code == 503 and response.headers["retry-after"], response.text
                shed.append(elapsed)
                await asyncio.sleep(0.005)


def _load(url: str, clients: int, seconds: float) -> tuple[list[int], list[float], list[float]]:
    statuses: list[int] = []
    admitted: list[float] = []
    shed: list[float] = []

    async def main() -> None:
        await asyncio.gather(*(_client(url, seconds, statuses, admitted, shed) for _ in range(clients)))

    asyncio.run(main())
    return statuses, admitted, shed


def test_admitted_requests_keep_their_latency_while_the_rest_is_shed(
    make_project: Callable[..., Path],
) -> None:
    project = make_project("slow", serving={"max_concurrency": SLOTS, "timeout_s": 10})
    with run_service(project) as service:
        service.wait_ready()
        _load(service.url, SLOTS, 1.0)  # warm-up
        _, calm, calm_shed = _load(service.url, SLOTS // 2, 3.0)
        statuses, crowded, shed = _load(service.url, SLOTS * 8, 3.0)
    assert not calm_shed, "below the limit nothing should be shed"
    assert shed and 200 in statuses and set(statuses) <= {200, 503}
    calm_p50, crowded_p50 = statistics.median(calm), statistics.median(crowded)
    report: dict[str, Any] = {
        "calm_p50_ms": calm_p50 * 1e3,
        "crowded_p50_ms": crowded_p50 * 1e3,
        "shed_p50_ms": statistics.median(shed) * 1e3,
        "shed": len(shed),
    }
    # Admitted requests: at most twice as slow as without the crowd (plus slack for a loaded machine).
    assert crowded_p50 <= 2 * calm_p50 + 0.05, report
    # Shed requests are answered at once, not queued behind the model.
    assert statistics.median(shed) < DELAY_S + 0.05, report
