"""schema.json: inference from training data, loading, validation of a DataFrame, and the row JSON Schema."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import numpy as np  # noqa: TID253 - tests build data frames directly
import pandas as pd  # noqa: TID253
import pytest

from mlship.errors import ConfigError, DataError
from mlship.project.schema import infer_schema, infer_task, load_schema, row_json_schema
from mlship.project.validation import validate_frame


@pytest.fixture
def training() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [10.0, 20.0, np.nan, 110.0, 60.0],
            "items": [1, 2, 3, 4, 5],
            "channel": ["web", "pos", "web", "web", "app"],
            "member": [True, False, True, True, False],
        }
    )


@pytest.fixture
def schema(training: pd.DataFrame) -> dict:
    return infer_schema(training, pd.Series([0, 1, 0, 1, 1], name="is_fraud"))


def _column(schema: dict, name: str) -> dict:
    return next(column for column in schema["columns"] if column["name"] == name)


# --- inference -----------------------------------------------------------------------------------------


def test_infers_types_nullability_and_the_target(schema: dict) -> None:
    assert schema["mlship_schema"] == 1
    assert [(c["name"], c["type"], c["nullable"]) for c in schema["columns"]] == [
        ("amount", "number", True),
        ("items", "integer", False),
        ("channel", "string", False),
        ("member", "boolean", False),
    ]
    assert schema["task"] == "binary"
    assert schema["target"] == {"name": "is_fraud", "type": "integer", "classes": [0, 1]}


def test_enforced_bounds_are_the_observed_range_widened_by_its_width(schema: dict) -> None:
    amount = _column(schema, "amount")
    assert amount["observed"]["min"] == 10.0 and amount["observed"]["max"] == 110.0
    # 10..110 ± 100, but never below 0 for a column that was never negative
    assert amount["minimum"] == pytest.approx(0.0) and amount["maximum"] == pytest.approx(210.0)
    items = _column(schema, "items")
    assert (items["minimum"], items["maximum"]) == (0, 9)  # 1..5 ± 4, clipped at 0
    assert amount["observed"]["null_fraction"] == pytest.approx(0.2)


def test_quantiles_frequencies_and_categories(schema: dict) -> None:
    amount = _column(schema, "amount")
    assert set(amount["observed"]["quantiles"]) == {"0.01", "0.25", "0.5", "0.75", "0.99"}
    assert amount["observed"]["quantiles"]["0.5"] == pytest.approx(40.0)
    channel = _column(schema, "channel")
    assert channel["enum"] == ["app", "pos", "web"]
    assert channel["observed"]["frequencies"] == {"web": 0.6, "pos": 0.2, "app": 0.2}
    assert _column(schema, "member")["observed"]["frequencies"] == {"true": 0.6, "false": 0.4}


def test_no_enum_for_a_string_column_with_more_than_fifty_values() -> None:
    frame = pd.DataFrame({"city": [f"c{i}" for i in range(51)], "code": [f"k{i % 50}" for i in range(51)]})
    schema = infer_schema(frame)
    assert "enum" not in _column(schema, "city")
    assert len(_column(schema, "code")["enum"]) == 50


def test_example_row_is_json_safe_and_complete(schema: dict) -> None:
    example = schema["example"]
    assert example == {"amount": 10.0, "items": 1, "channel": "web", "member": True}
    assert json.loads(json.dumps(schema, allow_nan=False)) == schema


def test_column_names_are_strings_and_numpy_inputs_named_by_the_caller() -> None:
    matrix = np.arange(12, dtype=float).reshape(4, 3)
    schema = infer_schema(pd.DataFrame(matrix, columns=[f"x{i}" for i in range(3)]))
    assert [c["name"] for c in schema["columns"]] == ["x0", "x1", "x2"]
    assert [c["name"] for c in infer_schema(pd.DataFrame(matrix))["columns"]] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("target", "task"),
    [
        (pd.Series(np.linspace(0, 1, 100)), "regression"),
        (pd.Series(np.arange(100)), "regression"),
        (pd.Series([0.0, 1.0, 0.0, 1.0]), "binary"),
        (pd.Series(["yes", "no", "yes"]), "binary"),
        (pd.Series([0, 1, 2, 1, 0]), "multiclass"),
        (pd.Series(["a", "b", "c"]), "multiclass"),
    ],
)
def test_task_is_inferred_from_the_target(target: pd.Series, task: str) -> None:
    assert infer_task(target) == task


def test_given_task_wins_and_regression_has_no_classes() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    assert infer_schema(frame, pd.Series([0, 1, 2], name="y"), "regression")["target"] == {
        "name": "y",
        "type": "integer",
    }
    no_target = infer_schema(frame)
    assert no_target["task"] is None and no_target["target"] is None


def test_inference_refuses_an_empty_table() -> None:
    with pytest.raises(DataError, match="0 rows"):
        infer_schema(pd.DataFrame({"x": []}))


# --- loading -------------------------------------------------------------------------------------------


def test_load_round_trips_the_inferred_schema(schema: dict, tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    assert load_schema(path) == schema


def test_load_names_the_file_and_line_of_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text('{\n  "mlship_schema": 1,\n  "columns": [,]\n}')
    with pytest.raises(ConfigError, match=r"schema\.json:3: not valid JSON"):
        load_schema(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"mlship_schema": 2, "columns": [{"name": "a", "type": "number"}]}, "'mlship_schema' must be 1"),
        ({"mlship_schema": 1, "columns": []}, "'columns' must be a non-empty list"),
        ({"mlship_schema": 1, "columns": [{"name": "a", "type": "float"}]}, r"columns\[0\] \('a'\): 'type'"),
        ({"mlship_schema": 1, "columns": [{"name": "a", "type": "number"}] * 2}, "duplicate column 'a'"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_load_rejects_the_wrong_format(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message) as raised:
        load_schema(path)
    assert str(path) in raised.value.message


def test_load_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_schema(tmp_path / "nope.json")


# --- validation ----------------------------------------------------------------------------------------


def _kinds(problems: list) -> dict[tuple[str, str], int]:
    return {(p.column, p.kind): p.rows for p in problems}


def test_training_data_itself_is_valid(training: pd.DataFrame, schema: dict) -> None:
    report = validate_frame(training.assign(is_fraud=1), schema)
    assert report.ok and report.hard == [] and report.soft == []


def test_a_missing_column_is_hard(training: pd.DataFrame, schema: dict) -> None:
    report = validate_frame(training.drop(columns=["items"]), schema)
    assert not report.ok
    assert _kinds(report.hard) == {("items", "missing_column"): 0}


def test_text_in_a_numeric_column_is_hard_with_count_and_first_row(
    training: pd.DataFrame, schema: dict
) -> None:
    frame = training.astype({"amount": object})
    frame.loc[[1, 3], "amount"] = ["abc", "n/a"]
    report = validate_frame(frame, schema)
    (problem,) = report.hard
    assert (problem.column, problem.kind, problem.rows, problem.first_row) == ("amount", "wrong_type", 2, 2)
    assert "'abc'" in problem.message and "2 rows" in problem.message and "first at row 2" in problem.message


def test_numbers_read_as_text_are_accepted(training: pd.DataFrame, schema: dict) -> None:
    assert validate_frame(training.astype({"items": str}), schema).ok


def test_fractions_in_an_integer_column_and_bad_booleans_are_hard(
    training: pd.DataFrame, schema: dict
) -> None:
    frame = training.astype({"items": float, "member": object})
    frame.loc[0, "items"] = 1.5
    frame.loc[2, "member"] = "maybe"
    assert _kinds(validate_frame(frame, schema).hard) == {
        ("items", "wrong_type"): 1,
        ("member", "wrong_type"): 1,
    }


def test_nulls_only_where_training_had_some(training: pd.DataFrame, schema: dict) -> None:
    frame = training.astype({"items": float})
    frame.loc[[0, 4], "items"] = np.nan
    frame.loc[:, "amount"] = np.nan
    report = validate_frame(frame, schema)
    assert _kinds(report.hard) == {("items", "null"): 2}


def test_soft_problems_range_categories_and_extra_columns(training: pd.DataFrame, schema: dict) -> None:
    frame = training.assign(
        amount=[5000.0, -1.0, 50.0, 50.0, 50.0],
        channel=["web", "fax", "fax", "web", "tv"],
        note="x",
        is_fraud=0,
    )
    report = validate_frame(frame, schema)
    assert report.ok
    assert _kinds(report.soft) == {
        ("amount", "out_of_range"): 2,
        ("channel", "unseen_category"): 3,
        ("note", "extra_column"): 0,
    }
    unseen = next(p for p in report.soft if p.kind == "unseen_category")
    assert "'fax'" in unseen.message and "'tv'" in unseen.message and unseen.first_row == 2


def test_row_offset_and_merging_chunks(training: pd.DataFrame, schema: dict) -> None:
    frame = training.astype({"amount": object})
    frame.loc[4, "amount"] = "x"
    first = validate_frame(frame, schema, row_offset=0)
    second = validate_frame(frame, schema, row_offset=5)
    assert second.hard[0].first_row == 10
    merged = first.merge(second)
    assert (merged.hard[0].rows, merged.hard[0].first_row) == (2, 5)


def test_validation_is_vectorised(schema: dict) -> None:
    rows = 300_000
    frame = pd.DataFrame(
        {
            "amount": np.full(rows, 50.0),
            "items": np.ones(rows, dtype=int),
            "channel": np.array(["web", "pos"] * (rows // 2)),
            "member": np.ones(rows, dtype=bool),
        }
    )
    frame.loc[rows - 1, "channel"] = "fax"
    started = time.perf_counter()
    report = validate_frame(frame, schema)
    assert time.perf_counter() - started < 2.0
    assert _kinds(report.soft) == {("channel", "unseen_category"): 1}


# --- JSON Schema of one row ----------------------------------------------------------------------------


def test_row_json_schema_accepts_the_example_and_enforces_the_contract(schema: dict) -> None:
    row = row_json_schema(schema)
    validator = jsonschema.Draft202012Validator(row)
    jsonschema.Draft202012Validator.check_schema(row)
    assert validator.is_valid(schema["example"])
    assert validator.is_valid({**schema["example"], "amount": None})  # nullable
    assert validator.is_valid({**schema["example"], "items": 3.0})  # an integer written as a float
    invalid = [
        {**schema["example"], "amount": 1e6},
        {**schema["example"], "channel": "fax"},
        {**schema["example"], "items": None},
        {**schema["example"], "items": 2.5},
        {**schema["example"], "member": "yes"},
        {k: v for k, v in schema["example"].items() if k != "items"},
    ]
    assert [validator.is_valid(row) for row in invalid] == [False] * len(invalid)
    assert row["required"] == ["items", "channel", "member"]


def test_row_json_schema_without_enforcement(schema: dict) -> None:
    validator = jsonschema.Draft202012Validator(row_json_schema(schema, enforce=False, additional=False))
    assert validator.is_valid({**schema["example"], "amount": 1e6, "channel": "fax"})
    assert not validator.is_valid({**schema["example"], "extra": 1})


def test_numeric_columns_carry_exact_drift_bins() -> None:
    # a 0/1 column with 70 % zeros: the quantiles tie, the bins keep the true shares
    frame = pd.DataFrame({"flag": [0] * 70 + [1] * 30, "x": np.arange(100, dtype=float)})
    inferred = infer_schema(frame)
    flag = _column(inferred, "flag")["observed"]["bins"]
    assert flag["edges"] == [0.0, 1.0]
    assert flag["shares"] == [0.7, 0.3, 0.0]
    x = _column(inferred, "x")["observed"]["bins"]
    assert len(x["shares"]) == len(x["edges"]) + 1 == 6
    assert sum(x["shares"]) == pytest.approx(1.0)
