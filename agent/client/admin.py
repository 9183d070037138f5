"""The other services' calls (businesses and roles, principals, audit, notifications, CA, health),
written once for both clients like `credentials.py`."""

from __future__ import annotations

from collections.abc import Iterable

from grpc_health.v1 import health_pb2
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.client import types as t
from mcagent.client.convert import converter, from_pb, to_pb_enum
from mcagent.client.credentials import CallsBase


def _tuple_of(cls: type, field: str):
    return lambda reply: tuple(from_pb(cls, item) for item in getattr(reply, field))


class AdminCalls(CallsBase):
    """Everything but credentials."""

    # -- health and identity
    def health(self, service: str = "") -> str:
        """The standard gRPC health check: "SERVING", "NOT_SERVING", … (needs no credentials)."""
        return self._call("health", "Check", health_pb2.HealthCheckRequest(service=service),
                          lambda reply: health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def whoami(self) -> t.WhoAmI:
        """Who the agent takes the caller for."""
        return self._call("principals", "WhoAmI", pb.WhoAmIRequest(), converter(t.WhoAmI))

    # -- principals (local administrator)
    def create_principal(self, name: str, *, uid: int = -1, certificate_subject: str = "") -> t.CreatedPrincipal:
        request = pb.CreatePrincipalRequest(name=name, uid=uid, certificate_subject=certificate_subject)
        return self._call("principals", "CreatePrincipal", request, converter(t.CreatedPrincipal))

    def list_principals(self) -> tuple[t.Principal, ...]:
        return self._call("principals", "ListPrincipals", pb.ListPrincipalsRequest(),
                          _tuple_of(t.Principal, "principals"))

    # -- businesses and roles
    def register_business(self, abn: str, name: str, *, principal_authority: str) -> t.Business:
        request = pb.RegisterBusinessRequest(abn=abn, name=name, principal_authority=principal_authority)
        return self._call("businesses", "RegisterBusiness", request, converter(t.Business))

    def get_business(self, abn: str) -> t.Business:
        return self._call("businesses", "GetBusiness", pb.GetBusinessRequest(abn=abn), converter(t.Business))

    def grant_role(self, abn: str, principal: str, role: t.Role | str) -> t.RoleGrant:
        request = pb.RoleRequest(abn=abn, principal=principal, role=to_pb_enum(t.Role, role))
        return self._call("businesses", "GrantRole", request, converter(t.RoleGrant))

    def remove_role(self, abn: str, principal: str, role: t.Role | str) -> tuple[str, ...]:
        """Remove a role; returns the credentials that became unassigned."""
        request = pb.RoleRequest(abn=abn, principal=principal, role=to_pb_enum(t.Role, role))
        return self._call("businesses", "RemoveRole", request, lambda reply: tuple(reply.unassigned_credential_ids))

    def list_roles(self, abn: str) -> tuple[t.RoleGrant, ...]:
        return self._call("businesses", "ListRoles", pb.ListRolesRequest(abn=abn), _tuple_of(t.RoleGrant, "roles"))

    # -- audit
    def list_audit(self, abn: str = "", *, limit: int = 0, after: int = 0) -> t.AuditPage:
        """One page of the audit log (100 by default, at most 1,000); `next_after` continues it."""
        return self._call("audit", "ListAudit", pb.ListAuditRequest(abn=abn, limit=limit, after=after),
                          converter(t.AuditPage))

    def verify_audit(self, *, expect_head: str = "") -> t.AuditVerification:
        return self._call("audit", "VerifyAudit", pb.VerifyAuditRequest(expect_head=expect_head),
                          converter(t.AuditVerification))

    # -- cloud software notifications
    def add_notification(self, abn: str, *, dsp_abn: str, software_ids: Iterable[str], start_date: str,
                         agencies: Iterable[str], accept_declaration: bool, end_date: str = "") -> t.Notification:
        request = pb.AddNotificationRequest(abn=abn, dsp_abn=dsp_abn, software_ids=list(software_ids),
                                            start_date=start_date, end_date=end_date, agencies=list(agencies),
                                            accept_declaration=accept_declaration)
        return self._call("notifications", "AddNotification", request, converter(t.Notification))

    def request_notification(self, abn: str, *, dsp_abn: str, software_ids: Iterable[str], start_date: str,
                             agencies: Iterable[str], end_date: str = "") -> t.Notification:
        request = pb.RequestNotificationRequest(abn=abn, dsp_abn=dsp_abn, software_ids=list(software_ids),
                                                start_date=start_date, end_date=end_date, agencies=list(agencies))
        return self._call("notifications", "RequestNotification", request, converter(t.Notification))

    def accept_notification(self, notification_id: str, *, accept_declaration: bool) -> t.Notification:
        request = pb.AcceptNotificationRequest(id=notification_id, accept_declaration=accept_declaration)
        return self._call("notifications", "AcceptNotification", request, converter(t.Notification))

    def edit_notification(self, notification_id: str, *, accept_declaration: bool,
                          software_ids: Iterable[str] = (), start_date: str = "", end_date: str = "",
                          no_end_date: bool = False) -> t.Notification:
        request = pb.EditNotificationRequest(id=notification_id, software_ids=list(software_ids),
                                             start_date=start_date, end_date=end_date, no_end_date=no_end_date,
                                             accept_declaration=accept_declaration)
        return self._call("notifications", "EditNotification", request, converter(t.Notification))

    def remove_notification(self, notification_id: str, *, confirm: bool) -> t.Notification:
        request = pb.RemoveNotificationRequest(id=notification_id, confirm=confirm)
        return self._call("notifications", "RemoveNotification", request, converter(t.Notification))

    def get_notification(self, notification_id: str) -> t.Notification:
        return self._call("notifications", "GetNotification", pb.GetNotificationRequest(id=notification_id),
                          converter(t.Notification))

    def list_notifications(self, abn: str = "", *, status: str = "") -> tuple[t.Notification, ...]:
        return self._call("notifications", "ListNotifications", pb.ListNotificationsRequest(abn=abn, status=status),
                          _tuple_of(t.Notification, "notifications"))

    def list_agencies(self) -> tuple[t.Agency, ...]:
        return self._call("notifications", "ListAgencies", pb.ListAgenciesRequest(), _tuple_of(t.Agency, "agencies"))

    # -- the agent's CA
    def init_ca(self) -> t.CACertificates:
        return self._call("ca", "InitCA", pb.InitCARequest(), converter(t.CACertificates))

    def ca_certificates(self) -> t.CACertificates:
        return self._call("ca", "GetCACertificates", pb.GetCACertificatesRequest(), converter(t.CACertificates))

    def crl(self) -> str:
        """The agent's CRL, PEM."""
        return self._call("ca", "GetCRL", pb.GetCRLRequest(), lambda reply: reply.pem)
