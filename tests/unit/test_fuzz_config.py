"""Property-based fuzzing of mlship.yaml: whatever the file holds, mlship answers with one typed error (or
runs), never a traceback, never an "unexpected error", and always an exit code of 0–8.

Three layers, from cheap to real:
- `parse_config` on generated documents, mutated valid configs and mangled YAML text: it returns a config or
  raises ConfigError with a one-line message naming the file.
- `mlship test --json` through typer's CliRunner on the same inputs, in a project whose test data has a
  header and no rows: every config is loaded, its paths resolved, schema.json and the data opened, and the
  error boundary renders the outcome (a valid config ends in "no rows", exit 1, in milliseconds).
- (slow) `mlship test` with real data and the real model process, for mutations of the values the release
  gate uses (metrics, thresholds, averaging, positive label, chunking, target).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import ConfigError
from mlship.project.config import ProjectConfig, parse_config
from mlship.project.metric_names import KNOWN_METRICS
from tests.gate_projects import make_frame, make_project

BASE: dict[str, Any] = {
    "name": "fraud-detector",
    "python": "3.11",
    "model": {"solution": "solution.py", "artifacts": "model/", "format": "joblib"},
    "schema": "schema.json",
    "evaluation": {
        "data": "data/test.csv",
        "target": "is_fraud",
        "metrics": {"f1": {"min": 0.7}, "roc_auc": {"min": 0.85}},
        "against_live": {"max_drop": 0.01},
        "timeout_s": 60,
        "chunk_rows": 100_000,
        "positive_label": 1,
    },
    "image": {
        "base": "python:3.11-slim",
        "registry": "127.0.0.1:5000",
        "env": {"TZ": "UTC"},
        "system_packages": ["curl"],
        "labels": {"team": "fraud"},
    },
    "serving": {
        "port": 8080,
        "workers": 2,
        "max_body_mb": 10,
        "timeout_s": 5,
        "max_batch_rows": 1000,
        "max_concurrency": 32,
        "batching": {"max_size": 64, "max_wait_ms": 2.0},
        "log_inputs": False,
    },
}


def _field_names(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {str(key) for key in node} | {name for value in node.values() for name in _field_names(value)}
    return set()


FIELD_NAMES = sorted(_field_names(BASE) | set(KNOWN_METRICS) | {"average", "max", "min", "skops"})
TRICKY_TEXT = [
    "",
    " ",
    "~",
    "null",
    "yes",
    "0x1F",
    "1e999",
    ".nan",
    "../outside",
    "/etc/passwd",
    "data/../../x.csv",
    "model/",
    "solution.py",
    "schema.json",
    "data/test.csv",
    "is_fraud",
    "x\nRUN touch /pwned",
    "tab\there",
    "ünïcødé ✓",
    "http://127.0.0.1:9/test.csv",
    "file:///etc/passwd",
    "C:\\Windows",
    "a" * 300,
    "[/]",
    "[bold]x",
    "[[registry]]",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
    st.sampled_from(TRICKY_TEXT),
)
keys = st.one_of(
    st.sampled_from(FIELD_NAMES),
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=12),
    st.integers(-3, 3),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=20,
)
documents = st.one_of(st.dictionaries(keys, values, max_size=8), values)
YAML_NOISE = list(":-[]{}#&*!|>'\"\n\t %@`,?\\") + ["  ", "\n  ", ": ", "- ", "!!str ", "&a ", "*a", "---\n"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a nested dict/list (the root excluded)."""
    found: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """The valid config with one to three edits: a value replaced, a key deleted, added or misspelt."""
    document = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        operation = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename"]))
        if operation == "add" or not paths:
            mappings = [()] + [path for path in paths if isinstance(_parent(document, (*path, 0)), dict)]
            target = _parent(document, (*draw(st.sampled_from(mappings)), None))
            target[draw(keys)] = draw(values)
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        if operation == "replace":
            parent[path[-1]] = draw(values)
        elif operation == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(FIELD_NAMES))] = parent.pop(path[-1])
    return document


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@st.composite
def mangled_text(draw: st.DrawFn) -> str:
    """The valid config's YAML text with characters inserted, deleted or lines duplicated."""
    text = _dump(draw(st.one_of(st.just(BASE), mutated_configs())))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["insert", "delete", "duplicate-line", "truncate"]))
        if operation == "insert":
            noise = draw(st.one_of(st.sampled_from(YAML_NOISE), st.text(max_size=4)))
            text = text[:position] + noise + text[position:]
        elif operation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 12)) :]
        elif operation == "duplicate-line":
            lines = text.splitlines(keepends=True)
            index = min(position, len(lines) - 1) if lines else 0
            text = "".join(lines[: index + 1] + lines[index:])
        else:
            text = text[:position]
    return text


config_texts = st.one_of(documents.map(_dump), mutated_configs().map(_dump), mangled_text())


def _names_the_file_with_a_hint(error: ConfigError) -> None:
    assert error.message.startswith("mlship.yaml"), error.message
    assert error.hint, error.message


@settings(max_examples=300, deadline=None)
@given(text=config_texts)
@example(text=_dump(BASE))
def test_parse_config_returns_a_config_or_raises_one_config_error(text: str) -> None:
    try:
        config = parse_config(text)
    except ConfigError as error:
        _names_the_file_with_a_hint(error)
        return
    assert isinstance(config, ProjectConfig)
    assert config.image.base  # completed


