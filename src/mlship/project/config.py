"""mlship.yaml: pydantic models, and load → validate → complete with errors that name file, line and field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from mlship.errors import ConfigError
from mlship.project.kubernetes import KubernetesSpec
from mlship.project.metric_names import (
    KNOWN_METRICS,
    UNIT_INTERVAL_METRICS,
)
from mlship.project.retrain import Retrain

CONFIG_FILE = "mlship.yaml"


_IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_chars(value: str) -> str:
    """Values that reach the Dockerfile must be single-line: a newline would inject an instruction."""
    if _CONTROL.search(value):
        raise ValueError(
            "must be a single line without control characters (a newline would inject a "
            "Dockerfile instruction)"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class ModelSpec(_Model):
    solution: str = "solution.py"
    artifacts: str = "model/"
    format: Literal["joblib", "pickle", "skops"] = "joblib"


class Threshold(_Model):
    min: float | None = None
    max: float | None = None
    average: Literal["binary", "macro", "micro", "weighted"] | None = None


class AgainstLive(_Model):
    max_drop: float = Field(0.01, ge=0)


def _check_metrics(metrics: dict[str, Threshold]) -> dict[str, Threshold]:
    for name, threshold in metrics.items():
        if name not in KNOWN_METRICS:
            raise ValueError(f"unknown metric '{name}'; known: {', '.join(sorted(KNOWN_METRICS))}")
        for bound in (threshold.min, threshold.max):
            if name in UNIT_INTERVAL_METRICS and bound is not None and not 0 <= bound <= 1:
                raise ValueError(f"{name}: a threshold must be a number between 0 and 1, got {bound}")
    return metrics


class Evaluation(_Model):
    data: str = "data/test.csv"
    target: str
    metrics: dict[str, Threshold] = Field(min_length=1)
    against_live: AgainstLive | None = None
    timeout_s: float = Field(600, gt=0)
    chunk_rows: int = Field(100_000, ge=1)
    positive_label: str | int | None = None
    max_psi: float | None = Field(
        0.25,
        gt=0,
        description="mlship test warns, naming the column, when a test-data column's population stability "
        "index against the training reference in schema.json exceeds this (null: never)",
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: dict[str, Threshold]) -> dict[str, Threshold]:
        return _check_metrics(metrics)


class ImageSpec(_Model):
    base: str | None = None
    registry: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    system_packages: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("base", "registry")
    @classmethod
    def _single_line(cls, value: str | None) -> str | None:
        return None if value is None else _no_control_chars(value)

    @field_validator("system_packages")
    @classmethod
    def _packages(cls, packages: list[str]) -> list[str]:
        for package in packages:
            if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*(=[A-Za-z0-9.+:~-]+)?", package):
                raise ValueError(f"'{package}' is not a Debian package name")
        return packages

    @field_validator("env", "labels")
    @classmethod
    def _mapping(cls, mapping: dict[str, str]) -> dict[str, str]:
        for key, value in mapping.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
                raise ValueError(f"'{key}' is not a valid name")
            _no_control_chars(value)
        return mapping


class BatchSpec(_Model):
    max_size: int = Field(64, ge=1, le=4096)
    max_wait_ms: float = Field(2.0, ge=0, le=1000)


class Serving(_Model):
    port: int = Field(8080, ge=1, le=65535)
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = "auto"
    max_body_mb: float = Field(10, gt=0)
    timeout_s: float = Field(5, gt=0)
    max_batch_rows: int = Field(10_000, ge=1)
    max_concurrency: int = Field(256, ge=1)
    batching: BatchSpec = Field(default_factory=BatchSpec)
    log_inputs: bool = False

    @field_validator("workers", mode="wrap")
    @classmethod
    def _workers(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> int | str:
        wrong = ValueError(f"must be a whole number from 1 to 64, or auto (one per core), got {value!r}")
        if isinstance(value, bool):
            raise wrong
        try:
            workers: int | str = handler(value)
        except ValidationError:
            raise wrong from None
        return workers


class Fallback(_Model):
    """A spare Model class of solution.py that answers when the main model raises, is slow, or its circuit is
    open; gated by ``mlship test`` on the same test data with its own ``metrics`` thresholds."""

    model: str = Field(description="the spare's class name in solution.py (it has load and predict)")
    metrics: dict[str, Threshold] = Field(
        min_length=1, description="the spare's own thresholds; a spare that misses one is not shipped"
    )
    deadline_ms: float = Field(200, gt=0, description="the main model's time to answer before the spare")
    failures: int = Field(5, ge=1, description="errors or timeouts within window_s that open the circuit")
    window_s: float = Field(30, gt=0)
    cooldown_s: float = Field(10, ge=0, description="open → half-open: one trial request goes to the main")
    successes: int = Field(3, ge=1, description="trial successes in a row that close the circuit")
    recycle_after_s: float | None = Field(
        None,
        gt=0,
        description="a main call still running this long gets its worker replaced "
        "(default serving.timeout_s)",
    )

    @field_validator("model")
    @classmethod
    def _class_name(cls, name: str) -> str:
        if not name.isidentifier() or name == "Model":
            raise ValueError(f"must name another class of solution.py (not Model), got {name!r}")
        return name

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: dict[str, Threshold]) -> dict[str, Threshold]:
        return _check_metrics(metrics)

    def service_section(self) -> dict[str, Any]:
        """What the service reads (service.json ``fallback``): everything but the gate's thresholds."""
        return self.model_dump(mode="json", exclude={"metrics"})


