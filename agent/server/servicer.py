"""gRPC servicers: authenticate, convert, call the domain service, convert back.

No rule lives here; errors are mapped to status codes by interceptors.ErrorInterceptor.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from agent.api.v1 import agent_pb2 as pb
from agent.api.v1 import agent_pb2_grpc as pb_grpc
from agent.domain.errors import InvalidArgument
from agent.domain.model import Backend, Business, Credential
from agent.domain.service import AgentService, Caller
from agent.server.auth import caller_of
from hsm.base import KeyType, SignatureAlgorithm

KEY_TYPES = {
    pb.KEY_TYPE_RSA_2048: KeyType.RSA_2048,
    pb.KEY_TYPE_RSA_3072: KeyType.RSA_3072,
    pb.KEY_TYPE_EC_P256: KeyType.EC_P256,
}
BACKENDS = {pb.BACKEND_PKCS11: Backend.PKCS11, pb.BACKEND_FILE: Backend.FILE}
ALGORITHMS = {
    pb.SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256: SignatureAlgorithm.RSA_PKCS1_SHA256,
    pb.SIGNATURE_ALGORITHM_RSA_PKCS1_SHA1: SignatureAlgorithm.RSA_PKCS1_SHA1,
    pb.SIGNATURE_ALGORITHM_RSA_PSS_SHA256: SignatureAlgorithm.RSA_PSS_SHA256,
    pb.SIGNATURE_ALGORITHM_ECDSA_SHA256: SignatureAlgorithm.ECDSA_SHA256,
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


def _timestamp(value: Any) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def business_message(business: Business) -> pb.Business:
    return pb.Business(abn=business.abn, name=business.name, registered_at=_timestamp(business.registered_at))


def credential_message(credential: Credential) -> pb.Credential:
    return pb.Credential(
        id=credential.id,
        abn=credential.abn,
        name=credential.name,
        status=credential.status.value,
        key_type=_to_proto(KEY_TYPES, credential.key_type),
        backend=_to_proto(BACKENDS, credential.backend),
        key_uri=credential.key_uri,
        created_at=_timestamp(credential.created_at),
        created_by=credential.created_by,
        terms_version=credential.terms_version,
    )


class BusinessServicer(pb_grpc.BusinessServiceServicer):
    def __init__(self, service: AgentService) -> None:
        self._service = service

    def RegisterBusiness(self, request: pb.RegisterBusinessRequest, context: grpc.ServicerContext) -> pb.Business:
        caller: Caller = caller_of(context)
        return business_message(self._service.register_business(caller, request.abn, request.name))

    def GetBusiness(self, request: pb.GetBusinessRequest, context: grpc.ServicerContext) -> pb.Business:
        caller_of(context)
        return business_message(self._service.get_business(request.abn))


class CredentialServicer(pb_grpc.CredentialServiceServicer):
    def __init__(self, service: AgentService) -> None:
        self._service = service

    def GetMachineTerms(self, request: pb.GetMachineTermsRequest, context: grpc.ServicerContext) -> pb.MachineTerms:
        terms = self._service.machine_terms()
        return pb.MachineTerms(version=terms.version, text=terms.text)

    def CreateCredential(self, request: pb.CreateCredentialRequest, context: grpc.ServicerContext) -> pb.Credential:
        caller = caller_of(context)
        credential = self._service.create_credential(
            caller,
            abn=request.abn,
            name=request.name,
            key_type=_from_proto(KEY_TYPES, request.key_type, "key type"),
            backend=_from_proto(BACKENDS, request.backend, "backend"),
            keystore_path=request.keystore_path or None,
            accepted_terms_version=request.accepted_terms_version,
        )
        return credential_message(credential)

    def GetCredential(self, request: pb.GetCredentialRequest, context: grpc.ServicerContext) -> pb.Credential:
        caller_of(context)
        return credential_message(self._service.get_credential(request.id))

    def ListCredentials(
        self, request: pb.ListCredentialsRequest, context: grpc.ServicerContext
    ) -> pb.ListCredentialsResponse:
        caller_of(context)
        credentials = self._service.list_credentials(request.abn or None)
        return pb.ListCredentialsResponse(credentials=[credential_message(c) for c in credentials])

    def GetPublicKey(self, request: pb.GetPublicKeyRequest, context: grpc.ServicerContext) -> pb.PublicKey:
        caller_of(context)
        return pb.PublicKey(pem=self._service.public_key_pem(request.id))

    def Sign(self, request: pb.SignRequest, context: grpc.ServicerContext) -> pb.SignResponse:
        caller = caller_of(context)
        which = request.WhichOneof("input")
        result = self._service.sign(
            caller,
            request.credential_id,
            algorithm=_from_proto(ALGORITHMS, request.algorithm, "signature algorithm"),
            data=request.data if which == "data" else None,
            digest=request.digest if which == "digest" else None,
        )
        return pb.SignResponse(
            signature=result.signature,
            algorithm=_to_proto(ALGORITHMS, result.algorithm),
            certificate_chain=list(result.certificate_chain),
        )
