"""Signing: authorise each item against current state, sign in custody, record before returning."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mcagent.agent.domain import credential as lifecycle
from mcagent.agent.domain.calls import (
    AuditContext,
    Caller,
    Signed,
    SignItem,
)
from mcagent.agent.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Credential
from mcagent.agent.domain.permissions import ALL_PERMISSIONS, check_permissions
from mcagent.agent.domain.policy import Action
from mcagent.hsm.base import (
    SignatureAlgorithm,
    SignRequest,
)
from mcagent.hsm.errors import KeyStoreError, Unsupported

log = logging.getLogger(__name__)

MAX_BATCH = 1000
BATCH_WORKERS = 4  # parallel signs within one batch; the token's sessions bound it too
MAX_REFUSALS_AUDITED = 100  # per batch, one entry each; the rest are counted in one summary entry
WITHHELD = "the credential was revoked while the signature was being made; the signature was withheld"


@dataclass(frozen=True)
class _Authorised:
    """A sign that passed every check: the credential, the request its backend gets, and what
    its refusal entry names (the same for Sign, SignBatch and SignStream) if the sign fails."""

    credential: Credential
    request: SignRequest
    permission: str
    ctx: AuditContext


def _withheld(common: dict[str, Any], detail: dict[str, Any]) -> Any:
    """The refused entry a sign's entry becomes if its credential is revoked by commit time (built then)."""
    return lambda: dict(**common, outcome="refused", detail={**detail, "reason": WITHHELD})


