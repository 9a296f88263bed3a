"""The `kubernetes:` section of mlship.yaml: what `mlship manifests` puts in the cluster's objects."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(f"must be a Kubernetes name (lowercase letters, digits, '-', ≤63), got {value!r}")
    return value


class Resources(_Model):
    """Kubernetes quantities ("500m", "1", "512Mi")."""

    cpu: str
    memory: str

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.fullmatch(value):
            raise ValueError(f"must be a Kubernetes quantity such as '500m' or '512Mi', got {value!r}")
        return value


class Autoscaling(_Model):
    min_replicas: int = Field(2, ge=1, le=1000)
    max_replicas: int = Field(10, ge=1, le=1000)
    cpu_percent: int = Field(70, ge=1, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas {self.max_replicas} is below min_replicas {self.min_replicas}")
        return self


class Gateway(_Model):
    name: str = "mlship-gateway"
    namespace: str | None = None
    hostnames: list[str] = Field(default_factory=list)

    @field_validator("name", "namespace")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _dns_label(value)


class KubernetesSpec(_Model):
    namespace: str = "default"
    replicas: int = Field(2, ge=1, le=1000)
    requests: Resources = Field(default_factory=lambda: Resources(cpu="250m", memory="512Mi"))
    limits: Resources = Field(default_factory=lambda: Resources(cpu="1", memory="1Gi"))
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    min_available: int = Field(
        1, ge=0, description="PodDisruptionBudget: pods kept during a voluntary disruption"
    )
    gateway: Gateway = Field(default_factory=Gateway)
    termination_grace_s: int | None = Field(
        None,
        ge=5,
        le=3600,
        description="default: the service's SIGTERM drain (serving.timeout_s + 5 s) + 10 s",
    )
    output: str = Field("deploy/k8s", description="where `mlship manifests` writes the kustomize tree")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value)
