"""Object handles shared by every session of a pool, so a key is searched for once, not once per session.

PKCS#11 (v2.40 §2.4, §6.7) gives a token object one handle in every session of the
application, so the handle found through one session is good in all of them. SoftHSM2
searches by walking every object of the token (a file token also checks each object's file),
so a search costs time linear in the token's objects; with a cache per session, a rotation
across many keys searched on nearly every sign.

- A reference is what the backend searches by: (object class, CKA_ID or None, CKA_LABEL or None).
- A handle from the cache is turned into a python-pkcs11 object of the borrowed session
  (`object_at`) and its class, id and label are read back and compared with the reference
  before use: a handle whose object was destroyed (here or by another process) or, on a
  token that reuses handles, now names another object, is dropped and the token searched.
- The first miss for a class lists every object of that class once (an index pass, about
  five searches' worth of work on SoftHSM2) and caches them all; later misses (a key made by
  another process since) search for the one object. A search remains the only authority for
  "no such key".
- Handles die with the module's initialisation (C_Finalize): the pool clears the cache on
  recovery, and the backend clears it when it destroys objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11._pkcs11 import SearchIter

Ref = tuple[ObjectClass, "bytes | None", "str | None"]

_AMBIGUOUS = -1  # more than one object matches: let a search report it


def object_at(session: Any, handle: int) -> Any:
    """The python-pkcs11 object for `handle` in `session`, made by python-pkcs11's own code.

    python-pkcs11 (0.10) makes objects only in C (`make_object`, reached from a search);
    `SearchIter._batch_iter` is the one way in from Python that takes handles, and it starts
    no search (only entering the iterator does). It reads the object's class and capability
    flags, as a search would: a handle that names no object raises ObjectHandleInvalid.
    tests/hsm/test_key_handles.py checks this stays so.
    """
    return next(iter(SearchIter(session, {}, 1)._batch_iter([handle], 1)))


class KeyHandles:
    """Handles of token objects by reference, shared by the sessions of one pool (thread-safe)."""

    def __init__(self, searching: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        """`searching()` is held around an index pass (see `hsm.pkcs11.pool.ObjectGate`)."""
        self._searching = searching
        self._lock = threading.Lock()
        self._handles: dict[Ref, int] = {}
        self._indexed: set[ObjectClass] = set()
        self._index_lock = threading.Lock()  # one index pass at a time; others wait for its result
        self._epoch = 0  # bumped by clear(): a look-up begun before a clear stores nothing
        self.searches = 0  # targeted token searches, for tests and the bench
        self.index_passes = 0

    def clear(self) -> None:
        """Forget every handle (objects destroyed, or the module initialised again)."""
        with self._lock:
            self._handles.clear()
            self._indexed.clear()
            self._epoch += 1

    def find(self, session: Any, ref: Ref, search: Any) -> Any:
        """The object `ref` names, as an object of `session`.

        Args:
            session: the borrowed python-pkcs11 session.
            ref: (class, id or None, label or None).
            search: `search(session) -> object`: the targeted search, which raises when no
                single object matches.
        """
        with self._lock:
            epoch = self._epoch
            handle = self._handles.get(ref)
        if handle is None:
            handle = self._index(session, ref)
        if handle is not None and handle != _AMBIGUOUS:
            obj = self._checked(session, handle, ref)
            if obj is not None:
                return obj
            self._drop(ref, handle)
        with self._lock:
            self.searches += 1
        obj = search(session)
        self.put(ref, obj.handle, epoch)
        return obj

    def drop_handles(self, handles: set[int]) -> None:
        """Forget every reference to the objects at `handles` (destroyed by this process).

        The index passes stay valid for the rest: a dropped reference is searched for again.
        """
        with self._lock:
            self._handles = {ref: h for ref, h in self._handles.items() if h not in handles}

    def put(self, ref: Ref, handle: int, epoch: int | None = None) -> None:
        """Remember `handle` for `ref` (unless the cache was cleared since `epoch`)."""
        with self._lock:
            if epoch is None or epoch == self._epoch:
                self._handles[ref] = handle

    @property
    def epoch(self) -> int:
        """Read before looking an object up, passed to `put` after."""
        with self._lock:
            return self._epoch

    def _drop(self, ref: Ref, handle: int) -> None:
        with self._lock:
            if self._handles.get(ref) == handle:
                del self._handles[ref]

    @staticmethod
    def _checked(session: Any, handle: int, ref: Ref) -> Any:
        """The object at `handle` if it is still the one `ref` names, else None."""
        object_class, key_id, label = ref
        try:
            obj = object_at(session, handle)
            found = obj.get_attributes([Attribute.CLASS, Attribute.ID, Attribute.LABEL])
        except (p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid):
            return None
        if found.get(Attribute.CLASS) != object_class:
            return None
        if key_id is not None and bytes(found.get(Attribute.ID, b"")) != key_id:
            return None
        if label is not None and found.get(Attribute.LABEL) != label:
            return None
        return obj

    def _index(self, session: Any, ref: Ref) -> int | None:
        """List every object of `ref`'s class once per cache life; the handle for `ref` or None."""
        object_class = ref[0]
        with self._lock:
            if object_class in self._indexed:
                return None
        with self._index_lock:
            with self._lock:
                epoch = self._epoch
                if object_class in self._indexed:  # another thread indexed while we waited
                    return self._handles.get(ref)
                self.index_passes += 1
            found: dict[Ref, int] = {}
            try:
                with self._searching():
                    for obj in session.get_objects({Attribute.CLASS: object_class}):
                        attrs = obj.get_attributes([Attribute.ID, Attribute.LABEL])
                        key_id, label = bytes(attrs.get(Attribute.ID, b"")), attrs.get(Attribute.LABEL)
                        for each in ((object_class, key_id, label), (object_class, key_id, None),
                                     (object_class, None, label)):
                            found[each] = _AMBIGUOUS if each in found else obj.handle
            except (p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid):
                # An object listed went before it was read (a failed key generation elsewhere
                # removes its half-made objects): the pass is only a shortcut, so give it up
                # and let this look-up search; the next miss tries a pass again.
                return None
            with self._lock:
                if epoch != self._epoch:
                    return None
                # The listing is the freshest word on what it lists: it wins over what was put meanwhile.
                self._handles = {**self._handles, **found}
                self._indexed.add(object_class)
                return found.get(ref)
