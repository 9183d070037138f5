"""PKCS#11 sessions shared by many threads, with one login and self-recovery.

- One login per token: a login session is opened with the PIN and kept open while the
  pool lives (python-pkcs11 logs every session out when a logged-in session closes).
  Worker sessions are opened without a PIN and share that login.
- A bounded set of read-write worker sessions; a thread borrows one, so no session is
  ever used by two threads at once, and the module (initialised with OS locking) runs
  calls on different sessions in parallel.
- Key look-ups go through one cache of object handles shared by every session
  (`hsm.pkcs11.handles`), so a key is searched for once per pool, not once per session;
  each worker session also keeps the signing keys it has made, so a key used again on the
  same session costs no call at all.
- When the module, token or sessions fail (closed, logged out, module re-initialised,
  device removed) the pool finalises and re-initialises the module, logs in again and
  starts afresh; the failing call is retried once. Recovery waits for calls in flight
  to finish (it holds the pool alone) and is retried with backoff while the token stays
  away; meanwhile calls raise TokenUnavailable at once.
- One lock and its condition guard everything: a call takes it once to borrow a session
  and once to give it back (a waiting thread is woken only when a session comes back or
  recovery ends).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from mcagent.hsm.errors import AuthFailed, KeyStoreError, TokenUnavailable
from mcagent.hsm.pkcs11.handles import KeyHandles
from mcagent.hsm.pkcs11.locking import ModuleInitializer
from pkcs11 import exceptions as p11e

log = logging.getLogger(__name__)

T = TypeVar("T")

# python-pkcs11 exception classes that mean "the session, login or module went away":
# recoverable by new sessions and a new login.
_TRANSIENT = (
    p11e.SessionClosed,
    p11e.SessionHandleInvalid,
    p11e.UserNotLoggedIn,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.DeviceMemory,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.GeneralError,
    p11e.FunctionFailed,
    p11e.NoSuchToken,
)
# A cached key object whose handle is gone (key destroyed elsewhere): drop caches, retry.
_STALE_HANDLE = (p11e.KeyHandleInvalid, p11e.ObjectHandleInvalid)
# PIN problems are permanent until an operator acts.
_AUTH = (p11e.PinIncorrect, p11e.PinLocked, p11e.PinExpired, p11e.PinInvalid, p11e.PinLenRange)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` from python-pkcs11 means the token may work again after recovery."""
    if isinstance(exc, _TRANSIENT):
        return True
    # CKR_CRYPTOKI_NOT_INITIALIZED has no class of its own in python-pkcs11.
    return type(exc) is p11e.PKCS11Error and "not initialized" in str(exc)


def classify(exc: p11e.PKCS11Error, what: str) -> KeyStoreError:
    """Translate a python-pkcs11 error into the hsm error tree; the message names the CKR."""
    name = type(exc).__name__
    if isinstance(exc, _AUTH):
        return AuthFailed(f"{what}: the token refused the PIN ({name})")
    if isinstance(exc, (p11e.TokenNotPresent, p11e.DeviceRemoved, p11e.NoSuchToken)):
        return TokenUnavailable(f"{what}: token not present ({name}); retry when it is back")
    if is_transient(exc):
        return TokenUnavailable(f"{what}: token unavailable ({name}); retry shortly")
    return KeyStoreError(f"{what}: PKCS#11 error {name}")


