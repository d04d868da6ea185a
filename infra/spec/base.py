"""Pieces every concern of the stack spec shares: the project name, :class:`SpecError`, the
pydantic base class of the key groups, and small value checks used by several groups.

Rules that need only the spec live in the concern modules of this package; rules that need
the instance catalog, the model shape and the layout live in :mod:`infra.planning.layout`.
Both raise :class:`SpecError`, whose message names the config key, the value and what is
allowed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from infra.planning import syntax

PROJECT = "sglang-cluster"
"""Pulumi project name, and so the namespace of every config key (``sglang-cluster:tp_size``)."""

_AZ = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")


class SpecError(ValueError):
    """A stack config that cannot be deployed.

    Attributes:
        key: the fully qualified config key (``sglang-cluster:tp_size``) or ``""`` when the
            problem spans several keys (then the message names them).
        message: one sentence saying what is wrong and what is allowed.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


def qualified(key: str) -> str:
    """``tp_size`` -> ``sglang-cluster:tp_size``."""
    return f"{PROJECT}:{key}"


def no_newline(value: str) -> str:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("must be a single line (no newline or NUL characters)")
    return value


def aws_id(value: str, prefix: str) -> str:
    """Check an optional AWS resource id (``vpc-...``, ``subnet-...``); ``""`` passes.

    Raises:
        ValueError: the id is not spelled like a ``prefix`` id (pydantic names the key).
    """
    problem = syntax.aws_id_error(value, prefix) if value else None
    if problem:
        raise ValueError(problem)
    return value


def availability_zone(value: str) -> str:
    """Check an optional AZ name (``us-east-1a``); ``""`` passes.

    Raises:
        ValueError: the name is not spelled like an AZ.
    """
    if value and not _AZ.match(value):
        raise ValueError("must look like us-east-1a")
    return value


class Keys(BaseModel):
    """Base of every key group: unknown keys are refused and a validated spec is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
