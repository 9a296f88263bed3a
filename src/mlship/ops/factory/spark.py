"""`mlship score --engine spark`: the same scoring over a Spark DataFrame, for data beyond one machine.

    spark.read (CSV as text, or Parquet) → contiguous row ids (per-partition offsets, no Python pass)
    → mapInPandas: split_rows against schema.json + the model's predict, per Arrow batch, in Spark's
      Python workers → scored rows to OUT (a Parquet folder), refused rows to REJECTS (a CSV folder)

The workers load the model the way the sandbox does (solution.py's Model().load(artifacts)) and hand it
exactly the frames the in-process engine does (`split_rows`), so both give the same predictions. The
master is `local[2]` unless MLSHIP_SPARK_MASTER names another; pyspark comes with `mlship[spark]`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlship.errors import UsageError
from mlship.ops.factory.rows import REASON, ROW_ID, split_rows
from mlship.ops.factory.source import ModelSource, check_input
from mlship.project.data import data_format

if TYPE_CHECKING:
    import pandas as pd

    from mlship.ops.factory.result import ScoreResult

MASTER_ENV = "MLSHIP_SPARK_MASTER"
REJECT_COLUMN = "reject_column"
_MODELS: dict[str, Any] = {}  # per Spark Python worker: the model, loaded once


def session() -> Any:
    """The Spark session (created once per process): local[2] unless MLSHIP_SPARK_MASTER says otherwise."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise UsageError(
            "--engine spark needs pyspark, which is not installed",
            hint="pip install 'mlship[spark]' (and Java 17), or score with --engine local",
        ) from error
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(os.environ.get(MASTER_ENV, "local[2]"))
        .appName("mlship-score")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


def _model(solution: str, artifacts: str) -> Any:
    key = f"{solution}|{artifacts}"
    if key not in _MODELS:
        sys.path.insert(0, str(Path(solution).parent))
        spec = importlib.util.spec_from_file_location(Path(solution).stem, solution)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {solution}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.Model()
        model.load(Path(artifacts))
        _MODELS[key] = model
    return _MODELS[key]


def _spark_type(schema: dict[str, Any]) -> Any:
    from pyspark.sql import types

    target = schema.get("target") or {}
    if schema.get("task") == "regression":
        return types.DoubleType()
    return {
        "integer": types.LongType(),
        "number": types.DoubleType(),
        "boolean": types.BooleanType(),
    }.get(str(target.get("type")), types.StringType())


def _scorer(source: ModelSource, inputs: list[str]) -> Any:
    """The mapInPandas function: one Arrow batch in, its scored and refused rows out (one frame)."""
    solution, artifacts, schema, version = (
        str(source.solution),
        str(source.artifacts),
        source.schema,
        source.version,
    )
    columns = [column["name"] for column in schema["columns"]]

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        from mlship.ops.factory.result import reason_column

        model = _model(solution, artifacts)
        for batch in batches:
            ids = batch.pop(ROW_ID).to_numpy(dtype="int64")
            valid, refused = split_rows(batch, schema, 0, "input", row_ids=ids)
            frames = []
            if len(valid):
                import numpy as np

                labels = np.asarray(model.predict(valid[columns]))
                frames.append(pd.DataFrame({ROW_ID: valid[ROW_ID].to_numpy(), "prediction": labels.ravel()}))
            if len(refused):
                refused = refused.astype({name: str for name in inputs})
                refused[REJECT_COLUMN] = refused[REASON].map(reason_column)
                frames.append(refused)
            out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({ROW_ID: []})
            out["model_version"] = version
            for name in [*inputs, REASON, REJECT_COLUMN, "prediction"]:
                if name not in out.columns:
                    out[name] = None
            texts = [*inputs, REASON, REJECT_COLUMN, "model_version"]
            yield out.astype({name: object for name in texts})  # Arrow-backed text becomes plain text

    return score_batches


def _with_row_ids(frame: Any) -> Any:
    """Row ids 0..n-1 in file order: partition offsets from per-partition counts, then the position inside
    each partition (monotonically_increasing_id's low 33 bits)."""
    from pyspark.sql import functions as F

    tagged = frame.withColumn("_pid", F.spark_partition_id()).withColumn(
        "_mid", F.monotonically_increasing_id()
    )
    counts = sorted((row["_pid"], row["count"]) for row in tagged.groupBy("_pid").count().collect())
    offsets, total = {}, 0
    for pid, count in counts:
        offsets[pid] = total
        total += count
    mapping = F.create_map(*[item for pid, offset in offsets.items() for item in (F.lit(pid), F.lit(offset))])
    position = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33)
    return tagged.withColumn(ROW_ID, (mapping[F.col("_pid")] + position).cast("long")).drop("_pid", "_mid")


def score_spark(source: ModelSource, data: Path, out: Path, rejects: Path, chunk_rows: int) -> ScoreResult:
    """Score `data` on Spark; OUT is a Parquet folder (row_id, prediction, model_version), REJECTS a CSV
    folder (the row as read, row_id, reject_reason)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types

    from mlship.ops.factory.result import MODEL_VERSION, PREDICTION, ScoreResult

    started = time.perf_counter()
    check_input(data)
    spark = session()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
    if data_format(data) == "parquet":
        frame = spark.read.parquet(str(data))
    else:  # as text: split_rows reads the values exactly as the in-process engine's checks do
        frame = spark.read.option("header", True).option("inferSchema", False).csv(str(data))
    inputs = [str(name) for name in frame.columns]
    frame = _with_row_ids(frame)
    output_schema = types.StructType(
        [
            types.StructField(ROW_ID, types.LongType()),
            types.StructField(PREDICTION, _spark_type(source.schema)),
            types.StructField(MODEL_VERSION, types.StringType()),
            *[types.StructField(name, types.StringType()) for name in inputs],
            types.StructField(REASON, types.StringType()),
            types.StructField(REJECT_COLUMN, types.StringType()),
        ]
    )
    scored = frame.mapInPandas(_scorer(source, inputs), schema=output_schema).persist()
    try:
        good = scored.where(F.col(REASON).isNull())
        good.select(ROW_ID, PREDICTION, MODEL_VERSION).write.mode("overwrite").parquet(str(out))
        bad = scored.where(F.col(REASON).isNotNull())
        bad.select(*inputs, ROW_ID, REASON).write.mode("overwrite").option("header", True).csv(str(rejects))
        reasons = {
            str(row[REJECT_COLUMN]): int(row["count"]) for row in bad.groupBy(REJECT_COLUMN).count().collect()
        }
        scored_rows = good.count()
    finally:
        scored.unpersist()
    return ScoreResult.counted(
        started,
        (data, out, rejects),
        "spark",
        scored_rows,
        sum(reasons.values()),
        model_version=source.version,
        reject_reasons=reasons,
        chunk_rows=chunk_rows,
    )
