"""Files on the caller's machine: reading inputs, writing secrets, asking for a password."""

from __future__ import annotations

import os
import sys

from mcagent.cli.errors import CommandFailed


def read_file(path: str, what: str) -> bytes:
    """The bytes of `path`; a failure names `what` (usually the flag) and the reason."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CommandFailed(f"cannot read {what} {path}: {exc.strerror}") from None


def read_input(path: str) -> bytes:
    """The bytes of `--in PATH`, or standard input for `-`."""
    if path == "-":
        return sys.stdin.buffer.read()
    return read_file(path, "--in")


def write_private_file(path: str, data: bytes) -> None:
    """Write atomically with mode 0600: a temporary file beside it, fsync, rename. A path
    that is not a regular file (/dev/null, a pipe) is written to as it is: a rename would
    replace the device itself."""
    if os.path.exists(path) and not os.path.isfile(path):
        try:
            with open(path, "wb") as fh:
                fh.write(data)
            return
        except OSError as exc:
            raise CommandFailed(f"cannot write {path}: {exc.strerror}") from None
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise CommandFailed(f"cannot write {path}: {exc.strerror}") from None


def password(password_file: str | None, env_name: str, *, confirm: bool) -> str:
    """A password from `password_file`, else the environment, else a prompt on the terminal."""
    if password_file:
        secret = read_file(password_file, "--password-file").decode("utf-8").rstrip("\r\n")
    else:
        secret = os.environ.get(env_name, "")
    if secret:
        return secret
    if not sys.stdin.isatty():
        raise CommandFailed(f"no password: set {env_name}, pass --password-file FILE, or run on a terminal")
    import getpass

    secret = getpass.getpass("Key store password: ")
    if confirm and getpass.getpass("Again: ") != secret:
        raise CommandFailed("the two passwords differ")
    return secret
