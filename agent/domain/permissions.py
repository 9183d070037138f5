"""The permission catalogue: loaded once from data/permissions.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from mcagent.agent.domain.errors import InvalidArgument


@dataclass(frozen=True)
class Permission:
    """A government service a machine credential may be used for."""

    id: str
    agency: str
    service: str


def _load() -> dict[str, Permission]:
    text = resources.files("mcagent.agent.domain").joinpath("data/permissions.json").read_text(encoding="utf-8")
    return {p["id"]: Permission(p["id"], p["agency"], p["service"]) for p in json.loads(text)["permissions"]}


CATALOGUE: dict[str, Permission] = _load()
ALL_PERMISSIONS: tuple[str, ...] = tuple(sorted(CATALOGUE))


def check_permissions(ids: list[str]) -> list[str]:
    """Validate permission ids; return them sorted without repeats.

    Raises:
        InvalidArgument: an id is not in the catalogue (the message lists the known ones).
    """
    unknown = [p for p in ids if p not in CATALOGUE]
    if unknown:
        raise InvalidArgument(f"unknown permission(s) {', '.join(unknown)}; known: {', '.join(ALL_PERMISSIONS)}")
    return sorted(set(ids))
