"""An AgentService on a real SQLite file and file key store, with a clock the test moves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mcagent.agent.app import build_service
from mcagent.agent.domain.calls import Caller
from mcagent.agent.domain.model import Backend
from mcagent.agent.domain.policy import Role
from mcagent.agent.domain.service import AgentService
from mcagent.agent.keys import KeyStores
from mcagent.agent.storage import Storage

from tests.conftest import KEYSTORE_PASSWORD

ADMIN = Caller("test-admin", is_admin=True)


class FakeClock:
    """A callable clock: returns `now` until the test sets or advances it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@dataclass
class Agent:
    service: AgentService
    storage: Storage
    clock: FakeClock
    callers: dict[str, Caller] = field(default_factory=dict)

    def principal(self, name: str) -> Caller:
        principal, _ = self.service.create_principal(ADMIN, name, None, None)
        self.callers[name] = Caller(name, principal.id)
        return self.callers[name]

    def business(self, abn: str, name: str, pa: str) -> Caller:
        caller = self.principal(pa)
        self.service.register_business(ADMIN, abn, name, pa)
        return caller

    def grant(self, by: Caller, abn: str, name: str, role: Role) -> Caller:
        caller = self.callers.get(name) or self.principal(name)
        self.service.grant_role(by, abn, name, role)
        return caller

    def close(self) -> None:
        self.service.close()
        self.storage.close()


def make_agent(tmp_path, now: dt.datetime, **service_options) -> Agent:
    """A service whose clock reads `now` (file key store only: no token needed)."""
    storage = Storage(str(tmp_path / "agent.db"))
    keys = KeyStores(default_backend=Backend.FILE, keystore_files={"default": str(tmp_path / "keys.mcks")},
                     keystore_password=KEYSTORE_PASSWORD)
    clock = FakeClock(now)
    service = build_service(storage, keys, clock=clock, **service_options)
    return Agent(service, storage, clock)