class ProjectConfig(_Model):
    """The whole of mlship.yaml."""

    name: str
    python: str = "3.11"
    model: ModelSpec = Field(default_factory=ModelSpec)
    schema_file: str = Field("schema.json", alias="schema")
    evaluation: Evaluation
    image: ImageSpec = Field(default_factory=ImageSpec)
    serving: Serving = Field(default_factory=Serving)
    fallback: Fallback | None = None
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    retrain: Retrain = Field(default_factory=Retrain)

    @field_validator("name")
    @classmethod
    def _image_name(cls, name: str) -> str:
        if not _IMAGE_NAME.fullmatch(name):
            raise ValueError(
                "must be a lowercase image name (letters, digits, '.', '_', '-'), e.g. 'fraud-detector'"
            )
        return name

    @field_validator("fallback")
    @classmethod
    def _deadline_before_timeout(cls, fallback: Fallback | None, info: ValidationInfo) -> Fallback | None:
        serving = info.data.get("serving")
        if fallback is not None and serving is not None and fallback.deadline_ms >= serving.timeout_s * 1000:
            raise ValueError(
                f"deadline_ms ({fallback.deadline_ms:g}) must be shorter than serving.timeout_s "
                f"({serving.timeout_s:g} s), or the spare never gets its turn"
            )
        return fallback

    @field_validator("python")
    @classmethod
    def _python_version(cls, version: str) -> str:
        if not re.fullmatch(r"3\.\d{1,2}", version):
            raise ValueError(f"must be a Python version such as \"3.11\", got '{version}'")
        return version

    @model_validator(mode="after")
    def _complete(self) -> ProjectConfig:
        if self.image.base is None:
            self.image.base = f"python:{self.python}-slim"
        return self


