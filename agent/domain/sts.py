"""STS requests and XML signatures made inside the agent, and the ActAs rule.

SBR software asks the ATO's token service for a token with a WS-Trust RequestSecurityToken
secured by WS-Security; the agent builds and signs it (agent.domain.wssec) with the
credential's key in custody, so the key never reaches the software. A cloud provider's
credential may act for a client business (ActAs) only while that business has an active
cloud software notification naming the provider (agent.domain.notification).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from cryptography import x509
from mcagent.agent.domain import credential as lifecycle
from mcagent.agent.domain import wssec
from mcagent.agent.domain.abn import normalise_abn
from mcagent.agent.domain.calls import Caller
from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from mcagent.agent.domain.expiry import not_after
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Credential
from mcagent.agent.domain.notification import ENDED, Notification, NotificationStatus, in_force, shown_status
from mcagent.agent.domain.policy import Action
from mcagent.hsm.signer import store_private_key

log = logging.getLogger(__name__)

#: The ATO's token service (SHA-2 endpoint), as its published samples configure it.
DEFAULT_STS = "https://softwareauthorisations.ato.gov.au/R3.0/S007v1.3/service.svc"
DEFAULT_LIFETIME_MINUTES = 20  # what the ATO's USI sample asks for
MAX_LIFETIME_MINUTES = 60


def _why_not(notification: Notification, today: dt.date) -> str:
    status = shown_status(notification, today)
    if status == ENDED:
        return f"{notification.id} ended on {notification.end_date.isoformat()}"
    if status == NotificationStatus.ACTIVE.value:
        return f"{notification.id} starts on {notification.start_date.isoformat()}"
    return f"{notification.id} is {status}"


class Sts(ServiceBase):
    """SignStsRequest and SignXml."""

    def check_act_as(self, credential: Credential, client_abn: str) -> None:
        """The ActAs rule: a cloud credential may act for `client_abn` only while that business
        has an active notification (dates including today, Australia/Sydney unless configured)
        naming the credential's business as its provider; a local credential never may.

        Raises:
            PermissionDenied: naming the notification that is missing, and why those found do not count.
        """
        if self._records.is_local(credential.id):
            raise PermissionDenied(f"credential {credential.id} is flagged local: it may not be used with ActAs "
                                   "(clear the flag with `mcagent credential local ID --cloud`)")
        today = self.today()
        found = [n for n in self._records.list_notifications([client_abn])
                 if n.abn == client_abn and n.dsp_abn == credential.abn]
        if any(in_force(n, today) for n in found):
            return
        seen = "; found: " + ", ".join(_why_not(n, today) for n in found) if found else ""
        raise PermissionDenied(
            f"credential {credential.id} may not act as {client_abn}: no active cloud software notification by "
            f"business {client_abn} names {credential.abn} as its provider on {today.isoformat()}{seen}; the "
            f"client adds one with `mcagent notification add --abn {client_abn} --dsp-abn {credential.abn} …`")

    def _signing_credential(self, caller: Caller, ctx, reference: str) -> Credential:
        credential = self._credential_named(caller, ctx, reference, Action.SIGN)
        ctx.target = credential.id
        lifecycle.check_usable(credential.id, credential.status, credential.unassigned_at, self._clock())
        if not credential.certificate_chain:
            raise FailedPrecondition(f"credential {credential.id} has no certificate; install one first")
        expires = not_after(credential)
        if expires is not None and expires <= self._clock():
            raise FailedPrecondition(f"credential {credential.id}: its certificate expired on "
                                     f"{expires.date().isoformat()}; renew it (`mcagent credential renew`)")
        return credential

    def sign_sts_request(self, caller: Caller, reference: str, *, applies_to: str, sts_endpoint: str = "",
                         lifetime_minutes: int = 0, act_as: str = "", claims: list[str] | None = None,
                         ) -> tuple[bytes, Credential]:
        """A signed WS-Trust 1.3 Issue request for the STS (SOAP 1.2 envelope, UTF-8).

        Raises:
            InvalidArgument: a URI, lifetime, claim or ABN that is not acceptable.
            PermissionDenied: no signing role, or ActAs not allowed (see `check_act_as`).
            FailedPrecondition: revoked, past its window, or no certificate.
        """
        with self._audited(caller, "credential.sts-request", target=reference) as ctx:
            ctx.detail.update(applies_to=applies_to[:200], act_as=act_as or None)
            credential = self._signing_credential(caller, ctx, reference)
            applies_to = wssec.check_uri(applies_to, "AppliesTo")
            to = wssec.check_uri(sts_endpoint or DEFAULT_STS, "the STS endpoint")
            minutes = lifetime_minutes or DEFAULT_LIFETIME_MINUTES
            if not 1 <= minutes <= MAX_LIFETIME_MINUTES:
                raise InvalidArgument(f"the token lifetime is 1 to {MAX_LIFETIME_MINUTES} minutes, not {minutes}")
            claims = list(claims or wssec.DEFAULT_CLAIMS)
            if len(claims) > wssec.MAX_CLAIMS:
                raise InvalidArgument(f"at most {wssec.MAX_CLAIMS} claims, not {len(claims)}")
            for claim in claims:
                wssec.check_uri(claim, "a claim type")
            client = normalise_abn(act_as) if act_as else None
            if client is not None:
                ctx.detail["act_as"] = client
                self.check_act_as(credential, client)
            store, key = self._credential_key(credential)
            leaf = x509.load_der_x509_certificate(credential.certificate_chain[0])
            request = wssec.StsRequest(applies_to=applies_to, to=to, lifetime=dt.timedelta(minutes=minutes),
                                       claims=tuple(claims), act_as=client, provider_abn=credential.abn)
            envelope, ids = wssec.build_sts_request(request, leaf, self._clock())
            document = wssec.sign_ws_security(envelope, ids, store_private_key(store, key))
            self._record_key_use(caller, "credential.sts-request", credential, detail={
                "applies_to": applies_to, "sts": to, "act_as": client, "lifetime_minutes": minutes,
                "document_sha256": hashlib.sha256(document).hexdigest()})
        log.info("STS request signed with credential %s for %s%s by %s", credential.id, applies_to,
                 f" acting as {client}" if client else "", caller.name)
        return document, credential

    def sign_xml(self, caller: Caller, reference: str, *, document: bytes, ids: list[str]) -> tuple[bytes, Credential]:
        """The document with an enveloped XML signature over the elements with these Ids.

        Raises:
            InvalidArgument: too large, not well-formed, a DTD or entity, an Id missing or not unique.
            PermissionDenied / FailedPrecondition: as for a sign; no certificate.
        """
        with self._audited(caller, "credential.xml-sign", target=reference) as ctx:
            ctx.detail["ids"] = list(ids)[:wssec.MAX_IDS]
            credential = self._signing_credential(caller, ctx, reference)
            parsed = wssec.parse_document(document)
            wssec.check_ids(parsed, list(ids))
            store, key = self._credential_key(credential)
            chain = [x509.load_der_x509_certificate(c) for c in credential.certificate_chain]
            signed = wssec.sign_enveloped(parsed, list(ids), store_private_key(store, key), chain)
            self._record_key_use(caller, "credential.xml-sign", credential, detail={
                "ids": list(ids), "document_sha256": hashlib.sha256(document).hexdigest()})
        return signed, credential
