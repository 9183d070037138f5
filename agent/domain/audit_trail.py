"""The audit log's queries, its signed checkpoints and their verification."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from mcagent.agent.domain.abn import normalise_abn
from mcagent.agent.domain.audit import (
    CHECKPOINT,
    MAX_PAGE,
    TAMPERING,
    AuditEntry,
    VerifyResult,
    checkpoint_message,
    verify_chain,
)
from mcagent.agent.domain.calls import (
    SYSTEM_ACTOR,
    Caller,
)
from mcagent.agent.domain.errors import (
    InvalidArgument,
    PermissionDenied,
)
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.policy import Action
from mcagent.hsm.base import (
    CreateKeyRequest,
    KeyInfo,
    KeyStore,
    KeyType,
    SignatureAlgorithm,
    SignRequest,
)
from mcagent.hsm.errors import KeyNotFound

log = logging.getLogger(__name__)


class AuditTrail(ServiceBase):
    """List and verify the audit log; anchor it with checkpoints signed by the audit key."""

    # -- audit --------------------------------------------------------------------------------

    def list_audit(self, caller: Caller, abn: str | None, limit: int, after: int) -> tuple[list[AuditEntry], int]:
        """A page of the audit log, oldest first; returns the entries and the next cursor (0: no more)."""
        limit = limit or 100
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidArgument(f"--limit must be between 1 and {MAX_PAGE} (RAM exports at most {MAX_PAGE:,} "
                                  "records at a time)")
        if after < 0:
            raise InvalidArgument("--after must be a cursor printed by a previous page")
        if abn:
            abn = normalise_abn(abn)
            if not caller.is_admin:
                self._require(caller, abn, Action.VIEW_AUDIT)
        elif not caller.is_admin:
            raise PermissionDenied("only the local administrator may list every business's audit log; give --abn")
        entries = self._audit_log.page(abn=abn or None, after=after, limit=limit)
        return entries, entries[-1].seq if len(entries) == limit else 0

    AUDIT_KEY_LABEL = "mcagent-audit"

    def _audit_key(self, create: bool = False) -> tuple[KeyStore, KeyInfo] | None:
        """The audit key, found by its label in the default backend (never through the
        database, which is what it guards); None if it does not exist and `create` is False."""
        _, store = self._custody.for_new_key(None, None)
        uri = store.label_uri(self.AUDIT_KEY_LABEL)
        try:
            return store, store.public_key(uri)
        except KeyNotFound:
            if not create:
                return None
        return store, store.create_key(CreateKeyRequest(label=self.AUDIT_KEY_LABEL, key_type=KeyType.EC_P256))

    def check_audit_anchor(self) -> str:
        """At start-up: the newest checkpoint must carry a valid signature of the audit key.

        If the log was cut back before every checkpoint, or its tail rewritten, while the agent
        was stopped, an ``audit.tampering-detected`` entry records it before anything else is
        appended (so the next checkpoint cannot launder it); `audit verify` reports it for good.

        Returns:
            The problem found, or "".
        """
        # Under the lock the first checkpoint is written with (instances starting at once):
        # never between another instance's creation of the key and of its first checkpoint.
        with self._records.transaction(changes_state=False):
            self._records.lock(self.AUDIT_KEY_LABEL)
            problem = self._anchor_problem()
            if problem:
                log.error("audit log tampered with while the agent was stopped: %s", problem)
                self._audit(SYSTEM_ACTOR, TAMPERING, outcome="refused", detail={"problem": problem})
        return problem

    def _anchor_problem(self) -> str:
        found = self._audit_key()
        newest = self._audit_log.newest(CHECKPOINT)
        if found is None:
            if newest is None:
                seq, _ = self._audit_log.head()
                if seq:  # a log from before checkpoints (or one whose key and checkpoints both went)
                    log.warning("the audit log's %d entries predate its audit key: they are anchored only from "
                                "the first checkpoint on (audit verify shows where anchoring starts)", seq)
                return ""
            problem = (f"the agent's audit key is gone although checkpoint entry {newest.seq} was signed with it: "
                       "the key store was changed")
        elif not self._key_pair_matches(*found):
            problem = "the audit key's public half does not match its private key: the key store was changed"
        elif newest is None:
            problem = "the audit log holds no checkpoint although the agent's audit key exists: entries were removed"
        elif not self._checkpoint_verifier(found[1].public_key)(newest):
            problem = f"checkpoint entry {newest.seq} does not carry a valid signature: the log was rewritten"
        else:
            return ""
        return problem

    @staticmethod
    def _key_pair_matches(store: KeyStore, key: KeyInfo) -> bool:
        """Sign a fresh digest in custody and check it with the public key the store reports
        (a key store file's public half could be swapped without the password)."""
        digest = hashlib.sha256(secrets.token_bytes(32)).digest()
        signature = store.sign(SignRequest(uri=key.uri, algorithm=SignatureAlgorithm.ECDSA_SHA256,
                                           key_type=key.key_type, digest=digest))
        try:
            key.public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            return True
        except InvalidSignature:
            return False

    @staticmethod
    def _checkpoint_verifier(public_key: Any) -> Callable[[AuditEntry], bool]:
        def valid(entry: AuditEntry) -> bool:
            if entry.detail.get("signed_seq") != entry.seq - 1:
                return False
            try:
                signature = base64.b64decode(entry.detail.get("signature", ""), validate=True)
                digest = hashlib.sha256(checkpoint_message(entry.seq - 1, entry.prev_hash)).digest()
                public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
                return True
            except (InvalidSignature, ValueError, TypeError):
                return False
        return valid

    def checkpoint_audit(self, force: bool = False) -> AuditEntry | None:
        """Sign the head of the audit chain with the audit key, as a checkpoint entry.

        Written at start-up (creating the key if needed), periodically when the log has grown
        since the last checkpoint, and at shutdown. Returns the entry, or None if nothing new
        needed signing.
        """
        found = self._audit_key()
        if found is None:  # the first checkpoint: the key and it, once, under a lock (see above)
            with self._records.transaction(changes_state=False):
                self._records.lock(self.AUDIT_KEY_LABEL)
                found = self._audit_key(create=True)
                return self._checkpoint(*found, force=True)
        return self._checkpoint(*found, force=force)

    def _checkpoint(self, store: KeyStore, key: KeyInfo, force: bool) -> AuditEntry | None:
        def make(seq: int, head: str) -> dict[str, Any]:
            digest = hashlib.sha256(checkpoint_message(seq, head)).digest()
            signature = store.sign(SignRequest(uri=key.uri, algorithm=SignatureAlgorithm.ECDSA_SHA256,
                                                  key_type=key.key_type, digest=digest))
            return dict(at=self._clock(), actor=SYSTEM_ACTOR, action=CHECKPOINT, outcome="allowed",
                        detail={"signed_seq": seq, "signature": base64.b64encode(signature).decode("ascii"),
                                "algorithm": SignatureAlgorithm.ECDSA_SHA256.algorithm_name})

        seq, _ = self._audit_log.head()
        if not force and self._last_checkpoint is not None and self._last_checkpoint.seq == seq:
            return None
        self._last_checkpoint = self._audit_log.append_signed(make)
        return self._last_checkpoint

    def verify_audit(self, caller: Caller, expect_head: str = "") -> VerifyResult:
        """Check the whole hash chain and its signed checkpoints (local administrator only).

        Args:
            expect_head: ``SEQ:HASH`` of an entry recorded elsewhere, which must still be there.
        """
        self._require_admin(caller, "verify the audit log")
        expected = None
        if expect_head:
            seq, _, wanted = expect_head.partition(":")
            if not seq.isdigit() or len(wanted) != 64:
                raise InvalidArgument("--expect-head must be SEQ:HASH as printed by `mcagent audit verify`")
            expected = (int(seq), wanted)
        found = self._audit_key()
        checkpoint_valid = self._checkpoint_verifier(found[1].public_key) if found else (lambda _: False)

        def seen(entries: Iterator[AuditEntry]) -> Iterator[AuditEntry]:
            for entry in entries:
                if expected and entry.seq == expected[0]:
                    found_hashes.append(entry.hash)
                yield entry

        found_hashes: list[str] = []
        result = verify_chain(seen(self._audit_log.entries()), checkpoint_valid)
        if not result.ok:
            return result
        last = self._last_checkpoint
        problem = ""
        tampering = self._audit_log.newest(TAMPERING)
        if tampering is not None:
            problem = (f"entry {tampering.seq}: at start-up on {tampering.at.isoformat()} the agent found the log "
                       f"tampered with ({tampering.detail.get('problem', '')})")
        elif found is not None and result.checkpoint_seq == 0:
            problem = ("the log holds no checkpoint although the agent's audit key exists: entries were removed "
                       "(or the log was replaced)")
        elif last is not None and (result.entries < last.seq or result.checkpoint_seq < last.seq):
            problem = (f"the log ends before checkpoint entry {last.seq}, which this agent wrote at "
                       f"{last.at.isoformat()}: the newest entries were removed")
        elif expected and found_hashes != [expected[1]]:
            problem = (f"entry {expected[0]} is not the one expected (--expect-head): "
                       + ("the log is shorter" if not found_hashes else "it has a different hash"))
        if problem:
            return dataclasses.replace(result, ok=False, problem=problem)
        return result

