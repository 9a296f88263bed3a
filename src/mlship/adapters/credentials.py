"""Registry credentials, shared by the engine (push, pull) and the OCI registry client; never logged."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    """A registry login; the secret parts never appear in repr, messages or logs."""

    username: str
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)  # docker config "identitytoken"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials | None:
        """MLSHIP_REGISTRY_USERNAME and MLSHIP_REGISTRY_PASSWORD, when both are set."""
        env = os.environ if environ is None else environ
        username, password = env.get("MLSHIP_REGISTRY_USERNAME"), env.get("MLSHIP_REGISTRY_PASSWORD")
        if username and password:
            return cls(username=username, password=password)
        return None


def registry_credentials(host: str) -> Credentials | None:
    """Credentials for `host`: MLSHIP_REGISTRY_USERNAME/PASSWORD when set, else the docker config
    (~/.docker/config.json auths or its credential helpers). Never logged or printed."""
    from_env = Credentials.from_env()
    if from_env is not None:
        return from_env
    import docker

    try:
        config = docker.auth.load_config()
        entry = config.resolve_authconfig(host) or {}
    except Exception:  # a broken config or helper: behave as if there were no credentials
        return None
    if entry.get("IdentityToken"):
        return Credentials(username="<token>", password="", identity_token=str(entry["IdentityToken"]))
    username = entry.get("username") or entry.get("Username")
    password = entry.get("password") or entry.get("Password")
    if username and password:
        return Credentials(username=str(username), password=str(password))
    return None