class ObjectGate:
    """Keeps token-object searches apart from token-object writes within this process.

    SoftHSM2 2.6.1's file token re-reads, during a search (C_FindObjectsInit, or reading the
    attributes of what it found), every object whose file changed, with no lock against a
    writer of the same process (its fcntl file locks do not exclude threads of one process).
    A search that reads an object another thread is creating or updating catches its file
    truncated or half written, marks it invalid and drops its attributes: the writer's
    C_GenerateKeyPair fails (CKR_GENERAL_ERROR, CKR_TEMPLATE_INCONSISTENT) and may leave a
    half-made object file, its C_SetAttributeValue fails (CKR_OBJECT_HANDLE_INVALID), or a
    finished key stays invisible to this process. Writers touch only their own objects, so
    they run side by side (`writing`); a search runs alone (`searching`). Signing neither
    searches nor writes and takes no part.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._writers = 0
        self._writers_waiting = 0
        self._searching = False
        self._searches_waiting = 0
        # Turns, so neither side starves: new writers wait behind a waiting search, and the
        # writers waiting when a search ends go in before the next search.
        self._writers_turn = False

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while creating, changing or destroying token objects (shared with other writers;
        never nested)."""
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._searching and (self._writers_turn or not self._searches_waiting))
            self._writers_waiting -= 1
            self._writers += 1
            if not self._writers_waiting:
                self._writers_turn = False
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def searching(self) -> Iterator[None]:
        """Hold while searching token objects and reading what the search found (alone)."""
        with self._cond:
            self._searches_waiting += 1
            self._cond.wait_for(lambda: not self._searching and not self._writers and not self._writers_turn)
            self._searches_waiting -= 1
            self._searching = True
        try:
            yield
        finally:
            with self._cond:
                self._searching = False
                self._writers_turn = self._writers_waiting > 0
                self._cond.notify_all()


