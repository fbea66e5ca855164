"""Flat keys of the old config layout, moved to their nested place with a DeprecationWarning.

Used by a ``model_validator(mode="before")`` of each nested section, so YAML files and environment
variables written for the flat layout keep working while they are migrated.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

#: legacy flat key -> (group, key inside the group)
Moves = Mapping[str, tuple[str, str]]


def move_legacy_keys(data: Any, section: str, moves: Moves) -> Any:
    """``data`` with each legacy key of ``moves`` moved under its group.

    Both spellings of one setting with different values is an error: which one was meant cannot be
    told (a YAML file and an environment variable may each use one)."""
    if not isinstance(data, Mapping) or not any(key in moves for key in data):
        return data
    out = dict(data)
    for old in [key for key in out if key in moves]:
        group, new = moves[old]
        value = out.pop(old)
        nested = _as_dict(out.get(group))
        if new in nested and str(nested[new]) != str(value):
            raise ValueError(
                f"{section}.{old} ({value!r}) and {section}.{group}.{new} ({nested[new]!r}) are both "
                f"set; keep only {section}.{group}.{new}"
            )
        nested[new] = value
        out[group] = nested
        warnings.warn(f"{section}.{old} is now {section}.{group}.{new}", DeprecationWarning, stacklevel=2)
    return out


def _as_dict(group: Any) -> dict[str, Any]:
    if group is None:
        return {}
    if isinstance(group, BaseModel):
        return group.model_dump(exclude_unset=True)
    if isinstance(group, Mapping):
        return dict(group)
    raise ValueError(f"expected a mapping, got {group!r}")
