"""gRPC servicers: authenticate, convert, call the domain service, convert back.

No rule lives here; errors are mapped to status codes by interceptors.ErrorInterceptor.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.timestamp_pb2 import Timestamp
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.agent.domain.calls import CredentialView, NotificationView, Signed, SignItem
from mcagent.agent.domain.errors import InvalidArgument
from mcagent.agent.domain.expiry import not_after
from mcagent.agent.domain.model import Backend, Business, Principal, RoleGrant
from mcagent.agent.domain.notification import AGENCIES
from mcagent.agent.domain.policy import Role
from mcagent.agent.domain.service import AgentService
from mcagent.agent.server.auth import current_caller
from mcagent.agent.server.servicer_sbr import SbrMixin, with_sbr_fields
from mcagent.agent.server.sign_stream import ALGORITHM_NUMBERS, ALGORITHMS, SignStreams, item_error, sign_item
from mcagent.hsm.base import KeyType

KEY_TYPES = {
    pb.KEY_TYPE_RSA_2048: KeyType.RSA_2048,
    pb.KEY_TYPE_RSA_3072: KeyType.RSA_3072,
    pb.KEY_TYPE_EC_P256: KeyType.EC_P256,
}
BACKENDS = {pb.BACKEND_PKCS11: Backend.PKCS11, pb.BACKEND_FILE: Backend.FILE}
ROLES = {
    pb.ROLE_PRINCIPAL_AUTHORITY: Role.PRINCIPAL_AUTHORITY,
    pb.ROLE_AUTHORISATION_ADMINISTRATOR: Role.AUTHORISATION_ADMINISTRATOR,
    pb.ROLE_MACHINE_CREDENTIAL_ADMINISTRATOR: Role.MACHINE_CREDENTIAL_ADMINISTRATOR,
    pb.ROLE_SOFTWARE: Role.SOFTWARE,
}


def _from_proto(table: dict[int, Any], value: int, what: str) -> Any:
    """Map a proto enum to a domain enum; 0 (unspecified) means the default (None)."""
    if value == 0:
        return None
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument(f"unknown {what} {value}") from None


def _to_proto(table: dict[int, Any], value: Any) -> int:
    return next(number for number, member in table.items() if member is value)



def _timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def business_message(business: Business) -> pb.Business:
    return pb.Business(abn=business.abn, name=business.name, registered_at=_timestamp(business.registered_at))


def principal_message(principal: Principal) -> pb.Principal:
    return pb.Principal(
        name=principal.name,
        uid=-1 if principal.uid is None else principal.uid,
        certificate_subject=principal.certificate_subject or "",
        created_at=_timestamp(principal.created_at),
    )


def role_message(grant: RoleGrant) -> pb.RoleGrant:
    return pb.RoleGrant(abn=grant.abn, principal=grant.principal_name, role=_to_proto(ROLES, grant.role),
                        granted_at=_timestamp(grant.granted_at), granted_by=grant.granted_by)


def credential_message(view: CredentialView) -> pb.Credential:
    c = view.credential
    return pb.Credential(
        id=c.id,
        abn=c.abn,
        name=c.name,
        status=c.status.value,
        key_type=_to_proto(KEY_TYPES, c.key_type),
        backend=_to_proto(BACKENDS, c.backend),
        key_uri=c.key_uri,
        created_at=_timestamp(c.created_at),
        created_by=c.created_by,
        terms_version=c.terms_version,
        display_status=view.display_status,
        holder=c.holder_name or "",
        unassigned_at=_timestamp(c.unassigned_at),
        window_ends_at=_timestamp(view.window_ends_at),
        reminders=[pb.Reminder(day=r.day, recorded_at=_timestamp(r.recorded_at), recipients=list(r.recipients))
                   for r in view.reminders],
        first_used_at=_timestamp(c.first_used_at),
        permissions=None if c.permissions is None else pb.PermissionSet(permissions=list(c.permissions)),
        revoked_at=_timestamp(c.revoked_at),
        revoked_by=c.revoked_by or "",
        certificate_not_after=_timestamp(not_after(c)),
    )


class _Servicer:
    def __init__(self, service: AgentService) -> None:
        self._service = service


class PrincipalServicer(_Servicer, pb_grpc.PrincipalServiceServicer):
    def CreatePrincipal(self, request: pb.CreatePrincipalRequest, context: grpc.ServicerContext) -> Any:
        principal, token = self._service.create_principal(
            current_caller(), request.name, None if request.uid < 0 else request.uid,
            request.certificate_subject or None,
        )
        return pb.CreatePrincipalResponse(principal=principal_message(principal), token=token)

    def ListPrincipals(self, request: pb.ListPrincipalsRequest, context: grpc.ServicerContext) -> Any:
        principals = self._service.list_principals(current_caller())
        return pb.ListPrincipalsResponse(principals=[principal_message(p) for p in principals])

    def WhoAmI(self, request: pb.WhoAmIRequest, context: grpc.ServicerContext) -> Any:
        caller = current_caller()
        return pb.WhoAmIResponse(name=caller.name, local_administrator=caller.is_admin)


class BusinessServicer(_Servicer, pb_grpc.BusinessServiceServicer):
    def RegisterBusiness(self, request: pb.RegisterBusinessRequest, context: grpc.ServicerContext) -> Any:
        business = self._service.register_business(
            current_caller(), request.abn, request.name, request.principal_authority
        )
        return business_message(business)

    def GetBusiness(self, request: pb.GetBusinessRequest, context: grpc.ServicerContext) -> Any:
        return business_message(self._service.get_business(request.abn))

    def _role(self, request: pb.RoleRequest) -> Role:
        role = _from_proto(ROLES, request.role, "role")
        if role is None:
            raise InvalidArgument("name the role (--role)")
        return role

    def GrantRole(self, request: pb.RoleRequest, context: grpc.ServicerContext) -> Any:
        grant = self._service.grant_role(current_caller(), request.abn, request.principal,
                                         self._role(request))
        return role_message(grant)

    def RemoveRole(self, request: pb.RoleRequest, context: grpc.ServicerContext) -> Any:
        unassigned = self._service.remove_role(current_caller(), request.abn, request.principal,
                                               self._role(request))
        return pb.RemoveRoleResponse(unassigned_credential_ids=unassigned)

    def ListRoles(self, request: pb.ListRolesRequest, context: grpc.ServicerContext) -> Any:
        grants = self._service.list_roles(current_caller(), request.abn)
        return pb.ListRolesResponse(roles=[role_message(g) for g in grants])


def _pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


class CertificateMixin:
    """The certificate and key store RPCs of the credential service."""

    _service: AgentService

    def GetCsr(self, request: pb.CredentialRef, context: grpc.ServicerContext) -> Any:
        csr = self._service.csr(current_caller(), request.id)
        return pb.Pem(pem=csr.public_bytes(serialization.Encoding.PEM).decode("ascii"))

    def GetCertificateChain(self, request: pb.CredentialRef, context: grpc.ServicerContext) -> Any:
        return pb.Pem(pem=_pem(*self._service.certificate_chain(current_caller(), request.id)))

    def InstallCertificate(self, request: pb.InstallCertificateRequest, context: grpc.ServicerContext) -> Any:
        view = self._service.install_certificate(current_caller(), request.id, request.certificate,
                                                 request.chain or None)
        return credential_message(view)

    def ImportCredential(self, request: pb.ImportCredentialRequest, context: grpc.ServicerContext) -> Any:
        which = request.WhichOneof("source")
        created = self._service.import_credential(
            current_caller(),
            keystore=request.keystore_xml if which == "keystore_xml" else None,
            pkcs12=request.pkcs12 if which == "pkcs12" else None,
            alias=request.alias, password=request.password,
            backend=_from_proto(BACKENDS, request.backend, "backend"),
            store=request.store or None, principal_authority=request.principal_authority,
            accepted_terms_version=request.accepted_terms_version,
        )
        return pb.CreateCredentialResponse(credential=credential_message(created.view), notice=created.notice,
                                           replaces_id=created.replaces_id)

    def ExportCredential(self, request: pb.ExportCredentialRequest, context: grpc.ServicerContext) -> Any:
        data = self._service.export_credential(current_caller(), request.id, format=request.format,
                                               password=request.password)
        notice = ""
        if request.format == "keystore-xml":
            notice = ("integrityValue is empty: its keyed algorithm is not public, so software that checks it "
                      "will refuse this file")
        return pb.ExportCredentialResponse(data=data, notice=notice)

    def InspectKeystore(self, request: pb.InspectKeystoreRequest, context: grpc.ServicerContext) -> Any:
        entries = []
        for stored, status in self._service.inspect_keystore(request.keystore_xml):
            leaf = stored.leaf
            entries.append(pb.KeystoreEntry(
                alias=stored.alias, abn=stored.abn, legal_name=stored.legal_name, name=stored.name,
                serial_number=str(leaf.serial_number), not_before=_timestamp(leaf.not_valid_before_utc),
                not_after=_timestamp(leaf.not_valid_after_utc), status=status, issuer=leaf.issuer.rfc4514_string(),
            ))
        return pb.InspectKeystoreResponse(entries=entries)


class CredentialServicer(CertificateMixin, SbrMixin, _Servicer, pb_grpc.CredentialServiceServicer):
    def __init__(self, service: AgentService, streams: SignStreams) -> None:
        super().__init__(service)
        self._streams = streams  # the server closes them before the service (AgentServer.stop)
    def GetMachineTerms(self, request: pb.GetMachineTermsRequest, context: grpc.ServicerContext) -> Any:
        terms = self._service.machine_terms()
        return pb.MachineTerms(version=terms.version, text=terms.text)

    def CreateCredential(self, request: pb.CreateCredentialRequest, context: grpc.ServicerContext) -> Any:
        created = self._service.create_credential(
            current_caller(),
            abn=request.abn,
            name=request.name,
            key_type=_from_proto(KEY_TYPES, request.key_type, "key type"),
            backend=_from_proto(BACKENDS, request.backend, "backend"),
            store=request.store or None,
            accepted_terms_version=request.accepted_terms_version,
        )
        return pb.CreateCredentialResponse(credential=credential_message(created.view), notice=created.notice,
                                           replaces_id=created.replaces_id)

    def GetCredential(self, request: pb.GetCredentialRequest, context: grpc.ServicerContext) -> Any:
        (message,) = with_sbr_fields(self._service, [
            credential_message(self._service.get_credential(current_caller(), request.id))])
        return message

    def ListCredentials(self, request: pb.ListCredentialsRequest, context: grpc.ServicerContext) -> Any:
        if request.expiring_within_days:  # SBR: the expiry watch, soonest first, one page
            expiring = self._service.expiring_credentials(current_caller(), request.abn or None,
                                                          request.expiring_within_days)
            views, next_token = [e.view for e in expiring], ""
        else:
            views, next_token = self._service.list_credentials(current_caller(), request.abn or None,
                                                               page_size=request.page_size,
                                                               page_token=request.page_token)
        return pb.ListCredentialsResponse(
            credentials=with_sbr_fields(self._service, [credential_message(v) for v in views]),
            next_page_token=next_token)

    def GetPublicKey(self, request: pb.GetPublicKeyRequest, context: grpc.ServicerContext) -> Any:
        return pb.PublicKey(pem=self._service.public_key_pem(current_caller(), request.id))

    def Sign(self, request: pb.SignRequest, context: grpc.ServicerContext) -> Any:
        result = self._service.sign(current_caller(), sign_item(request))
        return pb.SignResponse(
            signature=result.signature,
            algorithm=ALGORITHM_NUMBERS[result.algorithm],
            certificate_chain=list(result.certificate_chain) if request.include_chain else (),
        )

    def SignStream(self, requests: Any, context: grpc.ServicerContext) -> Any:
        return self._streams.serve(current_caller(), requests, context)

    def SignBatch(self, request: pb.SignBatchRequest, context: grpc.ServicerContext) -> Any:
        items = [SignItem(credential_id=item.credential_id,
                          algorithm=_from_proto(ALGORITHMS, item.algorithm, "signature algorithm"),
                          digest=item.digest, permission=item.permission) for item in request.items]
        results = []
        for outcome in self._service.sign_batch(current_caller(), items):
            if isinstance(outcome, Signed):
                results.append(pb.SignBatchResult(signature=outcome.signature,
                                                  algorithm=ALGORITHM_NUMBERS[outcome.algorithm]))
            else:
                results.append(pb.SignBatchResult(**item_error(outcome)))
        return pb.SignBatchResponse(results=results)

    def RevokeCredential(self, request: pb.RevokeCredentialRequest, context: grpc.ServicerContext) -> Any:
        view = self._service.revoke_credential(current_caller(), request.id, confirm=request.confirm)
        return credential_message(view)

    def ClaimCredential(self, request: pb.ClaimCredentialRequest, context: grpc.ServicerContext) -> Any:
        return credential_message(self._service.claim_credential(current_caller(), request.id))

    def Permissions(self, request: pb.PermissionsRequest, context: grpc.ServicerContext) -> Any:
        new = list(request.set.permissions) if request.HasField("set") else None
        credential, entries = self._service.permissions(current_caller(), request.id, new)
        return pb.PermissionsResponse(
            credential_id=credential.id,
            first_used=credential.first_used_at is not None,
            permissions=[pb.PermissionEntry(id=p.id, agency=p.agency, service=p.service, granted=granted)
                         for p, granted in entries],
        )


class CAServicer(_Servicer, pb_grpc.CAServiceServicer):
    def InitCA(self, request: pb.InitCARequest, context: grpc.ServicerContext) -> Any:
        root, issuing = self._service.init_ca(current_caller())
        return pb.CACertificates(root_pem=_pem(root), issuing_pem=_pem(issuing))

    def GetCACertificates(self, request: pb.GetCACertificatesRequest, context: grpc.ServicerContext) -> Any:
        root, issuing = self._service.ca_certificates()
        return pb.CACertificates(root_pem=_pem(root), issuing_pem=_pem(issuing))

    def GetCRL(self, request: pb.GetCRLRequest, context: grpc.ServicerContext) -> Any:
        return pb.Pem(pem=self._service.crl().public_bytes(serialization.Encoding.PEM).decode("ascii"))


class AuditServicer(_Servicer, pb_grpc.AuditServiceServicer):
    def ListAudit(self, request: pb.ListAuditRequest, context: grpc.ServicerContext) -> Any:
        entries, next_after = self._service.list_audit(current_caller(), request.abn or None,
                                                       request.limit, request.after)
        return pb.ListAuditResponse(
            entries=[pb.AuditEntry(seq=e.seq, at=_timestamp(e.at), actor=e.actor, action=e.action,
                                   outcome=e.outcome, abn=e.abn, target=e.target,
                                   detail_json=json.dumps(e.detail, sort_keys=True),
                                   prev_hash=e.prev_hash, hash=e.hash) for e in entries],
            next_after=next_after,
        )

    def VerifyAudit(self, request: pb.VerifyAuditRequest, context: grpc.ServicerContext) -> Any:
        result = self._service.verify_audit(current_caller(), request.expect_head)
        return pb.VerifyAuditResponse(ok=result.ok, entries=result.entries, head_hash=result.head_hash,
                                      problem=result.problem, bad_seq=result.bad_seq,
                                      checkpoint_seq=result.checkpoint_seq,
                                      first_checkpoint_seq=result.first_checkpoint_seq)


def notification_message(view: NotificationView) -> pb.Notification:
    n = view.notification
    return pb.Notification(
        id=n.id, abn=n.abn, business_name=view.business_name, dsp_abn=n.dsp_abn, dsp_name=view.dsp_name,
        software_ids=list(n.software_ids), start_date=n.start_date.isoformat(),
        end_date=n.end_date.isoformat() if n.end_date else "", agencies=list(n.agencies), status=view.status,
        created_at=_timestamp(n.created_at), created_by=n.created_by, requested_by=n.requested_by or "",
        declaration_by=n.declaration_by or "", declaration_at=_timestamp(n.declaration_at),
        removed_at=_timestamp(n.removed_at), removed_by=n.removed_by or "",
    )


class NotificationServicer(_Servicer, pb_grpc.NotificationServiceServicer):
    def AddNotification(self, request: pb.AddNotificationRequest, context: grpc.ServicerContext) -> Any:
        view = self._service.add_notification(
            current_caller(), abn=request.abn, dsp_abn=request.dsp_abn,
            software_ids=list(request.software_ids), start=request.start_date, end=request.end_date or None,
            agencies=list(request.agencies), declaration=request.accept_declaration,
        )
        return notification_message(view)

    def RequestNotification(self, request: pb.RequestNotificationRequest, context: grpc.ServicerContext) -> Any:
        view = self._service.request_notification(
            current_caller(), dsp_abn=request.dsp_abn, abn=request.abn,
            software_ids=list(request.software_ids), start=request.start_date, end=request.end_date or None,
            agencies=list(request.agencies),
        )
        return notification_message(view)

    def AcceptNotification(self, request: pb.AcceptNotificationRequest, context: grpc.ServicerContext) -> Any:
        view = self._service.accept_notification(current_caller(), request.id,
                                                 declaration=request.accept_declaration)
        return notification_message(view)

    def EditNotification(self, request: pb.EditNotificationRequest, context: grpc.ServicerContext) -> Any:
        view = self._service.edit_notification(
            current_caller(), request.id, software_ids=list(request.software_ids) or None,
            start=request.start_date or None, end=request.end_date or None, no_end=request.no_end_date,
            declaration=request.accept_declaration,
        )
        return notification_message(view)

    def RemoveNotification(self, request: pb.RemoveNotificationRequest, context: grpc.ServicerContext) -> Any:
        view = self._service.remove_notification(current_caller(), request.id, confirm=request.confirm)
        return notification_message(view)

    def GetNotification(self, request: pb.GetNotificationRequest, context: grpc.ServicerContext) -> Any:
        return notification_message(self._service.get_notification(current_caller(), request.id))

    def ListNotifications(self, request: pb.ListNotificationsRequest, context: grpc.ServicerContext) -> Any:
        views = self._service.list_notifications(current_caller(), request.abn or None,
                                                 request.status or None)
        return pb.ListNotificationsResponse(notifications=[notification_message(v) for v in views])

    def ListAgencies(self, request: pb.ListAgenciesRequest, context: grpc.ServicerContext) -> Any:
        return pb.ListAgenciesResponse(agencies=[pb.Agency(id=key, name=name) for key, name in AGENCIES.items()])
