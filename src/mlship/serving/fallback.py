"""The spare model (``fallback:``): it answers when the main model raises, is slow, or its circuit is open.

With ``fallback`` in service.json, each worker loads a second class of solution.py (``fallback.model``)
next to ``Model`` and runs it in a thread of its own (a second ``ModelRunner``). A /predict request then:

1. goes to the spare at once (reason ``circuit-open``) while the circuit breaker is open, or while the main
   model's thread has been busy on one call for longer than ``deadline_ms`` (it is stuck: whatever is
   queued behind it would only wait out its own deadline);
2. otherwise goes to the main model, which has ``deadline_ms`` to answer; when it raises (``error``) or
   the deadline passes (``timeout``) the breaker counts a failure and the same rows go to the spare.

The answer from the spare carries ``X-Model-Fallback: <reason>`` and the spare's version
(``<release>+<class>``, e.g. ``v7+Spare``) in ``X-Model-Version`` and in the body; each one is counted in
``mlship_fallback_total{reason}``. A spare that fails too gives today's 500 (or 504 after timeout_s).

The breaker: ``failures`` errors or timeouts within ``window_s`` open it; after ``cooldown_s`` it is
half-open and lets one trial request at a time reach the main model (the others still get the spare); a
failed trial opens it again, ``successes`` successful trials in a row close it.

Worker recovery. A Python thread cannot be stopped, so a timed-out main call keeps running in the worker's
one model thread. Nothing waits for it: its request was answered by the spare and released its
concurrency slot, and since the model thread runs one call at a time there is at most one abandoned call
per worker, so ``serving.max_concurrency`` still counts exactly the requests being served. While that call
runs, new requests go straight to the spare (step 1). Should it still be running after ``recycle_after_s``
(default ``serving.timeout_s``), the worker asks to be recycled: it stops accepting connections, answers
its in-flight requests (from the spare), exits with ``RECYCLE_EXIT`` and the supervisor starts a fresh
worker in its place (which loads both models before it accepts a connection; the other workers keep
serving meanwhile).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from .asgi import HEADERS, safe_header_value
from .batching import Job, ModelRunner, Outcome
from .contract import Accepted
from .loading import LoadedModel, StartupError, import_solution
from .settings import FallbackSettings, ServiceInfo

ANSWERED_BY = "mlship.fallback"  # scope key: the FallbackAnswer of a request the spare answered
REASONS = ("error", "timeout", "circuit-open")

VERSION_HEADER = b"x-model-version"
FALLBACK_HEADER = b"x-model-fallback"

Clock = Callable[[], float]
Wait = Callable[[ModelRunner, Job, "float | None"], Awaitable[Outcome]]


class CircuitBreaker:
    """Closed → open after ``failures`` within ``window_s`` → half-open after ``cooldown_s`` → closed after
    ``successes`` trials in a row (a failed trial opens it again). Used from the event loop only."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(
        self, failures: int, window_s: float, cooldown_s: float, successes: int, clock: Clock = time.monotonic
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.successes = successes
        self._clock = clock
        self._recent: deque[float] = deque()
        self._state = self.CLOSED
        self._opened_at = 0.0
        self._trial = False  # a half-open trial request is at the main model
        self._passed = 0  # trials passed in a row

    @property
    def state(self) -> str:
        if self._state == self.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self._state = self.HALF_OPEN
            self._passed = 0
            self._trial = False
        return self._state

    def allow(self) -> bool:
        """May this request go to the main model? (Half-open: one trial at a time.)"""
        state = self.state
        if state == self.CLOSED:
            return True
        if state == self.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        if self._state == self.HALF_OPEN:
            self._trial = False
            self._passed += 1
            if self._passed >= self.successes:
                self._state = self.CLOSED
                self._recent.clear()

    def failure(self) -> None:
        now = self._clock()
        if self._state == self.HALF_OPEN:
            self._open(now)
            return
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if self._state == self.CLOSED and len(self._recent) >= self.failures:
            self._open(now)

    def release(self) -> None:
        """A trial ended without a verdict (its client left): let the next request try."""
        if self._state == self.HALF_OPEN:
            self._trial = False

    def _open(self, now: float) -> None:
        self._state = self.OPEN
        self._opened_at = now
        self._trial = False
        self._recent.clear()


class WatchedModel(LoadedModel):
    """The main model as its thread sees it: ``started`` is when the call now running began (or None)."""

    def __init__(self, loaded: LoadedModel) -> None:  # noqa: D107 - shares the loaded model's state
        self.__dict__.update(vars(loaded))
        self.started: float | None = None

    def predict(self, frame: Any, scores: bool = True) -> tuple[Any, Any]:
        self.started = time.monotonic()
        try:
            return super().predict(frame, scores)
        finally:
            self.started = None


