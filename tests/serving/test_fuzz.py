"""Property-based: rows generated from the service's own OpenAPI document are accepted; broken ones never are.

The strategies read ``/openapi.json`` (not schema.json), so these tests also check that the document states
every limit the service enforces: schema-valid data never gets a 422, invalid data never gets a 200, and
nothing gets a 5xx.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MARKED_AMOUNT, ROW


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from starlette.testclient import TestClient

    from mlship.serving import create_app

    from .conftest import write_project

    project = write_project(tmp_path_factory.mktemp("fuzz") / "p", serving={"max_batch_rows": 20})
    with TestClient(create_app(project, wait_for_model=True, log_stream=open("/dev/null", "w"))) as client:
        yield client, client.get("/openapi.json").json()


def value_strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    options: list[st.SearchStrategy[Any]] = []
    for kind in kinds:
        if kind == "null":
            options.append(st.none())
        elif "enum" in schema:
            options.append(st.sampled_from([v for v in schema["enum"] if v is not None]))
        elif kind == "number":
            low, high = schema["minimum"], schema["maximum"]
            options.append(st.floats(low, high, allow_nan=False, allow_infinity=False))
            options.append(st.integers(math.ceil(max(low, -(2**63))), math.floor(min(high, 2**63 - 1))))
        elif kind == "integer":
            options.append(st.integers(int(schema["minimum"]), int(schema["maximum"])))
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "string":
            options.append(st.text(max_size=20))
    return st.one_of(options)


def rows_strategy(document: dict[str, Any]) -> st.SearchStrategy[Any]:
    schemas = document["components"]["schemas"]
    properties = schemas["Row"]["properties"]
    row = st.fixed_dictionaries({name: value_strategy(spec) for name, spec in properties.items()}).filter(
        lambda r: r.get("amount") != MARKED_AMOUNT  # the fixture model fails on purpose on that one
    )
    return st.one_of(row, st.lists(row, min_size=1, max_size=schemas["Rows"]["maxItems"]))


WRONG_VALUES = ["text", True, None, [], {}, 1e300, -1e300, 10**18, 0.5]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_schema_valid_bodies_are_always_answered_200(served: Any, data: st.DataObject) -> None:
    client, document = served
    body = data.draw(rows_strategy(document))
    response = client.post("/predict", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    expected = 1 if isinstance(body, dict) else len(body)
    assert len(response.json()["predictions"]) == expected


def _violates(spec: dict[str, Any], value: Any) -> bool:
    """Does ``value`` break this property's schema (so that the service must refuse it)?"""
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if value is None:
        return "null" not in kinds
    if isinstance(value, bool):
        return "boolean" not in kinds
    if isinstance(value, (int, float)) and ("number" in kinds or "integer" in kinds):
        if "integer" in kinds and not float(value).is_integer():
            return True
        return not spec["minimum"] <= value <= spec["maximum"]
    if isinstance(value, str) and "string" in kinds:
        return "enum" in spec and value not in spec["enum"]
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_invalid_bodies_are_never_answered_200(served: Any, data: st.DataObject) -> None:
    client, document = served
    properties = document["components"]["schemas"]["Row"]["properties"]
    rows = data.draw(st.lists(st.just(dict(ROW)), min_size=1, max_size=5))
    index = data.draw(st.integers(0, len(rows) - 1))
    how = data.draw(
        st.sampled_from(["wrong value", "missing", "extra", "not an object", "too many", "bytes"])
    )
    if how == "wrong value":
        field = data.draw(st.sampled_from(sorted(properties)))
        value = data.draw(st.sampled_from(WRONG_VALUES) | st.text(max_size=5))
        if not _violates(properties[field], value):
            value = "surely not valid"
        rows[index][field] = value
        expected = {422}
    elif how == "missing":
        del rows[index][data.draw(st.sampled_from(sorted(properties)))]
        expected = {422}
    elif how == "extra":
        rows[index][data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in properties))] = 1
        expected = {422}
    elif how == "not an object":
        rows[index] = data.draw(st.sampled_from([1, "row", [], None]))  # type: ignore[call-overload]
        expected = {422}
    elif how == "too many":
        rows = rows * 21
        expected = {413}
    if how == "bytes":
        content = data.draw(st.binary(max_size=50)).replace(b"{", b"")
        response = client.post("/predict", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        return
    response = client.post("/predict", content=json.dumps(rows), headers={"Content-Type": "application/json"})
    assert response.status_code in expected, (how, rows, response.text)
