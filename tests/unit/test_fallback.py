"""The spare model's pieces that need no process: the circuit breaker, and fallback: from mlship.yaml to
service.json to the runtime's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlship.errors import ConfigError
from mlship.project.config import parse_config
from mlship.serving.fallback import CircuitBreaker
from mlship.serving.settings import FallbackSettings, ServiceInfo, SettingsError

EVALUATION = "name: x\nevaluation: {target: y, metrics: {f1: {min: 0.5}}}\n"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failures=3, window_s=10, cooldown_s=5, successes=2, clock=clock)


def test_the_breaker_opens_after_n_failures_within_the_window_only() -> None:
    clock = Clock()
    cb = breaker(clock)
    cb.failure()
    cb.failure()
    clock.now += 11  # both out of the window
    cb.failure()
    assert cb.state == "closed" and cb.allow()
    cb.failure()
    cb.failure()
    assert cb.state == "open" and not cb.allow()


def test_half_open_lets_one_trial_at_a_time_and_closes_after_successes() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.failure()
    clock.now += 4.9
    assert not cb.allow()
    clock.now += 0.2
    assert cb.state == "half-open"
    assert cb.allow() and not cb.allow()  # one trial in flight: the next request gets the spare
    cb.success()
    assert cb.state == "half-open" and cb.allow()
    cb.success()
    assert cb.state == "closed" and cb.allow() and cb.allow()
    cb.failure()
    cb.failure()
    assert cb.state == "closed"  # the failures before it opened do not count any more


def test_a_failed_trial_opens_it_again_and_a_trial_without_verdict_is_released() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.failure()
    clock.now += 5
    assert cb.allow()
    cb.release()  # the client left
    assert cb.allow()
    cb.failure()
    assert cb.state == "open" and not cb.allow()
    clock.now += 5
    assert cb.state == "half-open"


def test_fallback_goes_from_mlship_yaml_to_the_runtime_settings() -> None:
    config = parse_config(
        EVALUATION + "fallback: {model: Spare, deadline_ms: 150, failures: 2, metrics: {f1: {min: 0.4}}}\n"
    )
    assert config.fallback is not None
    section = config.fallback.service_section()
    assert "metrics" not in section  # the gate's business, not the service's
    info = ServiceInfo.from_dict({"fallback": section})
    assert info.fallback == FallbackSettings(model="Spare", deadline_ms=150.0, failures=2)
    assert ServiceInfo.from_dict(info.to_dict()) == info
    assert ServiceInfo.from_dict({}).fallback is None


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("fallback: {model: Spare}\n", "fallback.metrics: is required"),
        ("fallback: {model: Model, metrics: {f1: {min: 0.4}}}\n", "another class of solution.py"),
        ("fallback: {model: Spare, deadline_ms: 0, metrics: {f1: {min: 0.4}}}\n", "fallback.deadline_ms"),
        ("fallback: {model: Spare, deadline_ms: 6000, metrics: {f1: {min: 0.4}}}\n", "serving.timeout_s"),
        ("fallback: {model: Spare, metrics: {f2: {min: 0.4}}}\n", "unknown metric 'f2'"),
    ],
)
def test_a_wrong_fallback_section_is_one_clear_config_error(yaml: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        parse_config(EVALUATION + yaml)


def test_a_wrong_fallback_in_service_json_names_the_field() -> None:
    with pytest.raises(SettingsError, match=r"service.json.fallback.failures: must be >= 1"):
        ServiceInfo.from_dict({"fallback": {"model": "Spare", "failures": 0}})
    with pytest.raises(SettingsError, match="fallback.model: expected a class name"):
        ServiceInfo.from_dict({"fallback": {"model": "not a name"}})


def test_the_committed_schema_knows_fallback() -> None:
    import json

    schema = json.loads((Path(__file__).resolve().parents[2] / "mlship.schema.json").read_text())
    assert schema["properties"]["fallback"]
    assert "deadline_ms" in schema["$defs"]["Fallback"]["properties"]