class Project(BaseModel):
    """A loaded project: its folder and its validated configuration, with paths resolved inside it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path
    config: ProjectConfig

    def path(self, relative: str, field: str) -> Path:
        """Resolve a path from mlship.yaml; refuse one that leaves the project folder."""
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root.resolve()):
            raise ConfigError(
                f"{CONFIG_FILE} {field}: '{relative}' is outside the project folder",
                hint="keep every file the project uses inside its folder",
            )
        return candidate

    @property
    def solution_path(self) -> Path:
        return self.path(self.config.model.solution, "model.solution")

    @property
    def artifacts_path(self) -> Path:
        return self.path(self.config.model.artifacts, "model.artifacts")

    @property
    def schema_path(self) -> Path:
        return self.path(self.config.schema_file, "schema")

    def data_location(self) -> str:
        """The test data: an http(s) URL as it is, a path resolved inside the project."""
        data = self.config.evaluation.data
        if re.match(r"^https?://", data):
            return data
        return str(self.path(data, "evaluation.data"))


# --- YAML with line numbers and duplicate-key detection -------------------------------------------------


_FILE = "\x00file\x00"  # where the file name goes once it is known (the loader does not know it)


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"{_FILE}:{key_node.start_mark.line + 1} duplicate key '{key}' (first at line {seen[key]})",
                hint="keep one of the two entries",
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_index(
    node: yaml.Node | None,
    path: tuple[Any, ...] = (),
    index: dict[tuple[Any, ...], int] | None = None,
) -> dict[tuple[Any, ...], int]:
    """Map each key path ('evaluation', 'metrics', 'f1', 'min') to the line its value stands on."""
    index = {} if index is None else index
    if node is None:
        return index
    index.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            index[key_path] = key_node.start_mark.line + 1
            _line_index(value_node, key_path, index)
            index[key_path] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _line_index(item, (*path, position), index)
    return index


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return "is not a known field (check its spelling)"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind in {
        "float_parsing",
        "float_type",
        "int_parsing",
        "int_type",
        "bool_parsing",
        "bool_type",
        "string_type",
        "dict_type",
        "list_type",
        "model_type",
        "literal_error",
    }:
        return f"{message[0].lower()}{message[1:]}, got {given!r}"
    return message


def parse_config(text: str, file: str = CONFIG_FILE) -> ProjectConfig:
    """Parse and validate mlship.yaml text; every problem is a ConfigError naming file, line and field."""
    try:
        return _parse_config(text, file)
    except TypeError as error:  # a list or mapping used as a key: YAML allows it, Python dicts do not
        raise ConfigError(
            f"{file}: a key is a list or mapping ({error})",
            hint="keys in mlship.yaml are plain names such as 'name' or 'evaluation'",
        ) from error
    except RecursionError as error:
        raise ConfigError(
            f"{file}: nested too deeply, or an alias (*name) refers to itself",
            hint="mlship.yaml needs only a few levels of nesting and no recursive aliases",
        ) from error


def _parse_config(text: str, file: str) -> ProjectConfig:
    try:
        root = yaml.compose(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except ConfigError as error:
        error.message = error.message.replace(_FILE, file, 1)  # not str.format: the key may hold braces
        raise
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(
            f"{file}{line}: not valid YAML: {problem}",
            hint="fix the YAML syntax (indentation, a missing ':' or quote)",
        ) from error
    if data is None:
        raise ConfigError(
            f"{file}: the file is empty",
            hint="it needs at least 'name' and 'evaluation' (run 'mlship init' for an example)",
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}:1: expected a mapping of settings, got {type(data).__name__}",
            hint="start with 'name: my-model'",
        )
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as error:
        lines = _line_index(root)
        first = error.errors()[0]
        loc = tuple(first["loc"])
        line_no = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
        field = ".".join(str(part) for part in loc) or "(top level)"
        more = len(error.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(
            f"{file}:{line_no} {field}: {_describe(dict(first))}{suffix}",
            hint="see mlship.schema.json for every field and its type",
        ) from error


def load_project(directory: Path | str = ".") -> Project:
    """Find mlship.yaml in `directory`, validate it, and return the project."""
    root = Path(directory).resolve()
    file = root / CONFIG_FILE
    if not file.is_file():
        alternative = root / "mlship.yml"
        hint = (
            f"rename {alternative.name} to {CONFIG_FILE}"
            if alternative.is_file()
            else "run 'mlship init NAME' or 'mlship init --from-notebook NB.ipynb' to create a project"
        )
        raise ConfigError(f"no {CONFIG_FILE} in {root}", hint=hint)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: cannot be read: {error}") from error
    config = parse_config(
        text, file=str(file.relative_to(Path.cwd()) if file.is_relative_to(Path.cwd()) else file)
    )
    project = Project(root=root, config=config)
    for check in (
        lambda: project.solution_path,
        lambda: project.artifacts_path,
        lambda: project.schema_path,
        project.data_location,
    ):
        check()
    return project


def json_schema() -> dict[str, Any]:
    """The JSON Schema of mlship.yaml, committed as mlship.schema.json."""
    schema = ProjectConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlship.yaml"
    return schema
