"""The key store file: atomic, locked, private, and loud about wrong passwords and damage."""

from __future__ import annotations

import base64
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest
from mcagent.hsm.errors import AuthFailed, StoreCorrupted, StoreUnsafe
from mcagent.hsm.filestore import FileKeyStore

from tests.conftest import KEYSTORE_PASSWORD, REPO
from tests.verify import verify

EC = KeyType.EC_P256
ECDSA = SignatureAlgorithm.ECDSA_SHA256


def _writer(path, prefix: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.hsm.store_writer", str(path), prefix, str(count)],
        cwd=REPO,
        env={**os.environ, "STORE_PASSWORD": KEYSTORE_PASSWORD},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _labels(store: FileKeyStore) -> list[str]:
    return [uri.rsplit("#", 1)[1] for uri in store.list_keys()]


def _sign_check(store: FileKeyStore, label: str) -> None:
    uri = store.label_uri(label)
    digest = ECDSA.hash.digest(label.encode())
    signature = store.sign(SignRequest(uri=uri, algorithm=ECDSA, key_type=EC, digest=digest))
    verify(store.public_key(uri).public_key, ECDSA, label.encode(), signature)


def test_file_is_private_even_under_a_loose_umask(tmp_path):
    old = os.umask(0)
    try:
        store = FileKeyStore(str(tmp_path / "keys.mcks"), KEYSTORE_PASSWORD)
        store.create_key(CreateKeyRequest(label="one", key_type=EC))
    finally:
        os.umask(old)
    for name in ("keys.mcks", "keys.mcks.lock"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_private_keys_are_not_in_the_file_in_clear(tmp_path):
    from cryptography.hazmat.primitives import serialization

    path = tmp_path / "keys.mcks"
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    store.create_key(CreateKeyRequest(label="one", key_type=EC))
    key = store._private_key("one")  # white box: the decrypted key held in memory
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    content = path.read_bytes()
    for secret in (der, scalar):
        assert secret not in content and base64.b64encode(secret) not in content


def test_wrong_password_is_refused_and_file_untouched(tmp_path):
    path = tmp_path / "keys.mcks"
    FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="one", key_type=EC))
    before = path.read_bytes()
    with pytest.raises(AuthFailed, match=f"wrong password for key store file {path}") as caught:
        FileKeyStore(str(path), "Not-the-password-1")
    assert "Not-the-password-1" not in str(caught.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "not-json", "other-format"])
def test_corrupted_file_is_refused_and_never_overwritten(tmp_path, damage):
    path = tmp_path / "keys.mcks"
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    store.create_key(CreateKeyRequest(label="one", key_type=EC))
    good = path.read_bytes()
    broken = {
        "truncated": good[: len(good) // 2],
        "not-json": b"\x00\x01garbage",
        "other-format": good.replace(b"mcagent-keystore/1", b"something-else/9"),
    }[damage]
    path.write_bytes(broken)
    with pytest.raises(StoreCorrupted, match=f"key store file {path} cannot be read"):
        FileKeyStore(str(path), KEYSTORE_PASSWORD)
    # A store opened before the damage re-reads the file under the lock and refuses to write.
    with pytest.raises(StoreCorrupted):
        store.create_key(CreateKeyRequest(label="two", key_type=EC))
    assert path.read_bytes() == broken


def test_damaged_key_entry_is_reported_as_damaged(tmp_path):
    import json

    path = tmp_path / "keys.mcks"
    FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="one", key_type=EC))
    document = json.loads(path.read_text())
    sealed = bytearray(document["keys"]["one"]["private_key"].encode())
    sealed[40] = ord("A") if sealed[40] != ord("A") else ord("B")
    document["keys"]["one"]["private_key"] = sealed.decode()
    path.write_text(json.dumps(document))
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    with pytest.raises(StoreCorrupted, match="key 'one' in key store file .* is damaged"):
        store.sign(SignRequest(uri=store.label_uri("one"), algorithm=ECDSA, key_type=EC, digest=bytes(32)))


def test_two_writers_lose_nothing(tmp_path):
    path = tmp_path / "keys.mcks"
    FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="seed", key_type=EC))
    writers = [_writer(path, prefix, 25) for prefix in ("a", "b")]
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    labels = set(_labels(FileKeyStore(str(path), KEYSTORE_PASSWORD)))
    assert labels == {"seed"} | {f"{p}{n:05d}" for p in "ab" for n in range(25)}


