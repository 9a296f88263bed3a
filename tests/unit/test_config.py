"""mlship.yaml: every way it can be wrong gives one ConfigError naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlship.errors import ConfigError, ExitCode
from mlship.project.config import json_schema, load_project, parse_config
from tests.conftest import VALID_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def error_for(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file="mlship.yaml")
    assert caught.value.exit_code == ExitCode.CONFIG_INVALID
    return caught.value


def test_valid_config_is_completed() -> None:
    config = parse_config(VALID_CONFIG)
    assert config.name == "fraud-detector"
    assert config.evaluation.metrics["f1"].min == 0.80
    assert config.serving.workers == 2
    assert parse_config(
        VALID_CONFIG.replace('image: {base: "python:3.11-slim", ', "image: {")
    ).image.base == ("python:3.11-slim")


@pytest.mark.parametrize("value", ["0", "65", "1.5", "many", "true", "[2]"])
def test_workers_is_a_count_or_auto(value: str) -> None:
    text = VALID_CONFIG.replace("workers: 2", f"workers: {value}")
    assert text != VALID_CONFIG
    error = error_for(text)
    assert "serving.workers: must be a whole number from 1 to 64, or auto (one per core)" in error.message
    assert parse_config(VALID_CONFIG.replace("workers: 2", "workers: auto")).serving.workers == "auto"
    assert parse_config(VALID_CONFIG.replace("workers: 2, ", "")).serving.workers == "auto"


def test_percent_threshold_names_line_and_field() -> None:
    error = error_for(VALID_CONFIG.replace("f1: {min: 0.80}", "f1: {min: '80%'}"))
    assert error.message.startswith("mlship.yaml:9 evaluation.metrics.f1.min:")
    assert "'80%'" in error.message and "number" in error.message


def test_threshold_out_of_unit_interval() -> None:
    error = error_for(VALID_CONFIG.replace("f1: {min: 0.80}", "f1: {min: 80}"))
    assert "mlship.yaml:8 evaluation.metrics" in error.message
    assert "between 0 and 1" in error.message


def test_unknown_key() -> None:
    error = error_for(VALID_CONFIG.replace("  target: is_fraud", "  target: is_fraud\n  targt: x"))
    assert error.message.startswith("mlship.yaml:8 evaluation.targt:")
    assert "not a known field" in error.message


def test_wrong_type() -> None:
    error = error_for(VALID_CONFIG.replace("port: 8080", "port: eighty"))
    assert error.message.startswith("mlship.yaml:13 serving.port:")
    assert "'eighty'" in error.message


def test_missing_required_field() -> None:
    error = error_for(VALID_CONFIG.replace("  target: is_fraud\n", ""))
    assert error.message.startswith("mlship.yaml:5 evaluation.target:")
    assert "required" in error.message


def test_yaml_syntax_error() -> None:
    error = error_for(VALID_CONFIG.replace("  target: is_fraud", "  target: [is_fraud"))
    assert error.message.startswith("mlship.yaml:")
    assert "not valid YAML" in error.message


def test_duplicate_key() -> None:
    error = error_for(VALID_CONFIG + "name: other\n")
    assert error.message == "mlship.yaml:14 duplicate key 'name' (first at line 1)"


@pytest.mark.parametrize("text", ["", "   \n# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert "empty" in error_for(text).message


def test_unknown_metric() -> None:
    assert (
        "unknown metric 'f2'" in error_for(VALID_CONFIG.replace("f1: {min: 0.80}", "f2: {min: 0.8}")).message
    )


@pytest.mark.parametrize("bad", ["Fraud Detector", "UPPER", "-x"])
def test_image_name_rules(bad: str) -> None:
    assert "name:" in error_for(VALID_CONFIG.replace("name: fraud-detector", f"name: {bad!r}")).message


@pytest.mark.parametrize(
    ("field", "replacement"),
    [
        ("image.base", 'image: {base: "x\\nRUN touch /pwned", registry: "127.0.0.1:5000"}'),
        ("image.registry", 'image: {registry: "x\\nRUN touch /pwned"}'),
        ("image.env", 'image: {env: {A: "x\\nRUN touch /pwned"}}'),
        ("image.labels", 'image: {labels: {a: "x\\nRUN touch /pwned"}}'),
        ("image.system_packages", 'image: {system_packages: ["x\\nRUN touch /pwned"]}'),
    ],
)
def test_dockerfile_bound_fields_refuse_newlines(field: str, replacement: str) -> None:
    text = VALID_CONFIG.replace('image: {base: "python:3.11-slim", registry: "127.0.0.1:5000"}', replacement)
    assert field in error_for(text).message


def test_paths_outside_the_project_are_refused(tmp_path: Path) -> None:
    (tmp_path / "mlship.yaml").write_text(
        VALID_CONFIG.replace("data: data/test.csv", "data: ../../etc/passwd")
    )
    with pytest.raises(ConfigError, match=r"evaluation.data: '../../etc/passwd' is outside the project"):
        load_project(tmp_path)


def test_missing_config_file_hints_at_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no mlship.yaml") as caught:
        load_project(tmp_path)
    assert caught.value.hint is not None and "mlship init" in caught.value.hint


def test_yml_extension_is_spotted(tmp_path: Path) -> None:
    (tmp_path / "mlship.yml").write_text(VALID_CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path)
    assert caught.value.hint == "rename mlship.yml to mlship.yaml"


def test_committed_json_schema_is_current() -> None:
    committed = json.loads((ROOT / "mlship.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), (
        "run scripts/update-schema and commit the result"
    )


def test_a_duplicate_key_with_braces_is_named_as_written() -> None:
    # found by hypothesis: the message used to go through str.format, and '{' in a key broke it
    error = error_for("'{x}': 1\n'{x}': 2\n")
    assert error.message == "mlship.yaml:2 duplicate key '{x}' (first at line 1)"
