"""The two pieces of systemd's protocol the daemon speaks, without libsystemd.

- Readiness (`Type=notify`, sd_notify(3)): ``READY=1`` once every listener accepts,
  ``STOPPING=1`` when a stop begins, as datagrams to ``$NOTIFY_SOCKET`` (a path, or an
  abstract name written with a leading ``@``). Without the variable nothing is sent.
- Socket activation (sd_listen_fds(3)): when ``$LISTEN_PID`` is this process, the
  ``$LISTEN_FDS`` descriptors from 3 on are listening sockets systemd made for us.

Both variables are removed from the environment once read, so nothing the daemon starts
later takes them for its own.
"""

from __future__ import annotations

import logging
import os
import socket
import stat

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
LISTEN_FDS_START = 3


def notify(state: str) -> bool:
    """Send `state` (e.g. ``READY=1``) to the service manager; True if one was told.

    A failure to send is logged, never raised: the daemon serves the same either way.
    """
    address = os.environ.get(NOTIFY_SOCKET_ENV)
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    elif not address.startswith("/"):
        log.warning("ignoring %s=%r: neither a path nor an abstract name", NOTIFY_SOCKET_ENV, address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify the service manager (%s): %s", state.split("=")[0], exc)
        return False
    return True


def listen_fds() -> list[socket.socket]:
    """The listening sockets passed by socket activation, in order (empty without activation).

    Raises:
        ValueError: LISTEN_FDS or LISTEN_PID is not a number.
    """
    pid, count = os.environ.pop("LISTEN_PID", None), os.environ.pop("LISTEN_FDS", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if not pid or not count or int(pid) != os.getpid():
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise ValueError(f"file descriptor {fd} passed by the service manager is not a socket")
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def unix_listener(sockets: list[socket.socket]) -> socket.socket | None:
    """The one AF_UNIX stream socket among `sockets`; the others are closed with a warning."""
    chosen = None
    for sock in sockets:
        if chosen is None and sock.family == socket.AF_UNIX and sock.type == socket.SOCK_STREAM:
            chosen = sock
        else:
            log.warning("ignoring socket %r passed by the service manager: only one Unix stream socket "
                        "is used (the TCP listener is configured with --listen)", sock.getsockname())
            sock.close()
    return chosen
