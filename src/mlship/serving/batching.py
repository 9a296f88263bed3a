"""Adaptive micro-batching: concurrent requests share one DataFrame and one model call, in one thread.

The event loop never runs the model. Requests queue as jobs; whenever the model thread is idle the
pending jobs (up to ``max_size`` rows) go to it as one batch, at the end of the current loop iteration.
While the model is busy, new requests accumulate and form the next batch, so the batch grows with the
load. A ready batch waits for more (never longer than ``max_wait_ms``) only when more are on their way:
requests already admitted whose body is still being read, or fewer requests than the last batch had (the
clients it answered are likely to come back). A lone client's request is therefore dispatched at once.

If a batch fails, each of its requests is run again on its own, so that one bad input fails only the
request that sent it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # noqa: TID253 - the serving runtime imports its own dependencies at module level

from .contract import Accepted, InputContract
from .loading import LoadedModel


@dataclass
class Outcome:
    """One request's share of a batch: its predictions and probability rows."""

    predictions: Any
    probabilities: np.ndarray | None


@dataclass(eq=False)
class Job:
    """One request's accepted rows, waiting for the model."""

    rows: Accepted
    future: asyncio.Future[Outcome]
    scores: bool = True  # probabilities (or decision scores) wanted too
    cancelled: bool = False  # the client left or timed out: skip it if it has not run yet
    result: Outcome | BaseException | None = field(default=None, repr=False)


BatchObserver = Callable[[int, Any], None]


class ModelRunner:
    """Owns the single model thread and the queue of jobs waiting for it."""

    def __init__(
        self,
        contract: InputContract,
        model: LoadedModel,
        loop: asyncio.AbstractEventLoop,
        *,
        max_rows: int,
        max_wait_s: float,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self.contract = contract
        self.model = model
        self.arriving = 0  # admitted requests not yet submitted (set by the endpoint)
        self._loop = loop
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._pending: deque[Job] = deque()
        self._pending_rows = 0
        self._busy = False
        self._timer: asyncio.Handle | None = None
        self._waiting = False
        self._expected = 1  # requests in the last batch: as many are likely to come back
        self._batches: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="mlship-model", daemon=True)
        self._thread.start()

    # --- event-loop side --------------------------------------------------------------------------------

    def submit(self, rows: Accepted, scores: bool = True) -> Job:
        """Queue rows for the model (``scores``: probabilities too); await ``job.future`` for the Outcome."""
        job = Job(rows, self._loop.create_future(), scores)
        self._pending.append(job)
        self._pending_rows += len(rows)
        self.kick()
        return job

    def cancel(self, job: Job) -> None:
        """The client is gone: drop the job if it has not reached the model yet."""
        job.cancelled = True
        if not job.future.done():
            job.future.cancel()

    def kick(self) -> None:
        """Dispatch at the end of this loop iteration, or wait briefly for requests on their way in.

        Deferring to the end of the iteration costs no time, and lets every request whose bytes arrived
        together (the loop reads all ready sockets before it runs the callbacks) join the same batch.
        """
        if self._busy or not self._pending:
            return
        expecting = self.arriving > 0 or len(self._pending) < self._expected
        wait = expecting and self._pending_rows < self._max_rows and self._max_wait_s > 0
        if self._timer is not None:
            if wait or not self._waiting:
                return  # already scheduled
            self._timer.cancel()  # nobody else is coming: stop waiting
        self._waiting = wait
        if wait:
            self._timer = self._loop.call_later(self._max_wait_s, self._dispatch)
        else:
            self._timer = self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy:
            return
        batch: list[Job] = []
        rows = 0
        while self._pending:
            job = self._pending[0]
            if job.cancelled:
                self._pending.popleft()
                self._pending_rows -= len(job.rows)
                continue
            if batch and rows + len(job.rows) > self._max_rows:
                break
            self._pending.popleft()
            self._pending_rows -= len(job.rows)
            batch.append(job)
            rows += len(job.rows)
        if batch:
            self._expected = len(batch)
            self._busy = True
            self._batches.put(batch)

    def _finished(self, batch: list[Job]) -> None:
        self._busy = False
        for job in batch:
            if job.future.done():
                continue
            if isinstance(job.result, BaseException):
                job.future.set_exception(job.result)
            elif job.result is not None:
                job.future.set_result(job.result)
        self.kick()

    def close(self) -> None:
        """Stop the model thread once the batch it runs (if any) is done."""
        if self._timer is not None:
            self._timer.cancel()
        self._batches.put(None)

    # --- model-thread side ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self._batches.get()
            if batch is None:
                return
            try:
                self.run(batch)
            finally:
                self._loop.call_soon_threadsafe(self._finished, batch)

    def run(self, batch: Sequence[Job]) -> None:
        """Predict for the live jobs of a batch; set each job's result (an Outcome or the exception)."""
        live = [job for job in batch if not job.cancelled]
        if not live:
            return
        rows = sum(len(job.rows) for job in live)
        scores = any(job.scores for job in live)
        try:
            frame = self.contract.frame(*(job.rows for job in live))
            predictions, probabilities = self.model.predict(frame, scores=scores)
        except Exception as error:
            if len(live) == 1:
                live[0].result = error
                return
            for job in live:  # isolate the request that broke the batch
                self.run([job])
            return
        if self._on_batch is not None:
            self._on_batch(rows, predictions)
        start = 0
        for job in live:
            end = start + len(job.rows)
            job.result = Outcome(
                predictions[start:end],
                None if probabilities is None or not job.scores else probabilities[start:end],
            )
            start = end