@pytest.fixture(scope="module")
def empty_data_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete project whose test data is a header without rows: `mlship test` stops in milliseconds."""
    return make_project(
        tmp_path_factory.mktemp("fuzz") / "project", test_data=make_frame(5, 2).iloc[:0], project_test=None
    )


def _with_config(project: Path, text: str) -> Path:
    (project / "mlship.yaml").write_text(text, encoding="utf-8")
    return project


def _mlship_test(project: Path, text: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["test", str(_with_config(project, text)), "--skip-tests", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.output


def _check_cli_answer(code: int, stdout: str, output: str) -> dict[str, Any]:
    assert 0 <= code <= 8, output
    assert "Traceback" not in output and 'File "' not in output, output
    assert "unexpected error" not in output, output
    payload: dict[str, Any] = json.loads(stdout)
    if code != 0 and "error" in payload:  # an MlshipError: one line, its kind and exit code
        assert payload["ok"] is False and payload["exit_code"] == code, payload
        assert payload["error"] and "\n" not in payload["error"], payload
    elif code != 0:  # a report whose verdict is the exit code (tests failed, below baseline)
        assert payload["exit_code"] == code, payload
    return payload


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=config_texts)
@example(text=_dump(BASE))
def test_mlship_test_answers_any_config_with_an_exit_code_and_no_traceback(
    empty_data_project: Path, text: str
) -> None:
    code, stdout, output = _mlship_test(empty_data_project, text)
    payload = _check_cli_answer(code, stdout, output)
    try:
        parse_config(text)
    except ConfigError:
        assert code == 3 and payload["kind"] == "ConfigError", output
    else:
        assert code != 0, output  # the data has no rows: a valid config cannot pass


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("? [a, b]\n: c\n", id="list-as-key"),
        pytest.param("? {a: 1}\n: c\n", id="mapping-as-key"),
        pytest.param("a: " + "[" * 3000 + "]" * 3000 + "\n", id="nested-3000-deep"),
        pytest.param("a: &a [*a]\n", id="alias-cycle"),
    ],
)
def test_known_crashers_are_config_errors(empty_data_project: Path, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    _names_the_file_with_a_hint(caught.value)
    _check_cli_answer(*_mlship_test(empty_data_project, text))


@pytest.mark.parametrize("text", ["\x1fname: x\n", "name: x\x00\n"], ids=["unit-separator", "nul"])
def test_a_yaml_reader_error_is_one_line_on_the_command_line(empty_data_project: Path, text: str) -> None:
    """PyYAML's reader errors span two lines; the boundary prints every message as one."""
    code, stdout, output = _mlship_test(empty_data_project, text)
    payload = _check_cli_answer(code, stdout, output)
    assert code == 3 and "not valid YAML" in payload["error"]
    assert [line for line in output.splitlines() if line.startswith("error:")] == [
        f"error: {payload['error']}"
    ]


@pytest.mark.parametrize("key", ["[/]", "[bold]loud", "[[registry]]"])
def test_markup_in_the_config_is_printed_as_written(empty_data_project: Path, key: str) -> None:
    """Rich markup in user text is shown literally, never interpreted (a stray "[/]" used to crash)."""
    text = _dump({**BASE, key: 1})
    result = CliRunner().invoke(app, ["test", str(_with_config(empty_data_project, text)), "--skip-tests"])
    assert result.exit_code == 3, result.output
    assert f"{key}: is not a known field" in result.stderr


# --- the release gate, for real -------------------------------------------------------------------------

thresholds = st.one_of(
    st.floats(min_value=0, max_value=1), st.sampled_from([0, 1, -0.5, 1.5, 80, None, "0.9", math.nan])
)
metric_specs = st.fixed_dictionaries(
    {},
    optional={
        "min": thresholds,
        "max": thresholds,
        "average": st.sampled_from(["binary", "macro", "micro", "weighted", "samples", None]),
    },
)
gate_values = st.fixed_dictionaries(
    {
        "metrics": st.dictionaries(
            st.sampled_from(sorted(KNOWN_METRICS)), metric_specs, min_size=1, max_size=3
        )
    },
    optional={
        "positive_label": st.one_of(
            st.sampled_from([0, 1, "1", True, "yes", None, 2.5]), st.text(max_size=4)
        ),
        "chunk_rows": st.sampled_from([1, 7, 64, 10**9, 0, -1]),
        "timeout_s": st.sampled_from([0.5, 60, 0, -1, math.inf, math.nan]),
        "target": st.sampled_from(["is_fraud", "amount", "channel", "nope", ""]),
    },
)


@pytest.fixture(scope="module")
def gate_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("fuzz-gate") / "project", test_rows=40, project_test=None)


@pytest.mark.slow
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=gate_values)
def test_the_gate_answers_any_evaluation_settings_with_an_exit_code(
    gate_project: Path, changes: dict[str, Any]
) -> None:
    document = copy.deepcopy(BASE)
    document["evaluation"].update(changes)
    _check_cli_answer(*_mlship_test(gate_project, _dump(document)))


@pytest.mark.slow
def test_infinite_timeout_is_refused(gate_project: Path) -> None:
    document = copy.deepcopy(BASE)
    document["evaluation"]["timeout_s"] = math.inf
    code, stdout, output = _mlship_test(gate_project, _dump(document))
    _check_cli_answer(code, stdout, output)
    assert code == 3, output
