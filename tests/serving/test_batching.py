"""The model thread's batches: one model call per batch, each request getting exactly its share."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from mlship.serving.batching import Job, ModelRunner, Outcome
from mlship.serving.contract import InputContract

SCHEMA = {"columns": [{"name": "x", "type": "number"}]}


class Recorder:
    """A LoadedModel stand-in: predicts 2·x, scores (x, 1-x), and records what each call was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def predict(self, frame: Any, scores: bool = True) -> tuple[Any, np.ndarray | None]:
        self.calls.append((len(frame), scores))
        x = frame["x"].to_numpy()
        return x * 2, np.column_stack([x, 1 - x]) if scores else None


def test_one_model_call_per_batch_and_scores_only_for_the_requests_that_want_them() -> None:
    loop = asyncio.new_event_loop()
    model = Recorder()
    contract = InputContract.from_schema(SCHEMA)
    runner = ModelRunner(contract, model, loop, max_rows=100, max_wait_s=0)  # type: ignore[arg-type]
    try:
        rows = [contract.validate([{"x": float(i)}, {"x": float(i) + 0.5}], 10) for i in range(3)]
        wanted = [True, False, True]
        jobs = [Job(r, loop.create_future(), scores=w) for r, w in zip(rows, wanted, strict=True)]
        runner.run(jobs)
        assert model.calls == [(6, True)]
        for i, job in enumerate(jobs):
            assert isinstance(job.result, Outcome)
            assert job.result.predictions.tolist() == [2.0 * i, 2.0 * i + 1]
            assert (job.result.probabilities is not None) == wanted[i]
        model.calls.clear()
        runner.run([Job(rows[0], loop.create_future(), scores=False)])
        assert model.calls == [(2, False)]  # nobody wants scores: the model is not asked for them
    finally:
        runner.close()
        loop.close()
