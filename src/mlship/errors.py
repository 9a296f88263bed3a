"""One exception root for everything mlship reports, and the exit codes CI can branch on.

MlshipError (exit 1)
├── UsageError (2)
├── ConfigError (3)            mlship.yaml, schema.json, paths that leave the project
├── TestsFailed (4)            the project's tests, or the user's model code, failed
├── BelowBaseline (5)          a metric missed its threshold or fell below the live release
├── EngineUnavailable (6)      no container engine answers
├── BuildFailed (7)            freeze, Dockerfile or image build failed
├── RegistryError (8)          the registry refused, was unreachable, or a push failed
├── NotReleased (9)            a version the registry does not hold (ops.k8s: canary)
├── NoCanary (10)              move / promote / abort with no canary under way
├── DataGuardBreach (11)       retrain: new data breached a guard (rows, columns, nulls, age, balance, shift)
├── DataError (1)              test data missing, unreadable or not matching the schema
└── NotebookError (1)          a notebook could not be executed or converted
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG_INVALID = 3
    TESTS_FAILED = 4
    BELOW_BASELINE = 5
    NO_ENGINE = 6
    BUILD_FAILED = 7
    REGISTRY_ERROR = 8
    NOT_RELEASED = 9
    NO_CANARY = 10
    DATA_GUARD = 11
    INTERRUPTED = 130


class MlshipError(Exception):
    """An error a user can act on: a one-line message, an optional hint, an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(MlshipError):
    """The command was called with arguments that cannot work."""

    exit_code = ExitCode.USAGE


class ConfigError(MlshipError):
    """mlship.yaml (or a file it names) is invalid."""

    exit_code = ExitCode.CONFIG_INVALID


class TestsFailed(MlshipError):
    """The project's tests failed, or the user's model code crashed, hung or exited."""

    __test__ = False  # not a pytest class
    exit_code = ExitCode.TESTS_FAILED


class BelowBaseline(MlshipError):
    """A metric missed its threshold or is worse than the live release by more than allowed."""

    exit_code = ExitCode.BELOW_BASELINE


class EngineUnavailable(MlshipError):
    """No container engine answers on the Docker API."""

    exit_code = ExitCode.NO_ENGINE


class BuildFailed(MlshipError):
    """Freezing requirements, rendering the Dockerfile or building the image failed."""

    exit_code = ExitCode.BUILD_FAILED


class RegistryError(MlshipError):
    """The registry was unreachable, refused a request, or a push reported an error."""

    exit_code = ExitCode.REGISTRY_ERROR


class NotReleased(MlshipError):
    """The version named is not a release in the registry."""

    exit_code = ExitCode.NOT_RELEASED


class NoCanary(MlshipError):
    """A rollout step that needs a canary, with none under way."""

    exit_code = ExitCode.NO_CANARY


class DataGuardBreach(MlshipError):
    """`mlship retrain`: the new training data breached a data guard; nothing was trained or written."""

    exit_code = ExitCode.DATA_GUARD


class DataError(MlshipError):
    """Test data is missing, unreadable, or does not match the input schema."""


class NotebookError(MlshipError):
    """A notebook could not be executed or converted into a project."""
