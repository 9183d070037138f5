"""A `Supervisor` over stand-in workers (no grpc, no token), for tests/agent/test_supervisor.py.

Usage: python -m tests.agent.supervised DATA_DIR MODE
Modes: serves (each worker serves until SIGTERM), fails-at-start (worker 1 cannot start),
dies-then-fails (every worker serves once, worker 2 then dies and no replacement can start).
Each worker appends "<index> <event> <monotonic time> <pid>" lines to DATA_DIR/events.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from mcagent.agent.config import Config
from mcagent.agent.domain.model import Backend
from mcagent.agent.server.startup import WorkerRole
from mcagent.agent.server.supervisor import Supervisor


def main() -> None:
    data_dir, mode = sys.argv[1], sys.argv[2]
    events = os.path.join(data_dir, "events")

    def note(role: WorkerRole, event: str) -> None:
        with open(events, "a") as fh:
            fh.write(f"{role.index} {event} {time.monotonic():.6f} {os.getpid()}\n")

    def worker(config: Config, role: WorkerRole) -> int:
        note(role, "start" if role.first_start else "restart")
        if mode == "fails-at-start" and role.index == 1:
            return 2
        if mode == "dies-then-fails" and not role.first_start:
            return 2
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        time.sleep(0.3)  # start-up work: the next worker must wait for it
        note(role, "ready")
        role.ready()
        if mode == "dies-then-fails" and role.index == 2:
            time.sleep(1.0)  # after every worker has started
            os._exit(3)
        stop.wait()
        note(role, "stopped")
        return 0

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = Config(data_dir=data_dir, socket_path=os.path.join(data_dir, "s.sock"), default_backend=Backend.FILE,
                    keystore_files={}, grace_period=5.0)
    sys.exit(Supervisor(config, 3, worker, backoff=0.05).run())


if __name__ == "__main__":
    main()
