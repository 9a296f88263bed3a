"""The typed decode of all-numeric schemas: used when it can be, and never a different verdict or number.

``parse`` tries the typed decode first unless the decoded data is wanted (``keep_data``, as with
``serving.log_inputs``), which forces the general path. So the general path is the oracle: every body gets
the same outcome from both, bit for bit on acceptance and problem for problem on refusal.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlship.serving.contract import InputContract, InvalidRequest, TooManyRows
from mlship.serving.typed import TypedDecoder

SCHEMA = {
    "columns": [
        {"name": "x", "type": "number", "minimum": -5, "maximum": 5},
        {"name": "n", "type": "integer", "minimum": 0},
        {"name": "with space", "type": "number"},
        {"name": "class", "type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    ]
}
NAMES = [c["name"] for c in SCHEMA["columns"]]
GOOD = {"x": 1.5, "n": 2, "with space": -0.25, "class": 7}
MAX_ROWS = 5


def outcome(contract: InputContract, body: bytes, *, keep_data: bool) -> Any:
    """What parse makes of a body: the accepted rows (a block as bytes), or the refusal and its problems."""
    try:
        accepted, _ = contract.parse(body, MAX_ROWS, keep_data=keep_data)
    except InvalidRequest as refused:
        return ("refused", [(p.row, p.field, p.message) for p in refused.problems], refused.total)
    except TooManyRows as refused:
        return ("too many", str(refused))
    if isinstance(accepted, np.ndarray):
        return ("accepted", accepted.shape, accepted.tobytes())
    return ("accepted exactly", accepted)  # integers beyond 2**53 are kept as Python ints


def same_outcome(body: bytes) -> Any:
    contract = InputContract.from_schema(SCHEMA)
    general = outcome(contract, body, keep_data=True)
    assert outcome(contract, body, keep_data=False) == general
    return general


def test_the_typed_decode_takes_a_valid_row_and_batch() -> None:
    decoder = TypedDecoder(NAMES)
    one = decoder.decode(json.dumps(GOOD).encode(), MAX_ROWS)
    assert one is not None and one.tolist() == [[1.5, 2.0, -0.25, 7.0]]
    batch = decoder.decode(json.dumps([GOOD, {**GOOD, "x": -5}]).encode(), MAX_ROWS)
    assert batch is not None and batch.shape == (2, 4) and batch[1, 0] == -5.0


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "x": True},
        {**GOOD, "x": "1"},
        {**GOOD, "x": None},
        {**GOOD, "x": [1]},
        {k: v for k, v in GOOD.items() if k != "n"},
        {**GOOD, "extra": 1},
        [],
        [GOOD] * (MAX_ROWS + 1),
        [GOOD, [1, 2, 3, 4]],
        "text",
    ],
)
def test_what_the_typed_decode_does_not_take_goes_the_general_way(body: Any) -> None:
    encoded = json.dumps(body).encode()
    assert TypedDecoder(NAMES).decode(encoded, MAX_ROWS) is None
    assert same_outcome(encoded)[0] != "accepted"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x": 1e400, "n": 1, "with space": 0, "class": 0}',
        b'{"x": NaN, "n": 1, "with space": 0, "class": 0}',
        b'{"x": 1, "n": 1, "with space": 0, "class": 0} trailing',
        b'\xef\xbb\xbf{"x": 1, "n": 1, "with space": 0, "class": 0}',
        b'{"x": 01, "n": 1, "with space": 0, "class": 0}',
    ],
)
def test_malformed_or_unrepresentable_numbers_are_refused_alike(raw: bytes) -> None:
    assert TypedDecoder(NAMES).decode(raw, MAX_ROWS) is None
    assert same_outcome(raw)[0] == "refused"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"x": 6}, "x"),  # beyond a bound: the block is refused after decoding
        ({"n": 1.5}, "n"),  # not whole
        ({"n": -1}, "n"),
        ({"class": 2**60 + 1}, None),  # beyond 2**53: accepted, but only exactly, on the general path
    ],
)
def test_values_the_block_cannot_hold_get_the_general_path(row: dict[str, Any], field: str | None) -> None:
    verdict = same_outcome(json.dumps([GOOD, {**GOOD, **row}]).encode())
    if field is None:
        assert verdict == ("accepted exactly", [(1.5, 2, -0.25, 7), (1.5, 2, -0.25, 2**60 + 1)])
    else:
        assert verdict[0] == "refused" and [(r, f) for r, f, _ in verdict[1]] == [(1, field)]


def test_a_number_written_beyond_a_bound_is_refused_on_the_typed_path_too() -> None:
    body = b'{"x": 5.0000000000000000000001, "n": 0, "with space": 0, "class": 0}'
    verdict = same_outcome(body)
    assert verdict[0] == "refused" and verdict[1][0][:2] == (0, "x")


def test_duplicated_keys_and_escaped_names_read_alike() -> None:
    body = b'{"x": 1, "x": 2, "n": 1, "with\\u0020space": 3, "\\u0063lass": 4}'
    assert same_outcome(body) == ("accepted", (1, 4), np.array([[2.0, 1, 3, 4]]).tobytes())


NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)
VALUE_TEXT = st.one_of(
    NUMBER_TEXT, st.sampled_from(["true", "null", '"1"', "[]", "{}", "1e400", "-0", "-0.0"])
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    def row() -> str:
        names = draw(st.lists(st.sampled_from([*NAMES, "other"]), min_size=3, max_size=5, unique=True))
        if draw(st.booleans()):
            names = list(NAMES)  # most rows have the schema's fields, so acceptance is exercised
        return "{" + ", ".join(f"{json.dumps(name)}: {draw(VALUE_TEXT)}" for name in names) + "}"

    if draw(st.booleans()):
        return row().encode()
    return ("[" + ", ".join(row() for _ in range(draw(st.integers(0, MAX_ROWS + 1)))) + "]").encode()


@settings(max_examples=400, deadline=None)
@given(body=bodies())
def test_any_body_gets_the_same_outcome_on_either_path(body: bytes) -> None:
    same_outcome(body)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(NUMBER_TEXT, min_size=4, max_size=4))
def test_numbers_in_range_are_decoded_to_the_same_double(values: list[str]) -> None:
    body = ("{" + ", ".join(f'"{n}": {v}' for n, v in zip(["y0", "y1", "y2", "y3"], values)) + "}").encode()
    contract = InputContract.from_schema({"columns": [{"name": f"y{i}", "type": "number"} for i in range(4)]})
    general = outcome(contract, body, keep_data=True)
    assert outcome(contract, body, keep_data=False) == general