class Signing(ServiceBase):
    """Sign and batch sign: authorise each item against current state (`_authorise`), sign in
    custody (`_sign_in_custody`), record before anything is returned (`_record_signs`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_executor = ThreadPoolExecutor(BATCH_WORKERS, thread_name_prefix="batch-sign")
        self._stores: dict[str, Any] = {}  # key URI -> its backend (the backends are fixed at start-up)

    def sign(self, caller: Caller, item: SignItem) -> Signed:
        """Sign data (hashed here) or a precomputed digest with the credential's key.

        The first use of a credential makes it visible with all permissions; from then on a
        sign that names a permission must have it granted.

        Raises:
            PermissionDenied: the caller holds no signing role in the business, or the
                permission named is not granted.
            FailedPrecondition: revoked (also while the signature was being made: it is
                withheld), or unassigned and past its window.
            InvalidArgument: neither or both of data and digest, a digest of the wrong size,
                an unknown permission, or an algorithm that does not fit the key.
            NotFound: no such credential.
            Unavailable: the audit entry could not be written (no signature is returned).
        """
        authorised: _Authorised | None = None
        try:
            with self._cached.one_version(), self._audited(caller, "credential.sign", target=item.credential_id) as ctx:
                authorised = self._authorise(caller, ctx, item)
                signature = self._sign_in_custody(authorised)
                withheld = self._record_signs(caller, [authorised])
        except Exception:
            self._observe_refused(authorised)
            raise
        if withheld:  # its entry says refused already
            raise FailedPrecondition(f"credential {item.credential_id}: {WITHHELD}")
        return Signed(signature=signature, algorithm=authorised.request.algorithm,
                      certificate_chain=authorised.credential.certificate_chain)

    def sign_batch(self, caller: Caller, items: list[SignItem]) -> list[Signed | DomainError | KeyStoreError]:
        """Sign many items together: a SignBatch request, or the requests of a SignStream
        waiting together (agent.server.sign_stream): one path for both.

        Each item is checked and signed on its own: the answer holds a signature or the error
        for each, in order. Every item is authorised against one read of the state; RSA items
        are signed in parallel on the backend's sessions (`_sign_all`). Every item, signed or
        refused, gets its audit entry, all in one `append_many`; if those cannot be written, no
        signature is returned at all. A sign whose credential was revoked by the time its entry
        committed is answered FailedPrecondition (withheld; its entry says refused).

        Raises:
            InvalidArgument: no items, or more than MAX_BATCH.
            Unavailable: the audit entries could not be written.
        """
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidArgument(f"a batch holds 1 to {MAX_BATCH} items, not {len(items)}")
        results: list[Any] = [None] * len(items)
        authorised: list[tuple[int, _Authorised]] = []
        refusals: list[tuple[AuditContext, Exception]] = []
        with self._cached.one_version():  # every item against the same state, read once
            for index, item in enumerate(items):
                ctx = AuditContext(target=item.credential_id)
                try:
                    authorised.append((index, self._authorise(caller, ctx, item)))
                except (DomainError, KeyStoreError) as exc:
                    results[index] = exc
                    refusals.append((ctx, exc))
                    self._observe_refused(None)
        outcomes = self._sign_all([a for _, a in authorised])
        done = []
        for (index, item), outcome in zip(authorised, outcomes, strict=True):
            if isinstance(outcome, Exception):
                results[index] = outcome
                refusals.append((item.ctx, outcome))
                self._observe_refused(item)
            else:
                results[index] = Signed(signature=outcome, algorithm=item.request.algorithm,
                                        certificate_chain=item.credential.certificate_chain)
                done.append(item)
        try:
            withheld = self._record_signs(caller, done, refusals)
        except Exception:
            for item in done:
                self._observe_refused(item)
            raise
        if withheld:  # revoked meanwhile: those items' signatures never leave (their entries say refused)
            resolved = {index: a.credential.id for index, a in authorised}  # an item may name an alias
            for index, result in enumerate(results):
                if isinstance(result, Signed) and resolved.get(index) in withheld:
                    results[index] = FailedPrecondition(f"credential {items[index].credential_id}: {WITHHELD}")
        return results

    def _sign_all(self, authorised: list[_Authorised]) -> list[bytes | Exception]:
        """Each item's signature or error, in order. RSA signs are shared out among the batch
        workers and the calling thread; ECDSA signs stay on the calling thread, as does a lone
        sign: handing an item to a thread costs more than an ECDSA sign on SoftHSM2 (50 µs),
        and two threads sign ECDSA slower than one (bench/RESULTS.md, raw python-pkcs11)."""
        rsa = [i for i, a in enumerate(authorised) if a.request.key_type.is_rsa]
        parts = min(BATCH_WORKERS, len(rsa))
        shares = [rsa[k::parts] for k in range(1, parts)]  # the calling thread keeps rsa[0::parts]
        futures = [self._batch_executor.submit(self._sign_each, [authorised[i] for i in share]) for share in shares]
        handed = {i for share in shares for i in share}
        mine = [i for i in range(len(authorised)) if i not in handed]
        signed = [(mine, self._sign_each([authorised[i] for i in mine]))]
        signed += [(share, future.result()) for share, future in zip(shares, futures, strict=True)]
        outcomes: list[Any] = [None] * len(authorised)
        for share, results in signed:
            for i, outcome in zip(share, results, strict=True):
                outcomes[i] = outcome
        return outcomes

    def _sign_each(self, authorised: list[_Authorised]) -> list[bytes | Exception]:
        return [self._sign_or_error(a) for a in authorised]

    def _sign_or_error(self, authorised: _Authorised) -> bytes | Exception:
        try:
            return self._sign_in_custody(authorised)
        except (KeyStoreError, DomainError) as exc:
            return exc

    def _authorise(self, caller: Caller, ctx: AuditContext, item: SignItem) -> _Authorised:
        """Every check a sign passes before the key is used, against current state."""
        if (item.data is None) == (item.digest is None):
            raise InvalidArgument("give either the data to sign or its digest, not both")
        # An id or a RAM alias (agent.domain.aliases): the one resolution every sign path makes.
        credential = self._credential_named(caller, ctx, item.credential_id, Action.SIGN)
        lifecycle.check_usable(credential.id, credential.status, credential.unassigned_at, self._clock())
        if item.permission:
            check_permissions([item.permission])
            ctx.detail["permission"] = item.permission
            if credential.permissions is not None and item.permission not in credential.permissions:
                granted = ", ".join(credential.permissions) or "none"
                raise PermissionDenied(
                    f"credential {credential.id} is not granted permission {item.permission} (granted: {granted}); "
                    "its principal authority or an authorisation administrator can amend that"
                )
        algorithm = item.algorithm or SignatureAlgorithm.default_for(credential.key_type)
        digest = item.digest if item.digest is not None else algorithm.hash.digest(item.data)
        request = SignRequest(uri=credential.key_uri, algorithm=algorithm, key_type=credential.key_type,
                              digest=digest)
        try:
            request.check()  # the one place that matches algorithm, key and digest
        except Unsupported as exc:
            raise InvalidArgument(f"credential {credential.id}: {exc}") from None
        return _Authorised(credential, request, item.permission, ctx)

    def _sign_in_custody(self, authorised: _Authorised) -> bytes:
        """The signature, made by the backend that holds the key (timed for the observer)."""
        uri = authorised.request.uri
        store = self._stores.get(uri)
        if store is None:  # found once per key: for_uri parses the URI (and may refuse it; not kept then)
            store = self._stores[uri] = self._custody.for_uri(uri)
        started = time.perf_counter()
        try:
            return store.sign(authorised.request)
        finally:
            self._observer.sign_duration(authorised.request.key_type.value, time.perf_counter() - started)

    def _observe_refused(self, authorised: _Authorised | None) -> None:
        """Count one refused sign, by key type and algorithm when its credential was known."""
        if authorised is None:
            self._observer.signs_finished("unknown", "unknown", "refused")
        else:
            self._observer.signs_finished(authorised.request.key_type.value,
                                          authorised.request.algorithm.algorithm_name, "refused")

    def _record_signs(self, caller: Caller, signed: list[_Authorised],
                      refusals: list[tuple[AuditContext, Exception]] = ()) -> set[str]:
        """First uses, then one audit entry per sign and per refusal; raise if they are not written.

        A sign whose credential was revoked by the time its entry commits is recorded as
        refused instead, and its signature must be withheld.

        Returns:
            The ids of the credentials whose signatures must be withheld (revoked meanwhile).
        """
        try:
            first_used = {a.credential.id: a.credential for a in signed if a.credential.first_used_at is None}
            for credential in first_used.values():
                with self._records.transaction():
                    current = self._records.get_credential(credential.id)
                    if current is not None and current.first_used_at is None:
                        self._records.update_credential(credential.id, current.status, first_used_at=self._clock(),
                                                        permissions=ALL_PERMISSIONS)
                        self._audit(caller, "credential.first-use", abn=credential.abn, target=credential.id,
                                    detail={"permissions": list(ALL_PERMISSIONS)})
            now, actor = self._clock(), caller.name
            entries = []
            for a in signed:
                common = dict(at=now, actor=actor, action="credential.sign", abn=a.credential.abn,
                              target=a.credential.id)
                detail = {"algorithm": a.request.algorithm.algorithm_name, "permission": a.permission,
                          "digest_sha256": hashlib.sha256(a.request.digest).hexdigest()}
                entries.append(dict(**common, outcome="allowed", detail=detail, unless_revoked=a.credential.id,
                                    if_revoked=_withheld(common, detail)))
            audited = refusals[:MAX_REFUSALS_AUDITED]
            entries += [dict(at=now, actor=actor, action="credential.sign", outcome="refused", abn=ctx.abn,
                             target=ctx.target, detail={**ctx.detail, "reason": str(exc)})
                        for ctx, exc in audited]
            if len(refusals) > len(audited):
                entries.append(dict(at=now, actor=actor, action="credential.sign.summary", outcome="refused",
                                    detail={"refusals_not_written": len(refusals) - len(audited),
                                            "reasons": dict(Counter(type(exc).__name__
                                                                    for _, exc in refusals[len(audited):]))}))
            written = self._audit_log.append_many(entries)
        except Exception as exc:
            log.exception("signs not recorded; signatures withheld")
            raise Unavailable("the signature was withheld: its audit entry could not be written") from exc
        outcomes = Counter((a.request.key_type.value, a.request.algorithm.algorithm_name,
                            "withheld" if e.outcome == "refused" else "allowed")
                           for a, e in zip(signed, written[:len(signed)], strict=True))
        for (key_type, algorithm, outcome), count in outcomes.items():
            self._observer.signs_finished(key_type, algorithm, outcome, count)
        return {e.target for e in written[:len(signed)] if e.outcome == "refused"}
