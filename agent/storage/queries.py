"""The base of the query mixins: the statements they run go through the engine (engine.py)."""

from __future__ import annotations

from typing import Any


class Queries:
    """What a query mixin runs its SQL with; `SqlRecords` provides it (``?`` placeholders)."""

    def _execute(self, query: str, params: tuple | list = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, query: str, params: list[tuple]) -> None:
        raise NotImplementedError

    def _one(self, query: str, params: tuple | list = ()) -> Any:
        raise NotImplementedError

    def _all(self, query: str, params: tuple | list = ()) -> list[Any]:
        raise NotImplementedError