class FallbackAnswer:
    """Who answered instead of the main model: the spare, its version header and the reason."""

    def __init__(self, model: LoadedModel, version: str, reason: str) -> None:
        self.model = model
        self.version = version
        self.reason = reason


def spare_version(info: ServiceInfo, settings: FallbackSettings) -> str:
    return f"{info.version}+{settings.model}"


def load_spare(project_dir: Path, info: ServiceInfo, fallback_classes: Any = None) -> LoadedModel:
    """Build the spare class of solution.py (already imported by the main model's load) and load it from
    the same artefacts; StartupError names the class when it is missing or its load fails."""
    settings = info.fallback
    assert settings is not None
    module = sys.modules.get(Path(info.solution).stem) or import_solution(project_dir, info)
    spare_class = getattr(module, settings.model, None)
    if not isinstance(spare_class, type) or not callable(getattr(spare_class, "predict", None)):
        raise StartupError(
            f"{info.solution}: fallback.model '{settings.model}' is not a class with a predict method"
        )
    try:
        spare = spare_class()
        loader = getattr(spare, "load", None)
        if callable(loader):
            loader((project_dir / info.artifacts).resolve())
    except (Exception, SystemExit) as error:
        raise StartupError(
            f"{info.solution}: fallback model {settings.model}.load('{info.artifacts}') failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    return LoadedModel(spare, fallback_classes)


class Fallback:
    """The policy for one worker: breaker, deadline, spare runner, counter and the recycle watchdog."""

    def __init__(
        self,
        settings: FallbackSettings,
        spare: LoadedModel,
        spare_runner: ModelRunner,
        version: str,
        registry: CollectorRegistry,
        timeout_s: float,
        on_recycle: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spare = spare
        self.runner = spare_runner
        self.version = version
        self.version_header = safe_header_value(version)
        self.deadline_s = settings.deadline_ms / 1000
        self.recycle_after_s = settings.recycle_after_s or timeout_s
        self.breaker = CircuitBreaker(
            settings.failures, settings.window_s, settings.cooldown_s, settings.successes
        )
        counter = Counter(
            "mlship_fallback",
            "Requests the spare model answered instead of the main one, by reason.",
            ["reason"],
            registry=registry,
        )
        self._counted = {reason: counter.labels(reason) for reason in REASONS}
        self._on_recycle = on_recycle
        self._recycling = False
        self._watch: asyncio.TimerHandle | None = None

    def watch(self, main: WatchedModel, loop: asyncio.AbstractEventLoop) -> None:
        """Check now and then whether the main call has run past ``recycle_after_s``; ask for a new worker."""
        period = min(1.0, max(0.05, self.recycle_after_s / 10))

        def check() -> None:
            started = main.started
            stuck = started is not None and time.monotonic() - started > self.recycle_after_s
            if stuck and not self._recycling and self._on_recycle is not None:
                self._recycling = True
                self._on_recycle(
                    f"the main model has been running one call for more than {self.recycle_after_s:g} s "
                    "(fallback.recycle_after_s); replacing this worker"
                )
            self._watch = loop.call_later(period, check)

        self._watch = loop.call_later(period, check)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self.runner.close()

    async def answer(
        self,
        main: ModelRunner,
        rows: Accepted,
        scores: bool,
        scope: MutableMapping[str, Any],
        wait: Wait,
        on_error: Callable[[Exception], None],
    ) -> Outcome:
        """The main model's outcome within the deadline, else the spare's (marking ``scope`` with who)."""
        started = getattr(main.model, "started", None)
        stuck = started is not None and time.monotonic() - started > self.deadline_s
        if stuck or not self.breaker.allow():
            reason = "circuit-open"
        else:
            job = main.submit(rows, scores=scores)
            try:
                outcome = await wait(main, job, self.deadline_s)
            except TimeoutError:
                self.breaker.failure()
                reason = "timeout"
            except Exception as error:
                if job.cancelled:  # the client left: nobody to answer, no verdict on the model
                    self.breaker.release()
                    raise
                on_error(error)
                self.breaker.failure()
                reason = "error"
            except BaseException:
                self.breaker.release()
                raise
            else:
                self.breaker.success()
                return outcome
        self._counted[reason].inc()
        scope[ANSWERED_BY] = FallbackAnswer(self.spare, self.version, reason)
        headers = [(k, v) for k, v in scope.get(HEADERS, ()) if k != VERSION_HEADER]
        scope[HEADERS] = [
            *headers,
            (VERSION_HEADER, self.version_header),
            (FALLBACK_HEADER, reason.encode("ascii")),
        ]
        return await wait(self.runner, self.runner.submit(rows, scores=scores), None)
