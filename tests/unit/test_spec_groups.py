"""The spec is split into key groups (one pydantic class per concern, joined by inheritance).

Inheritance has a trap: two groups that name a validator method alike (``_aws_ids``) leave only
one of them on :class:`StackSpec`, and the other group's rule silently stops running. These tests
catch that, and that every key belongs to exactly one group.
"""

from __future__ import annotations

from infra.spec import StackSpec
from infra.spec.base import Keys


def _groups() -> list[type[Keys]]:
    return [c for c in StackSpec.__mro__[1:] if isinstance(c, type) and issubclass(c, Keys) and c is not Keys]


def test_every_group_validator_runs_on_the_whole_spec() -> None:
    whole = StackSpec.__pydantic_decorators__.field_validators
    seen: dict[str, str] = {}
    for group in _groups():
        for name in group.__pydantic_decorators__.field_validators:
            if name in vars(group):
                assert name not in seen, f"{group.__name__}.{name} shadows {seen[name]}.{name}"
                seen[name] = group.__name__
    own = {n for n in whole if n in vars(StackSpec)}
    assert set(seen) | own == set(whole)


def test_every_key_belongs_to_one_group() -> None:
    owners: dict[str, str] = {}
    for group in [*_groups(), StackSpec]:
        for name in group.__annotations__:
            if name in StackSpec.model_fields:
                assert name not in owners, f"{name} is declared by {owners[name]} and {group.__name__}"
                owners[name] = group.__name__
    assert set(owners) == set(StackSpec.model_fields)


def test_a_shadowed_validator_would_be_caught() -> None:
    """The check above can fail: a subnet id of the wrong kind is refused (network group) and an
    AMI id of the wrong kind is refused (compute group) on the same spec class."""
    import pydantic
    import pytest

    base = {"model": "Qwen/Qwen3-0.6B", "instance_type": "g6e.xlarge"}
    with pytest.raises(pydantic.ValidationError, match="subnet"):
        StackSpec.model_validate({**base, "subnet_id": "vpc-0123456789abcdef0"})
    with pytest.raises(pydantic.ValidationError):
        StackSpec.model_validate({**base, "capacity_reservation_id": "subnet-0123456789abcdef0"})
