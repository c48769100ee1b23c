"""Secrets: from an environment variable, else from a Prefect Secret block; never stored, never logged."""

from __future__ import annotations

import os
from typing import cast

from pydantic import SecretStr

from flows.errors import OperatorError


class MissingSecretError(OperatorError, LookupError):
    """Neither the environment nor Prefect holds the secret."""


def secret_block_name(env_name: str) -> str:
    """The Prefect Secret block that stands in for an environment variable: ZOOM_CLIENT_SECRET → zoom-client-secret."""
    return env_name.lower().replace("_", "-")


def read_secret(env_name: str) -> SecretStr:
    """The value of `env_name`, or of the Prefect Secret block named after it."""
    value = os.environ.get(env_name)
    if value:
        return SecretStr(value)
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(secret_block_name(env_name))
    except (ValueError, ImportError, RuntimeError) as exc:
        raise MissingSecretError(f"secret {env_name} is not set (environment variable or Prefect Secret block "
                                 f"{secret_block_name(env_name)!r})") from exc
    return SecretStr(str(cast("Secret[str]", block).get()))
