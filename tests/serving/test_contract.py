"""The input contract: every bad value is named by row and field; accepted rows become the right frame."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from mlship.serving.columns import INT64_MAX, SchemaError
from mlship.serving.contract import InputContract, InvalidRequest, TooManyRows

from .conftest import CLASSIFIER_COLUMNS, ROW


@pytest.fixture
def contract() -> InputContract:
    return InputContract.from_schema({"mlship_schema": 1, "columns": CLASSIFIER_COLUMNS, "example": ROW})


def problems(contract: InputContract, data: Any, max_rows: int = 100) -> list[tuple[Any, Any, str]]:
    with pytest.raises(InvalidRequest) as caught:
        contract.validate(data, max_rows)
    return [(p.row, p.field, p.message) for p in caught.value.problems]


def test_a_valid_row_and_batch_are_accepted_in_column_order(contract: InputContract) -> None:
    assert contract.validate(ROW, 10) == [(45.0, 3, "web", False, 0.5)]
    batch = [ROW, {**ROW, "score": None, "count": 4.0}]
    assert contract.validate(batch, 10)[1] == (45.0, 4.0, "web", False, None)


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"amount": "12"}, "amount", "expected a number, got string"),
        ({"amount": True}, "amount", "expected a number, got boolean"),
        ({"amount": None}, "amount", "null is not allowed"),
        ({"amount": -0.5}, "amount", "below the minimum 0.0"),
        ({"amount": 10000.5}, "amount", "above the maximum 10000.0"),
        ({"count": 2.5}, "count", "expected an integer, got 2.5"),
        ({"count": 101}, "count", "above the maximum 100"),
        ({"channel": "phone"}, "channel", "'phone' is not one of: 'web', 'pos'"),
        ({"channel": 3}, "channel", "expected a string, got integer"),
        ({"flag": 1}, "flag", "expected true or false, got integer"),
        ({"score": 2.0}, "score", "above the maximum 1.0"),
        ({"score": [1]}, "score", "expected a number, got array"),
    ],
)
def test_each_broken_value_is_named_by_row_and_field(
    contract: InputContract, change: dict[str, Any], field: str, fragment: str
) -> None:
    found = problems(contract, [ROW, ROW, {**ROW, **change}])
    assert len(found) == 1
    row, name, message = found[0]
    assert (row, name) == (2, field)
    assert fragment in message


def test_missing_and_unknown_fields_are_named(contract: InputContract) -> None:
    row = {k: v for k, v in ROW.items() if k != "count"}
    row["extra"] = 1
    found = problems(contract, [ROW, row])
    assert (1, "count", "missing field (required)") in found
    assert (1, "extra", "unknown field (not in the model's schema)") in found


def test_body_shape_problems(contract: InputContract) -> None:
    assert "empty list" in problems(contract, [])[0][2]
    assert problems(contract, 3)[0][:2] == (None, None)
    assert problems(contract, [ROW, "x"])[0][:2] == (1, None)
    with pytest.raises(TooManyRows, match="limit of 2 rows"):
        contract.validate([ROW] * 3, max_rows=2)


def test_malformed_json_is_a_problem_not_a_crash(contract: InputContract) -> None:
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        contract.parse(b'{"amount": ', 10)
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        contract.parse(b'{"amount": 1e999}', 10)  # infinity is not a JSON number


def test_problems_are_capped_but_counted(contract: InputContract) -> None:
    with pytest.raises(InvalidRequest) as caught:
        contract.validate([{**ROW, "amount": -1.0}] * 500, 1000)
    assert len(caught.value.problems) == 20
    assert caught.value.total > 20


def test_integer_columns_are_bounded_to_int64() -> None:
    contract = InputContract.from_schema({"columns": [{"name": "n", "type": "integer"}]})
    assert contract.validate({"n": INT64_MAX}, 1) == [(INT64_MAX,)]
    with pytest.raises(InvalidRequest, match="above the maximum"):
        contract.validate({"n": INT64_MAX + 1}, 1)


def test_frame_dtypes_follow_the_schema(contract: InputContract) -> None:
    rows = contract.validate([ROW, {**ROW, "score": None, "channel": "pos", "flag": True}], 10)
    frame = contract.frame(rows)
    assert list(frame.columns) == [c["name"] for c in CLASSIFIER_COLUMNS]
    assert str(frame["amount"].dtype) == "float64"
    assert str(frame["count"].dtype) == "int64"
    assert str(frame["flag"].dtype) == "bool"
    assert math.isnan(frame["score"].iloc[1])
    assert frame["channel"].tolist() == ["web", "pos"]


def test_all_numeric_schema_builds_one_float_block() -> None:
    contract = InputContract.from_schema({"columns": [{"name": f"f{i}", "type": "number"} for i in range(4)]})
    frame = contract.frame([(1, 2.0, 3, 4.5), (5, 6, 7, 8)])
    assert frame.to_numpy().tolist() == [[1.0, 2.0, 3.0, 4.5], [5.0, 6.0, 7.0, 8.0]]
    assert set(map(str, frame.dtypes)) == {"float64"}


def test_example_row_prefers_service_then_schema_then_synthesises() -> None:
    schema = {"columns": CLASSIFIER_COLUMNS, "example": ROW}
    contract = InputContract.from_schema(schema)
    assert contract.example_row({"x": 1}) == {"x": 1}
    assert contract.example_row() == ROW
    bare = InputContract.from_schema({"columns": CLASSIFIER_COLUMNS})
    made = bare.example_row()
    assert made["amount"] == 45.0  # the observed median
    assert made["channel"] == "web"
    bare.validate(made, 1)  # a synthesised example always satisfies the contract


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ([], "expected a JSON object"),
        ({"columns": []}, "empty"),
        ({"columns": [{"name": "a", "type": "float"}]}, "columns[0] ('a').type"),
        ({"columns": [{"name": "a", "type": "number"}, {"name": "a", "type": "number"}]}, "duplicated"),
        ({"columns": [{"name": "a", "type": "string", "minimum": 1}]}, "only number and integer"),
        ({"columns": [{"name": "a", "type": "number", "enum": ["x"]}]}, "enum"),
        ({"mlship_schema": 2, "columns": []}, "version 2"),
    ],
)
def test_a_broken_schema_is_refused_naming_the_field(schema: Any, fragment: str) -> None:
    with pytest.raises(SchemaError, match="schema.json") as caught:
        InputContract.from_schema(schema)
    assert fragment in str(caught.value)


NUMERIC = {
    "columns": [
        {"name": "x", "type": "number", "minimum": -5, "maximum": 5},
        {"name": "n", "type": "integer", "minimum": 0},
        {"name": "y", "type": "number"},
    ]
}


def test_an_all_numeric_schema_is_validated_as_one_float_block() -> None:
    import numpy as np

    contract = InputContract.from_schema(NUMERIC)
    accepted = contract.validate([{"x": 1, "n": 2, "y": 0.5}, {"x": -5.0, "n": 7.0, "y": 1e300}], 10)
    assert isinstance(accepted, np.ndarray)
    assert accepted.tolist() == [[1.0, 2.0, 0.5], [-5.0, 7.0, 1e300]]
    frame = contract.frame(accepted)
    assert [str(t) for t in frame.dtypes] == ["float64", "int64", "float64"]
    assert frame["n"].tolist() == [2, 7]


@pytest.mark.parametrize(
    ("row", "field", "fragment"),
    [
        ({"x": "1", "n": 1, "y": 0}, "x", "expected a number, got string"),
        ({"x": 1, "n": True, "y": 0}, "n", "expected an integer, got boolean"),
        ({"x": 6, "n": 1, "y": 0}, "x", "above the maximum 5"),
        ({"x": 1, "n": -1, "y": 0}, "n", "below the minimum 0"),
        ({"x": 1, "n": 1.5, "y": 0}, "n", "expected an integer, got 1.5"),
        ({"x": 1, "n": 1, "y": None}, "y", "null is not allowed"),
    ],
)
def test_the_numeric_block_falls_back_to_exact_messages(
    row: dict[str, Any], field: str, fragment: str
) -> None:
    contract = InputContract.from_schema(NUMERIC)
    found = problems(contract, [{"x": 0, "n": 0, "y": 0}, row])
    assert [(r, f) for r, f, _ in found] == [(1, field)]
    assert fragment in found[0][2]


def test_integers_beyond_2_53_are_kept_exact() -> None:
    contract = InputContract.from_schema(NUMERIC)
    big = 2**60 + 1
    accepted = contract.validate({"x": 0, "n": big, "y": 0}, 1)
    assert accepted == [(0, big, 0)]  # the exact path: a float would round it
    assert contract.frame(accepted)["n"].tolist() == [big]


def test_one_frame_from_several_requests_of_either_form() -> None:
    contract = InputContract.from_schema(NUMERIC)
    first = contract.validate([{"x": 1, "n": 2, "y": 3}], 10)
    second = contract.validate({"x": 0, "n": 2**60, "y": 1}, 10)
    frame = contract.frame(first, second)
    assert frame.to_dict("list") == {"x": [1.0, 0.0], "n": [2, 2**60], "y": [3.0, 1.0]}


# --- numbers written beyond a bound that round onto it (found by schemathesis) ---

FLOAT_MAX_AS_WRITTEN = 17976931348623157 * 10**292  # "1.7976931348623157e308", the document's bound, exactly

EXACT = {
    "columns": [
        {"name": "free", "type": "number"},  # the document states ±1.7976931348623157e308
        {"name": "n", "type": "integer"},  # the document states the int64 range
        {"name": "share", "type": "number", "minimum": 0, "maximum": 0.1, "nullable": True},
        {"name": "kind", "type": "string"},  # not all-numeric: the tuple path
    ]
}
GOOD = {"free": 1.0, "n": 1, "share": 0.05, "kind": "a"}


def _body(row: dict[str, str]) -> bytes:
    """A JSON body with some values written as raw text (more digits than a double holds)."""
    fields = {**{k: json.dumps(v) for k, v in GOOD.items()}, **row}
    return ("[" + "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}" + "]").encode()


@pytest.mark.parametrize(
    ("written", "field", "fragment"),
    [
        ({"free": str(-(FLOAT_MAX_AS_WRITTEN + 1))}, "free", "below the minimum"),
        ({"free": str(FLOAT_MAX_AS_WRITTEN + 1)}, "free", "above the maximum"),
        ({"n": str(-(2**63) - 1)}, "n", "is below the minimum -9223372036854775808"),
        ({"share": "-1e-400"}, "share", "-1E-400 is below the minimum 0"),
        ({"share": "0.1000000000000000000001"}, "share", "above the maximum 0.1"),
    ],
)
@pytest.mark.parametrize("numeric_only", [False, True])
def test_a_number_written_beyond_a_bound_is_refused_though_it_rounds_onto_it(
    written: dict[str, str], field: str, fragment: str, numeric_only: bool
) -> None:
    """The OpenAPI document's bounds are exact decimals: a number written beyond one is invalid, even when
    the double it parses to is the bound itself."""
    import orjson

    schema = {"columns": EXACT["columns"][:3] if numeric_only else EXACT["columns"]}
    contract = InputContract.from_schema(schema)
    body = _body(written)
    if numeric_only:
        body = body.replace(b', "kind": "a"', b"")
    parsed = orjson.loads(body)[0][field]
    assert parsed in (-1.7976931348623157e308, 1.7976931348623157e308, -(2**63), 0.0, 0.1)  # on the bound
    with pytest.raises(InvalidRequest) as caught:
        contract.parse(body, 10)
    assert [(p.row, p.field) for p in caught.value.problems] == [(0, field)]
    assert fragment in caught.value.problems[0].message


@pytest.mark.parametrize(
    "written",
    [
        {"free": str(-FLOAT_MAX_AS_WRITTEN)},
        {"free": "1.7976931348623157e308"},
        {"n": str(-(2**63))},
        {"share": "-0.0"},
        {"share": "1e-400"},
        {"share": "0.1"},
        {"share": "0.0999999999999999999999"},
        {"share": "null"},
    ],
)
def test_a_number_on_or_inside_a_bound_as_written_is_accepted(written: dict[str, str]) -> None:
    contract = InputContract.from_schema(EXACT)
    rows, _ = contract.parse(_body(written), 10)
    assert len(rows) == 1


@pytest.mark.parametrize("schema", ["mixed", "numeric"])
def test_the_shape_is_checked_by_field_count_and_lookup_on_either_path(schema: str) -> None:
    """Every field present and no other: a row with one field more, or one swapped, or not an object."""
    if schema == "numeric":
        contract, good = InputContract.from_schema(NUMERIC), {"x": 0, "n": 0, "y": 0}
    else:
        contract = InputContract.from_schema({"mlship_schema": 1, "columns": CLASSIFIER_COLUMNS})
        good = dict(ROW)
    name = next(iter(good))
    extra = {**good, "extra": 1}
    swapped = {**{k: v for k, v in good.items() if k != name}, "other": 1}  # as many keys, one unknown
    as_list = list(good.values())  # as many values, no names
    assert problems(contract, [good, extra]) == [(1, "extra", "unknown field (not in the model's schema)")]
    found = problems(contract, [swapped, good])
    assert (0, name, "missing field (required)") in found
    assert (0, "other", "unknown field (not in the model's schema)") in found
    assert problems(contract, [good, as_list])[0][:2] == (1, None)
    assert problems(contract, [good, None])[0][:2] == (1, None)