def _spin_until(condition, timeout: float, what: str) -> None:
    """Poll without sleeping (a write lasts well under a millisecond on tmpfs)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def _first_line(process: subprocess.Popen) -> str:
    """The first line of its output, read from the pipe itself one byte at a time.

    Not `stdout.readline()`: that buffers further lines which `communicate()`, reading the
    pipe's descriptor, would then never see.
    """
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(process.stdout.fileno(), 1)
        if not byte:
            break
        line += byte
    return line.decode().strip()


def test_killed_writer_leaves_old_or_new_file(tmp_path):
    """SIGKILL a writing process in the middle of saving; the store always loads, losing nothing saved.

    Each round waits until the writer has saved its first key (so the file exists and the
    writer is in its loop), then for its next ``.tmp`` to appear, and kills it at once or a
    little later: between creating the temporary file and renaming it over the store.
    """
    path = tmp_path / "keys.mcks"
    temporary = tmp_path / "keys.mcks.tmp"
    rng = random.Random(7519)
    saved: list[str] = []
    caught_mid_write = 0
    rounds = 30
    for round_ in range(rounds):
        writer = _writer(path, "k", 10_000)
        first = _first_line(writer)
        assert first, "the writer stopped before saving a key"
        _spin_until(temporary.exists, 60, "the writer's next temporary file")
        delay = time.perf_counter() + rng.choice([0.0, 0.0, rng.uniform(0, 0.002)])
        while time.perf_counter() < delay:
            pass
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        assert writer.returncode == -signal.SIGKILL
        caught_mid_write += temporary.exists()
        printed = [first, *out.split()]
        saved.extend(printed)
        store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
        labels = _labels(store)
        # Every key reported as saved is there; at most one more (saved, not yet reported).
        context = f"round {round_}: printed {printed}, file ends {labels[-3:]}"
        assert labels[: len(saved)] == saved, context
        assert len(labels) - len(saved) in (0, 1), context
        if len(labels) > len(saved):
            saved.append(labels[-1])
        assert labels == [f"k{n:05d}" for n in range(len(labels))], context
        for label in {labels[0], labels[-1], rng.choice(labels)}:
            _sign_check(store, label)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The kills really landed inside writes (a .tmp left behind, which the next writer replaces).
    assert caught_mid_write >= rounds // 2, f"only {caught_mid_write} of {rounds} kills landed mid-write"
    assert len(saved) >= rounds  # each round saved at least the key it waited for


# -- paths an attacker could prepare ------------------------------------------------------


def _store_with_key(path) -> bytes:
    FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="one", key_type=EC))
    return path.read_bytes()


def _victim(tmp_path):
    """A file that is not the key store's business, outside its directory."""
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    victim = outside / "precious"
    victim.write_bytes(b"root:$6$not-a-key-store:19000:0:99999:7:::\n")
    victim.chmod(0o644)
    return victim


def _unchanged(victim, content=b"root:$6$not-a-key-store:19000:0:99999:7:::\n") -> None:
    assert victim.read_bytes() == content
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_symlinked_store_path_is_refused(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir(mode=0o700)
    real = store_dir / "real.mcks"
    content = _store_with_key(real)
    link = store_dir / "keys.mcks"
    link.symlink_to(real)
    with pytest.raises(StoreUnsafe, match=f"key store file {re.escape(str(link))} is a symbolic link"):
        FileKeyStore(str(link), KEYSTORE_PASSWORD)
    # Nor may a link to a file that is not a key store be opened, or replaced by a write.
    victim = _victim(tmp_path)
    link.unlink()
    link.symlink_to(victim)
    with pytest.raises(StoreUnsafe, match="is a symbolic link"):
        FileKeyStore(str(link), KEYSTORE_PASSWORD)
    assert real.read_bytes() == content
    assert link.is_symlink()
    _unchanged(victim)


def test_symlink_made_after_opening_is_refused_on_write(tmp_path):
    path = tmp_path / "keys.mcks"
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)  # no file yet
    victim = _victim(tmp_path)
    path.symlink_to(victim)
    with pytest.raises(StoreUnsafe, match="is a symbolic link"):
        store.create_key(CreateKeyRequest(label="one", key_type=EC))
    assert path.is_symlink()
    _unchanged(victim)


def test_symlinked_temporary_file_leaves_its_target_untouched(tmp_path):
    path = tmp_path / "keys.mcks"
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    store.create_key(CreateKeyRequest(label="one", key_type=EC))
    victim = _victim(tmp_path)
    (tmp_path / "keys.mcks.tmp").symlink_to(victim)
    # Treated as a stale temporary file: the link is removed, never followed.
    store.create_key(CreateKeyRequest(label="two", key_type=EC))
    _unchanged(victim)
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "keys.mcks.tmp").exists()
    reopened = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    assert _labels(reopened) == ["one", "two"]
    _sign_check(reopened, "two")


def test_symlinked_lock_file_is_refused(tmp_path):
    path = tmp_path / "keys.mcks"
    content = _store_with_key(path)
    victim = _victim(tmp_path)
    lock = tmp_path / "keys.mcks.lock"
    lock.unlink()
    lock.symlink_to(victim)
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    with pytest.raises(StoreUnsafe, match=f"lock file {re.escape(str(lock))} is a symbolic link"):
        store.create_key(CreateKeyRequest(label="two", key_type=EC))
    _unchanged(victim)
    assert path.read_bytes() == content
    # A dangling link would otherwise create its target: refused the same way.
    lock.unlink()
    lock.symlink_to(tmp_path / "outside" / "created-by-the-agent")
    with pytest.raises(StoreUnsafe, match="is a symbolic link"):
        store.create_key(CreateKeyRequest(label="two", key_type=EC))
    assert not (tmp_path / "outside" / "created-by-the-agent").exists()


