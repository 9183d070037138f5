"""The SBR RPCs of the credential service (issue 14): STS requests, XML signing, renewal, the local flag.

A mixin of `CredentialServicer`, thin like the rest: convert, call the domain, convert back.
"""

from __future__ import annotations

from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.domain.service import AgentService
from mcagent.agent.server.auth import current_caller


def with_sbr_fields(service: AgentService, messages: list[pb.Credential]) -> list[pb.Credential]:
    """Fill in the alias each credential holds and its local flag (show and list)."""
    aliases, local = service.alias_and_local([m.id for m in messages])
    for message in messages:
        message.alias = aliases.get(message.id, "")
        message.local = message.id in local
    return messages


class SbrMixin:
    """SignStsRequest, SignXml, RenewCredential, SetCredentialLocal."""

    _service: AgentService

    def SignStsRequest(self, request: pb.SignStsRequestRequest, context: grpc.ServicerContext) -> Any:
        envelope, credential = self._service.sign_sts_request(
            current_caller(), request.credential_id, applies_to=request.applies_to,
            sts_endpoint=request.sts_endpoint, lifetime_minutes=request.lifetime_minutes,
            act_as=request.act_as_abn, claims=list(request.claims))
        return pb.SignStsRequestResponse(envelope=envelope, credential_id=credential.id)

    def SignXml(self, request: pb.SignXmlRequest, context: grpc.ServicerContext) -> Any:
        document, credential = self._service.sign_xml(current_caller(), request.credential_id,
                                                      document=request.document, ids=list(request.ids))
        return pb.SignXmlResponse(document=document, credential_id=credential.id)

    def RenewCredential(self, request: pb.RenewCredentialRequest, context: grpc.ServicerContext) -> Any:
        # servicer.py imports this module for its mixin; its converters are imported at call time.
        from mcagent.agent.server.servicer import KEY_TYPES, _from_proto, credential_message

        renewed = self._service.renew_credential(
            current_caller(), request.credential, issue=request.issue,
            accepted_terms_version=request.accepted_terms_version,
            key_type=_from_proto(KEY_TYPES, request.key_type, "key type"))
        csr = renewed.csr.public_bytes(serialization.Encoding.PEM).decode("ascii") if renewed.csr else ""
        (message,) = with_sbr_fields(self._service, [credential_message(renewed.view)])
        return pb.RenewCredentialResponse(credential=message, alias=renewed.alias, csr_pem=csr,
                                          alias_moved=renewed.alias_moved)

    def SetCredentialLocal(self, request: pb.SetCredentialLocalRequest, context: grpc.ServicerContext) -> Any:
        from mcagent.agent.server.servicer import credential_message

        view = self._service.set_credential_local(current_caller(), request.id, request.local)
        (message,) = with_sbr_fields(self._service, [credential_message(view)])
        return message