@dataclass
class WorkerSession:
    """A borrowed read-write session and the private keys made on it for signing (by URI)."""

    session: Any
    keys: dict[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolStats:
    """What the pool has done, for health checks and tests."""

    healthy: bool
    generation: int
    sessions_open: int
    max_in_flight: int
    recoveries: int
    key_searches: int = 0  # targeted token searches for one object since the pool began
    key_index_passes: int = 0  # listings of every object of a class (see hsm.pkcs11.handles)


class SessionPool:
    """Logged-in sessions on one token, for concurrent use."""

    def __init__(
        self,
        module_path: str,
        token_label: str,
        pin: str,
        *,
        max_sessions: int = 8,
        wait_timeout: float = 30.0,
        retry_backoff: float = 1.0,
    ) -> None:
        """Load the module, initialise it with OS locking, find the token and log in.

        Args:
            module_path: the PKCS#11 shared library.
            token_label: label of the token to use.
            pin: the user PIN; kept in memory for re-login after recovery, never logged.
            max_sessions: most worker sessions open at once.
            wait_timeout: seconds a caller waits for a free session.
            retry_backoff: seconds between recovery attempts while the token stays away.

        Raises:
            AuthFailed: the PIN was refused.
            TokenUnavailable: the module or token cannot be used.
        """
        self._module_path = module_path
        self._token_label = token_label
        self._pin = pin
        self._max_sessions = max_sessions
        self._wait_timeout = wait_timeout
        self._retry_backoff = retry_backoff
        self._lock = threading.Lock()  # guards the counters, flags and session lists below
        self._cond = threading.Condition(self._lock)  # a session came back, or recovery ended
        self._idle: list[WorkerSession] = []  # a stack: the most recently used session first
        self._all: list[WorkerSession] = []
        self._in_flight = 0  # calls holding a session; recovery waits for none
        self._alone = False  # recovery (or close) holds the pool, or waits for the calls to end
        self._max_in_flight = 0
        self._generation = 0
        self._recoveries = 0
        self._healthy = False
        self._next_attempt = 0.0
        self._closed = False
        self._token: Any = None
        self._serial: bytes | None = None  # of the token logged in to, to tell it from another
        self._last_failure = ""
        self._login_session: Any = None
        self.objects = ObjectGate()  # searches apart from object writes (SoftHSM2's file token)
        self.handles = KeyHandles(self.objects.searching)  # of this module initialisation; cleared by recovery
        try:
            self._lib = pkcs11.lib(module_path)
            self._initializer = ModuleInitializer.for_module(module_path, self._lib)
        except (p11e.PKCS11Error, OSError) as exc:
            raise TokenUnavailable(f"cannot load PKCS#11 module {module_path}: {exc}") from exc
        self._start(recovering=False)

    # -- life cycle ---------------------------------------------------------------------

    def _start(self, *, recovering: bool) -> None:
        """Initialise the module (again when recovering), find the token, log in.

        The caller holds the gate alone.
        """
        what = f"PKCS#11 token {self._token_label!r}"
        try:
            if recovering:
                self._initializer.reinitialize()
            else:
                self._initializer.ensure_initialized()
            self._token = self._lib.get_token(token_label=self._token_label)
        except p11e.NoSuchToken as exc:
            raise TokenUnavailable(f"{what} not present in module {self._module_path}") from exc
        except (p11e.PKCS11Error, OSError) as exc:
            raise TokenUnavailable(f"{what}: module failed to initialise ({exc})") from exc
        try:
            self._login_session = self._token.open(rw=True, user_pin=self._pin)
        except p11e.UserAlreadyLoggedIn:
            self._login_session = self._token.open(rw=True)
        except p11e.PKCS11Error as exc:
            raise classify(exc, f"login to {what}") from exc
        self._serial = self._token.serial
        self._healthy = True
        self._last_failure = ""
        log.info("logged in to %s", what)

    def _discard_sessions(self) -> None:
        """Forget every session; closing them may fail when the module is gone."""
        with self._lock:
            sessions, self._all, self._idle = self._all, [], []
        for worker in sessions:
            with contextlib.suppress(Exception):
                worker.session.close()
        if self._login_session is not None:
            with contextlib.suppress(Exception):
                self._login_session.close()
            self._login_session = None

    def _recover(self, failed_generation: int) -> None:
        """Start again unless another thread already did since `failed_generation`."""
        with self._exclusive():
            if self._generation != failed_generation or self._closed:
                return
            if time.monotonic() < self._next_attempt:
                return
            self._generation += 1
            self._recoveries += 1
            self._healthy = False
            self.handles.clear()  # handles are void once the module is finalised
            log.warning("PKCS#11 token %r failed; re-initialising the module", self._token_label)
            self._discard_sessions()
            try:
                self._start(recovering=True)
            except KeyStoreError as exc:
                self._next_attempt = time.monotonic() + self._retry_backoff
                self._last_failure = str(exc)
                log.error("recovery of PKCS#11 token %r failed: %s", self._token_label, exc)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the pool alone: no call starts, and those in flight have ended."""
        with self._cond:
            self._cond.wait_for(lambda: not self._alone)
            self._alone = True
            self._cond.wait_for(lambda: self._in_flight == 0)
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()

    def close(self) -> None:
        """Close every session (which logs out) and finalise nothing: the module stays loaded."""
        with self._exclusive():
            self._closed = True
            self._discard_sessions()

    # -- use ----------------------------------------------------------------------------

    def run(self, what: str, operation: Callable[[WorkerSession], T], *, retry: bool = True) -> T:
        """Call `operation` with a borrowed session; recover and retry once on token failure.

        Args:
            what: what is being done, for error messages (no secrets).
            operation: the work; receives the session and its key cache.
            retry: False for operations that must not run twice (key generation).

        Raises:
            TokenUnavailable: the token failed and recovery did not bring it back.
            AuthFailed: the PIN was refused on re-login.
            KeyStoreError: any other PKCS#11 error, classified.
        """
        # A stale key handle and a token failure each earn one retry of their own: after a
        # logout, the cached handle fails first and the re-login is needed next.
        stale_retry, recovery_retry = retry, retry
        while True:
            generation = self._generation
            if not self._healthy and not self._closed:
                self._recover(generation)  # at most once per backoff period
                generation = self._generation
            try:
                worker, borrowed = self._borrow(what)
                try:
                    return operation(worker)
                finally:
                    self._give_back(worker, borrowed)
            except _STALE_HANDLE as exc:
                self.forget_keys()
                if not stale_retry:
                    raise classify(exc, what) from exc
                stale_retry = False
            except p11e.PKCS11Error as exc:
                if not is_transient(exc):
                    raise classify(exc, what) from exc
                log.warning("%s: %s; recovering", what, type(exc).__name__)
                self._recover(generation)
                if not recovery_retry:
                    raise classify(exc, what) from exc
                recovery_retry = False

    def _borrow(self, what: str) -> tuple[WorkerSession, int]:
        """A session of this thread's own and the generation it belongs to (one lock round trip
        unless every session is busy or recovery runs: then it waits up to `wait_timeout`)."""
        deadline = None
        with self._cond:
            while True:
                if not self._alone:
                    if self._closed:
                        raise TokenUnavailable(f"{what}: the key store is closed")
                    if not self._healthy:
                        reason = f" ({self._last_failure})" if self._last_failure else ""
                        raise TokenUnavailable(
                            f"{what}: PKCS#11 token {self._token_label!r} unavailable{reason}; "
                            f"recovery is retried every {self._retry_backoff:g}s"
                        )
                    if self._idle:
                        worker = self._idle.pop()
                        break
                    if len(self._all) < self._max_sessions:
                        worker = WorkerSession(self._token.open(rw=True))
                        self._all.append(worker)
                        break
                now = time.monotonic()
                deadline = deadline or now + self._wait_timeout
                if now >= deadline:
                    raise TokenUnavailable(f"{what}: no free PKCS#11 session within {self._wait_timeout:.0f}s")
                self._cond.wait(deadline - now)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return worker, self._generation

    def _give_back(self, worker: WorkerSession, generation: int) -> None:
        with self._cond:
            self._in_flight -= 1
            if generation == self._generation:  # else recovery has closed it
                self._idle.append(worker)
            if self._alone:
                self._cond.notify_all()  # recovery waits for the last call to end
            else:
                self._cond.notify()  # only borrowers wait now: one may take this session

    def require_token(self) -> None:
        """Check that the token logged in to is still there; call it when a search finds nothing.

        SoftHSM 2.6.1 answers object searches with an empty list, not an error, once its
        token directory has gone, so "no such key" may really mean "no token". The token is
        asked directly (C_GetTokenInfo on its slot) and must still carry the label and
        serial number it had at login.

        Raises:
            pkcs11.exceptions.TokenNotPresent: the token is gone or another one is in its
                slot (a transient error: the pool recovers and retries).
        """
        try:
            info = self._token.slot.get_token()
        except p11e.PKCS11Error as exc:
            if is_transient(exc) or isinstance(exc, p11e.SlotIDInvalid):
                raise p11e.TokenNotPresent() from exc
            raise
        if info.label != self._token_label or info.serial != self._serial:
            raise p11e.TokenNotPresent()

    def forget_keys(self) -> None:
        """Empty the shared handle cache and every session's objects (a stale handle was met)."""
        self.handles.clear()
        with self._lock:
            for worker in self._all:
                worker.keys.clear()

    def forget_handles(self, handles: set[int]) -> None:
        """Forget the objects at `handles` (destroyed by this store): the shared cache's entries
        and every session's objects for them; every other cached key stays."""
        self.handles.drop_handles(handles)
        with self._lock:
            for worker in self._all:
                for key, obj in list(worker.keys.items()):
                    if obj.handle in handles:
                        del worker.keys[key]

    def stats(self) -> PoolStats:
        """A snapshot of the pool's state."""
        with self._lock:
            return PoolStats(
                healthy=self._healthy,
                generation=self._generation,
                sessions_open=len(self._all),
                max_in_flight=self._max_in_flight,
                recoveries=self._recoveries,
                key_searches=self.handles.searches,
                key_index_passes=self.handles.index_passes,
            )
