"""The records read on every sign, cached until the next change commits.

`CachedRecords` decorates a `Records` port: a credential by id, a principal's roles in a
business and a principal by token hash are kept until `state_version` moves (every
committed change bumps it, in the database), so a revoke, a role removal or a permission
change committed by any process sharing the database is enforced from the next request on.

The version is read once per request (`one_version`: the request's entry point, the
authenticating interceptor or the domain's sign, reads it and every lookup of that request
uses that value) and on every lookup outside one. A request thus sees state at least as new
as its start; a change committed while it runs is caught where it must be (the appender
re-reads revocation in its own transaction). Reads inside a transaction must go to the
records themselves (they see uncommitted changes), never through the cache.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mcagent.agent.domain.model import Credential, Principal
from mcagent.agent.domain.policy import Role
from mcagent.agent.domain.ports import Records

# The state version the current request works against and `Records.commits_here` when it was
# read (None: not inside `one_version`).
_request_version: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "mcagent_state_version", default=None)


class CachedRecords:
    """The three hot-path reads of `Records`, cached per state version."""

    def __init__(self, records: Records) -> None:
        self._records = records
        self._version = -1
        self._entries: dict[tuple[str, Any], Any] = {}
        self._lock = threading.Lock()

    def state_version(self) -> int:
        """The request's state version inside `one_version`, else the committed one (read now).

        A change committed by this process since the request's read (the request's own, say)
        makes it read again: a request that changes state and then looks up sees its change.
        """
        pinned = _request_version.get()
        if pinned is not None and pinned[1] == self._records.commits_here:
            return pinned[0]
        commits = self._records.commits_here  # before the read: a commit meanwhile is caught next time
        version = self._records.state_version
        if pinned is not None:
            _request_version.set((version, commits))
        return version

    @contextmanager
    def one_version(self) -> Iterator[int]:
        """Read the state version once for the block (a request): every lookup in it uses that
        value, until this process commits a change. Nested blocks keep the outer one's. Do not
        hold one across requests (a stream): another process's change would go unseen."""
        if _request_version.get() is not None:
            yield self.state_version()
            return
        commits = self._records.commits_here
        version = self._records.state_version
        token = _request_version.set((version, commits))
        try:
            yield version
        finally:
            _request_version.reset(token)

    def get_credential(self, credential_id: str) -> Credential | None:
        """See `Records.get_credential`."""
        return self._get("credential", credential_id, self._records.get_credential)

    def roles_of(self, abn: str, principal_id: str) -> frozenset[Role]:
        """See `Records.roles_of` (frozen: it is shared)."""
        return self._get("roles", (abn, principal_id), lambda key: frozenset(self._records.roles_of(*key)))

    def principal_by_token_hash(self, token_hash: str) -> Principal | None:
        """The principal whose bearer token hashes to `token_hash`."""
        return self._get("token", token_hash, lambda key: self._records.principal_where("token_hash", key))

    def _get(self, kind: str, key: Any, load: Callable[[Any], Any]) -> Any:
        version = self.state_version()  # read before the value: what is kept is never older
        with self._lock:
            if version > self._version:
                self._entries.clear()
                self._version = version
            if version == self._version:
                try:
                    return self._entries[(kind, key)]
                except KeyError:
                    pass
        # A request that started before the cache moved on loads from the records (state at
        # least as new as its version) and keeps nothing: the cache never goes back.
        value = load(key)
        if value is None:  # misses are not kept: unknown tokens must not grow the cache
            return value
        with self._lock:
            if self._version == version:  # not cached across a change that happened meanwhile
                self._entries[(kind, key)] = value
        return value