def test_fifo_as_store_path_fails_at_once(tmp_path):
    path = tmp_path / "keys.mcks"
    os.mkfifo(path, 0o600)
    outcome: list[BaseException | None] = []

    def open_store() -> None:
        try:
            FileKeyStore(str(path), KEYSTORE_PASSWORD)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    opener = threading.Thread(target=open_store, daemon=True)
    opener.start()
    opener.join(timeout=30)
    blocked = opener.is_alive()
    if blocked:  # release a reader stuck in open() so the thread can end
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        opener.join(timeout=30)
    assert not blocked, "opening a FIFO as the key store blocked"
    assert isinstance(outcome[0], StoreUnsafe), outcome
    assert f"key store file {path} is not a regular file" in str(outcome[0])


def test_lock_file_that_is_a_fifo_is_refused(tmp_path):
    path = tmp_path / "keys.mcks"
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    os.mkfifo(tmp_path / "keys.mcks.lock", 0o600)
    with pytest.raises(StoreUnsafe, match="lock file .* is not a regular file"):
        store.create_key(CreateKeyRequest(label="one", key_type=EC))


@pytest.mark.parametrize("mode", [0o770, 0o703, 0o1777], ids=lambda m: f"{m:04o}")
def test_directory_open_to_others_is_refused(tmp_path, mode):
    directory = tmp_path / "shared"
    directory.mkdir()
    path = directory / "keys.mcks"
    content = _store_with_key(path)
    directory.chmod(mode)
    with pytest.raises(StoreUnsafe, match=f"directory {re.escape(str(directory))} .* writable by group or others .*"
                                          f"fix it: chmod go-w {re.escape(str(directory))}$"):
        FileKeyStore(str(path), KEYSTORE_PASSWORD)
    # A store opened before the directory was opened up stops writing too.
    directory.chmod(0o700)
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    directory.chmod(mode)
    with pytest.raises(StoreUnsafe, match="chmod go-w"):
        store.create_key(CreateKeyRequest(label="two", key_type=EC))
    assert path.read_bytes() == content


def test_store_file_open_to_group_or_others_is_refused(tmp_path):
    path = tmp_path / "keys.mcks"
    content = _store_with_key(path)
    path.chmod(0o640)
    escaped = re.escape(str(path))
    expected = f"key store file {escaped} is open to group or others .*chmod 600 {escaped}$"
    with pytest.raises(StoreUnsafe, match=expected):
        FileKeyStore(str(path), KEYSTORE_PASSWORD)
    assert path.read_bytes() == content


def _require_root() -> None:
    if os.geteuid() == 0:
        return
    message = "needs root to give a file to another user (chown)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI runs the tests as root")
    pytest.skip(message)


def test_store_file_owned_by_someone_else_is_refused(tmp_path):
    _require_root()
    path = tmp_path / "keys.mcks"
    content = _store_with_key(path)
    os.chown(path, 65534, 65534)
    escaped = re.escape(str(path))
    with pytest.raises(StoreUnsafe, match=f"key store file {escaped} is owned by uid 65534, not by the agent's uid 0"):
        FileKeyStore(str(path), KEYSTORE_PASSWORD)
    assert path.read_bytes() == content
    os.chown(path, 0, 0)
    os.chown(tmp_path / "keys.mcks.lock", 65534, 65534)
    with pytest.raises(StoreUnsafe, match="lock file .* is owned by uid 65534"):
        FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="two", key_type=EC))


def test_directory_owned_by_someone_else_is_refused(tmp_path):
    _require_root()
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    escaped = re.escape(str(directory))
    with pytest.raises(StoreUnsafe, match=f"directory {escaped} .* owned by uid 65534, not by the agent's uid 0"):
        FileKeyStore(str(directory / "keys.mcks"), KEYSTORE_PASSWORD)


@pytest.mark.parametrize("content", [
    b"root:$6$secret-hash-material:19000:0:99999:7:::\n",
    b'{"password": "hunter2-Secret"}',
    b"[1, 2, 3]",
    b"",
], ids=["passwd-line", "other-json", "json-list", "empty"])
def test_file_that_is_not_a_key_store_is_refused_without_quoting_it(tmp_path, content):
    path = tmp_path / "keys.mcks"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(StoreCorrupted) as caught:
        FileKeyStore(str(path), KEYSTORE_PASSWORD)
    message = str(caught.value)
    assert message == f"key store file {path} cannot be read: it is not an mcagent key store file"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert path.read_bytes() == content
