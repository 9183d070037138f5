import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_TYPE_UNSPECIFIED: _ClassVar[KeyType]
    KEY_TYPE_RSA_2048: _ClassVar[KeyType]
    KEY_TYPE_RSA_3072: _ClassVar[KeyType]
    KEY_TYPE_EC_P256: _ClassVar[KeyType]

class SignatureAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_ALGORITHM_UNSPECIFIED: _ClassVar[SignatureAlgorithm]
    SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256: _ClassVar[SignatureAlgorithm]
    SIGNATURE_ALGORITHM_RSA_PKCS1_SHA1: _ClassVar[SignatureAlgorithm]
    SIGNATURE_ALGORITHM_RSA_PSS_SHA256: _ClassVar[SignatureAlgorithm]
    SIGNATURE_ALGORITHM_ECDSA_SHA256: _ClassVar[SignatureAlgorithm]

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_PKCS11: _ClassVar[Backend]
    BACKEND_FILE: _ClassVar[Backend]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_PRINCIPAL_AUTHORITY: _ClassVar[Role]
    ROLE_AUTHORISATION_ADMINISTRATOR: _ClassVar[Role]
    ROLE_MACHINE_CREDENTIAL_ADMINISTRATOR: _ClassVar[Role]
    ROLE_SOFTWARE: _ClassVar[Role]
KEY_TYPE_UNSPECIFIED: KeyType
KEY_TYPE_RSA_2048: KeyType
KEY_TYPE_RSA_3072: KeyType
KEY_TYPE_EC_P256: KeyType
SIGNATURE_ALGORITHM_UNSPECIFIED: SignatureAlgorithm
SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256: SignatureAlgorithm
SIGNATURE_ALGORITHM_RSA_PKCS1_SHA1: SignatureAlgorithm
SIGNATURE_ALGORITHM_RSA_PSS_SHA256: SignatureAlgorithm
SIGNATURE_ALGORITHM_ECDSA_SHA256: SignatureAlgorithm
BACKEND_UNSPECIFIED: Backend
BACKEND_PKCS11: Backend
BACKEND_FILE: Backend
ROLE_UNSPECIFIED: Role
ROLE_PRINCIPAL_AUTHORITY: Role
ROLE_AUTHORISATION_ADMINISTRATOR: Role
ROLE_MACHINE_CREDENTIAL_ADMINISTRATOR: Role
ROLE_SOFTWARE: Role

class Business(_message.Message):
    __slots__ = ("abn", "name", "registered_at")
    ABN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    abn: str
    name: str
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, abn: _Optional[str] = ..., name: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterBusinessRequest(_message.Message):
    __slots__ = ("abn", "name", "principal_authority")
    ABN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    abn: str
    name: str
    principal_authority: str
    def __init__(self, abn: _Optional[str] = ..., name: _Optional[str] = ..., principal_authority: _Optional[str] = ...) -> None: ...

class GetBusinessRequest(_message.Message):
    __slots__ = ("abn",)
    ABN_FIELD_NUMBER: _ClassVar[int]
    abn: str
    def __init__(self, abn: _Optional[str] = ...) -> None: ...

class RoleRequest(_message.Message):
    __slots__ = ("abn", "principal", "role")
    ABN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    abn: str
    principal: str
    role: Role
    def __init__(self, abn: _Optional[str] = ..., principal: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class RoleGrant(_message.Message):
    __slots__ = ("abn", "principal", "role", "granted_at", "granted_by")
    ABN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    GRANTED_BY_FIELD_NUMBER: _ClassVar[int]
    abn: str
    principal: str
    role: Role
    granted_at: _timestamp_pb2.Timestamp
    granted_by: str
    def __init__(self, abn: _Optional[str] = ..., principal: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granted_by: _Optional[str] = ...) -> None: ...

class RemoveRoleResponse(_message.Message):
    __slots__ = ("unassigned_credential_ids",)
    UNASSIGNED_CREDENTIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    unassigned_credential_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, unassigned_credential_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListRolesRequest(_message.Message):
    __slots__ = ("abn",)
    ABN_FIELD_NUMBER: _ClassVar[int]
    abn: str
    def __init__(self, abn: _Optional[str] = ...) -> None: ...

class ListRolesResponse(_message.Message):
    __slots__ = ("roles",)
    ROLES_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.RepeatedCompositeFieldContainer[RoleGrant]
    def __init__(self, roles: _Optional[_Iterable[_Union[RoleGrant, _Mapping]]] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("name", "uid", "certificate_subject", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: int
    certificate_subject: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[int] = ..., certificate_subject: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePrincipalRequest(_message.Message):
    __slots__ = ("name", "uid", "certificate_subject")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: int
    certificate_subject: str
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[int] = ..., certificate_subject: _Optional[str] = ...) -> None: ...

class CreatePrincipalResponse(_message.Message):
    __slots__ = ("principal", "token")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    principal: Principal
    token: str
    def __init__(self, principal: _Optional[_Union[Principal, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class ListPrincipalsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPrincipalsResponse(_message.Message):
    __slots__ = ("principals",)
    PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    principals: _containers.RepeatedCompositeFieldContainer[Principal]
    def __init__(self, principals: _Optional[_Iterable[_Union[Principal, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("name", "local_administrator")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ADMINISTRATOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    local_administrator: bool
    def __init__(self, name: _Optional[str] = ..., local_administrator: _Optional[bool] = ...) -> None: ...

class MachineTerms(_message.Message):
    __slots__ = ("version", "text")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    version: str
    text: str
    def __init__(self, version: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class GetMachineTermsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Reminder(_message.Message):
    __slots__ = ("day", "recorded_at", "recipients")
    DAY_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    day: int
    recorded_at: _timestamp_pb2.Timestamp
    recipients: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, day: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recipients: _Optional[_Iterable[str]] = ...) -> None: ...

class Credential(_message.Message):
    __slots__ = ("id", "abn", "name", "status", "key_type", "backend", "key_uri", "created_at", "created_by", "terms_version", "display_status", "holder", "unassigned_at", "window_ends_at", "reminders", "first_used_at", "permissions", "revoked_at", "revoked_by", "certificate_not_after", "alias", "local")
    ID_FIELD_NUMBER: _ClassVar[int]
    ABN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    KEY_URI_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    TERMS_VERSION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_STATUS_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    UNASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    REMINDERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    abn: str
    name: str
    status: str
    key_type: KeyType
    backend: Backend
    key_uri: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    terms_version: str
    display_status: str
    holder: str
    unassigned_at: _timestamp_pb2.Timestamp
    window_ends_at: _timestamp_pb2.Timestamp
    reminders: _containers.RepeatedCompositeFieldContainer[Reminder]
    first_used_at: _timestamp_pb2.Timestamp
    permissions: PermissionSet
    revoked_at: _timestamp_pb2.Timestamp
    revoked_by: str
    certificate_not_after: _timestamp_pb2.Timestamp
    alias: str
    local: bool
    def __init__(self, id: _Optional[str] = ..., abn: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., backend: _Optional[_Union[Backend, str]] = ..., key_uri: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., terms_version: _Optional[str] = ..., display_status: _Optional[str] = ..., holder: _Optional[str] = ..., unassigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reminders: _Optional[_Iterable[_Union[Reminder, _Mapping]]] = ..., first_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., permissions: _Optional[_Union[PermissionSet, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_by: _Optional[str] = ..., certificate_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., alias: _Optional[str] = ..., local: _Optional[bool] = ...) -> None: ...

class PermissionSet(_message.Message):
    __slots__ = ("permissions",)
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    permissions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, permissions: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateCredentialResponse(_message.Message):
    __slots__ = ("credential", "notice", "replaces_id")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    REPLACES_ID_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    notice: str
    replaces_id: str
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., notice: _Optional[str] = ..., replaces_id: _Optional[str] = ...) -> None: ...

class CreateCredentialRequest(_message.Message):
    __slots__ = ("abn", "name", "key_type", "backend", "store", "accepted_terms_version")
    ABN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TERMS_VERSION_FIELD_NUMBER: _ClassVar[int]
    abn: str
    name: str
    key_type: KeyType
    backend: Backend
    store: str
    accepted_terms_version: str
    def __init__(self, abn: _Optional[str] = ..., name: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., backend: _Optional[_Union[Backend, str]] = ..., store: _Optional[str] = ..., accepted_terms_version: _Optional[str] = ...) -> None: ...

class GetCredentialRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListCredentialsRequest(_message.Message):
    __slots__ = ("abn", "page_size", "page_token", "expiring_within_days")
    ABN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_WITHIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    abn: str
    page_size: int
    page_token: str
    expiring_within_days: int
    def __init__(self, abn: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., expiring_within_days: _Optional[int] = ...) -> None: ...

class ListCredentialsResponse(_message.Message):
    __slots__ = ("credentials", "next_page_token")
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[Credential]
    next_page_token: str
    def __init__(self, credentials: _Optional[_Iterable[_Union[Credential, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PublicKey(_message.Message):
    __slots__ = ("pem",)
    PEM_FIELD_NUMBER: _ClassVar[int]
    pem: str
    def __init__(self, pem: _Optional[str] = ...) -> None: ...

class SignRequest(_message.Message):
    __slots__ = ("credential_id", "algorithm", "data", "digest", "permission", "include_chain")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    algorithm: SignatureAlgorithm
    data: bytes
    digest: bytes
    permission: str
    include_chain: bool
    def __init__(self, credential_id: _Optional[str] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., data: _Optional[bytes] = ..., digest: _Optional[bytes] = ..., permission: _Optional[str] = ..., include_chain: _Optional[bool] = ...) -> None: ...

class SignBatchItem(_message.Message):
    __slots__ = ("credential_id", "algorithm", "digest", "permission")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    algorithm: SignatureAlgorithm
    digest: bytes
    permission: str
    def __init__(self, credential_id: _Optional[str] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., digest: _Optional[bytes] = ..., permission: _Optional[str] = ...) -> None: ...

class SignBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SignBatchItem]
    def __init__(self, items: _Optional[_Iterable[_Union[SignBatchItem, _Mapping]]] = ...) -> None: ...

class SignBatchResult(_message.Message):
    __slots__ = ("signature", "algorithm", "code", "error")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    algorithm: SignatureAlgorithm
    code: int
    error: str
    def __init__(self, signature: _Optional[bytes] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class SignBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SignBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SignBatchResult, _Mapping]]] = ...) -> None: ...

class SignResponse(_message.Message):
    __slots__ = ("signature", "algorithm", "certificate_chain")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    algorithm: SignatureAlgorithm
    certificate_chain: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, signature: _Optional[bytes] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., certificate_chain: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RevokeCredentialRequest(_message.Message):
    __slots__ = ("id", "confirm")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    id: str
    confirm: bool
    def __init__(self, id: _Optional[str] = ..., confirm: _Optional[bool] = ...) -> None: ...

class ClaimCredentialRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PermissionsRequest(_message.Message):
    __slots__ = ("id", "set")
    ID_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    id: str
    set: PermissionSet
    def __init__(self, id: _Optional[str] = ..., set: _Optional[_Union[PermissionSet, _Mapping]] = ...) -> None: ...

class PermissionEntry(_message.Message):
    __slots__ = ("id", "agency", "service", "granted")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    agency: str
    service: str
    granted: bool
    def __init__(self, id: _Optional[str] = ..., agency: _Optional[str] = ..., service: _Optional[str] = ..., granted: _Optional[bool] = ...) -> None: ...

class PermissionsResponse(_message.Message):
    __slots__ = ("credential_id", "first_used", "permissions")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_USED_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    first_used: bool
    permissions: _containers.RepeatedCompositeFieldContainer[PermissionEntry]
    def __init__(self, credential_id: _Optional[str] = ..., first_used: _Optional[bool] = ..., permissions: _Optional[_Iterable[_Union[PermissionEntry, _Mapping]]] = ...) -> None: ...

class Pem(_message.Message):
    __slots__ = ("pem",)
    PEM_FIELD_NUMBER: _ClassVar[int]
    pem: str
    def __init__(self, pem: _Optional[str] = ...) -> None: ...

class CredentialRef(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class InstallCertificateRequest(_message.Message):
    __slots__ = ("id", "certificate", "chain")
    ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    id: str
    certificate: bytes
    chain: bytes
    def __init__(self, id: _Optional[str] = ..., certificate: _Optional[bytes] = ..., chain: _Optional[bytes] = ...) -> None: ...

class ImportCredentialRequest(_message.Message):
    __slots__ = ("keystore_xml", "pkcs12", "alias", "password", "backend", "store", "principal_authority", "accepted_terms_version")
    KEYSTORE_XML_FIELD_NUMBER: _ClassVar[int]
    PKCS12_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TERMS_VERSION_FIELD_NUMBER: _ClassVar[int]
    keystore_xml: bytes
    pkcs12: bytes
    alias: str
    password: str
    backend: Backend
    store: str
    principal_authority: str
    accepted_terms_version: str
    def __init__(self, keystore_xml: _Optional[bytes] = ..., pkcs12: _Optional[bytes] = ..., alias: _Optional[str] = ..., password: _Optional[str] = ..., backend: _Optional[_Union[Backend, str]] = ..., store: _Optional[str] = ..., principal_authority: _Optional[str] = ..., accepted_terms_version: _Optional[str] = ...) -> None: ...

class ExportCredentialRequest(_message.Message):
    __slots__ = ("id", "format", "password")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    id: str
    format: str
    password: str
    def __init__(self, id: _Optional[str] = ..., format: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class ExportCredentialResponse(_message.Message):
    __slots__ = ("data", "notice")
    DATA_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    notice: str
    def __init__(self, data: _Optional[bytes] = ..., notice: _Optional[str] = ...) -> None: ...

class InspectKeystoreRequest(_message.Message):
    __slots__ = ("keystore_xml",)
    KEYSTORE_XML_FIELD_NUMBER: _ClassVar[int]
    keystore_xml: bytes
    def __init__(self, keystore_xml: _Optional[bytes] = ...) -> None: ...

class KeystoreEntry(_message.Message):
    __slots__ = ("alias", "abn", "legal_name", "name", "serial_number", "not_before", "not_after", "status", "issuer")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    ABN_FIELD_NUMBER: _ClassVar[int]
    LEGAL_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    alias: str
    abn: str
    legal_name: str
    name: str
    serial_number: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    status: str
    issuer: str
    def __init__(self, alias: _Optional[str] = ..., abn: _Optional[str] = ..., legal_name: _Optional[str] = ..., name: _Optional[str] = ..., serial_number: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., issuer: _Optional[str] = ...) -> None: ...

class InspectKeystoreResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[KeystoreEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[KeystoreEntry, _Mapping]]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("seq", "at", "actor", "action", "outcome", "abn", "target", "detail_json", "prev_hash", "hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ABN_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at: _timestamp_pb2.Timestamp
    actor: str
    action: str
    outcome: str
    abn: str
    target: str
    detail_json: str
    prev_hash: str
    hash: str
    def __init__(self, seq: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., outcome: _Optional[str] = ..., abn: _Optional[str] = ..., target: _Optional[str] = ..., detail_json: _Optional[str] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("abn", "limit", "after")
    ABN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    abn: str
    limit: int
    after: int
    def __init__(self, abn: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[int] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries", "next_after")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_after: int
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_after: _Optional[int] = ...) -> None: ...

class VerifyAuditRequest(_message.Message):
    __slots__ = ("expect_head",)
    EXPECT_HEAD_FIELD_NUMBER: _ClassVar[int]
    expect_head: str
    def __init__(self, expect_head: _Optional[str] = ...) -> None: ...

class VerifyAuditResponse(_message.Message):
    __slots__ = ("ok", "entries", "head_hash", "problem", "bad_seq", "checkpoint_seq", "first_checkpoint_seq")
    OK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_CHECKPOINT_SEQ_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    entries: int
    head_hash: str
    problem: str
    bad_seq: int
    checkpoint_seq: int
    first_checkpoint_seq: int
    def __init__(self, ok: _Optional[bool] = ..., entries: _Optional[int] = ..., head_hash: _Optional[str] = ..., problem: _Optional[str] = ..., bad_seq: _Optional[int] = ..., checkpoint_seq: _Optional[int] = ..., first_checkpoint_seq: _Optional[int] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("id", "abn", "business_name", "dsp_abn", "dsp_name", "software_ids", "start_date", "end_date", "agencies", "status", "created_at", "created_by", "requested_by", "declaration_by", "declaration_at", "removed_at", "removed_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    ABN_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_NAME_FIELD_NUMBER: _ClassVar[int]
    DSP_ABN_FIELD_NUMBER: _ClassVar[int]
    DSP_NAME_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    DECLARATION_BY_FIELD_NUMBER: _ClassVar[int]
    DECLARATION_AT_FIELD_NUMBER: _ClassVar[int]
    REMOVED_AT_FIELD_NUMBER: _ClassVar[int]
    REMOVED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    abn: str
    business_name: str
    dsp_abn: str
    dsp_name: str
    software_ids: _containers.RepeatedScalarFieldContainer[str]
    start_date: str
    end_date: str
    agencies: _containers.RepeatedScalarFieldContainer[str]
    status: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    requested_by: str
    declaration_by: str
    declaration_at: _timestamp_pb2.Timestamp
    removed_at: _timestamp_pb2.Timestamp
    removed_by: str
    def __init__(self, id: _Optional[str] = ..., abn: _Optional[str] = ..., business_name: _Optional[str] = ..., dsp_abn: _Optional[str] = ..., dsp_name: _Optional[str] = ..., software_ids: _Optional[_Iterable[str]] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., agencies: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., requested_by: _Optional[str] = ..., declaration_by: _Optional[str] = ..., declaration_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., removed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., removed_by: _Optional[str] = ...) -> None: ...

class AddNotificationRequest(_message.Message):
    __slots__ = ("abn", "dsp_abn", "software_ids", "start_date", "end_date", "agencies", "accept_declaration")
    ABN_FIELD_NUMBER: _ClassVar[int]
    DSP_ABN_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_DECLARATION_FIELD_NUMBER: _ClassVar[int]
    abn: str
    dsp_abn: str
    software_ids: _containers.RepeatedScalarFieldContainer[str]
    start_date: str
    end_date: str
    agencies: _containers.RepeatedScalarFieldContainer[str]
    accept_declaration: bool
    def __init__(self, abn: _Optional[str] = ..., dsp_abn: _Optional[str] = ..., software_ids: _Optional[_Iterable[str]] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., agencies: _Optional[_Iterable[str]] = ..., accept_declaration: _Optional[bool] = ...) -> None: ...

class RequestNotificationRequest(_message.Message):
    __slots__ = ("dsp_abn", "abn", "software_ids", "start_date", "end_date", "agencies")
    DSP_ABN_FIELD_NUMBER: _ClassVar[int]
    ABN_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    dsp_abn: str
    abn: str
    software_ids: _containers.RepeatedScalarFieldContainer[str]
    start_date: str
    end_date: str
    agencies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dsp_abn: _Optional[str] = ..., abn: _Optional[str] = ..., software_ids: _Optional[_Iterable[str]] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., agencies: _Optional[_Iterable[str]] = ...) -> None: ...

class AcceptNotificationRequest(_message.Message):
    __slots__ = ("id", "accept_declaration")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_DECLARATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    accept_declaration: bool
    def __init__(self, id: _Optional[str] = ..., accept_declaration: _Optional[bool] = ...) -> None: ...

class EditNotificationRequest(_message.Message):
    __slots__ = ("id", "software_ids", "start_date", "end_date", "no_end_date", "accept_declaration")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    NO_END_DATE_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_DECLARATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    software_ids: _containers.RepeatedScalarFieldContainer[str]
    start_date: str
    end_date: str
    no_end_date: bool
    accept_declaration: bool
    def __init__(self, id: _Optional[str] = ..., software_ids: _Optional[_Iterable[str]] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., no_end_date: _Optional[bool] = ..., accept_declaration: _Optional[bool] = ...) -> None: ...

class RemoveNotificationRequest(_message.Message):
    __slots__ = ("id", "confirm")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    id: str
    confirm: bool
    def __init__(self, id: _Optional[str] = ..., confirm: _Optional[bool] = ...) -> None: ...

class GetNotificationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("abn", "status")
    ABN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    abn: str
    status: str
    def __init__(self, abn: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications",)
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ...) -> None: ...

class Agency(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListAgenciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgenciesResponse(_message.Message):
    __slots__ = ("agencies",)
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    agencies: _containers.RepeatedCompositeFieldContainer[Agency]
    def __init__(self, agencies: _Optional[_Iterable[_Union[Agency, _Mapping]]] = ...) -> None: ...

class CACertificates(_message.Message):
    __slots__ = ("root_pem", "issuing_pem")
    ROOT_PEM_FIELD_NUMBER: _ClassVar[int]
    ISSUING_PEM_FIELD_NUMBER: _ClassVar[int]
    root_pem: str
    issuing_pem: str
    def __init__(self, root_pem: _Optional[str] = ..., issuing_pem: _Optional[str] = ...) -> None: ...

class InitCARequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCACertificatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCRLRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("data", "last", "size", "sha256", "audit_seq")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    last: bool
    size: int
    sha256: str
    audit_seq: int
    def __init__(self, data: _Optional[bytes] = ..., last: _Optional[bool] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., audit_seq: _Optional[int] = ...) -> None: ...

class SignStreamRequest(_message.Message):
    __slots__ = ("request_id", "credential_id", "algorithm", "data", "digest", "permission")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    credential_id: str
    algorithm: SignatureAlgorithm
    data: bytes
    digest: bytes
    permission: str
    def __init__(self, request_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., data: _Optional[bytes] = ..., digest: _Optional[bytes] = ..., permission: _Optional[str] = ...) -> None: ...

class SignStreamResponse(_message.Message):
    __slots__ = ("request_id", "signature", "algorithm", "code", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    signature: bytes
    algorithm: SignatureAlgorithm
    code: int
    error: str
    def __init__(self, request_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class SignStsRequestRequest(_message.Message):
    __slots__ = ("credential_id", "applies_to", "sts_endpoint", "lifetime_minutes", "act_as_abn", "claims")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIES_TO_FIELD_NUMBER: _ClassVar[int]
    STS_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ACT_AS_ABN_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    applies_to: str
    sts_endpoint: str
    lifetime_minutes: int
    act_as_abn: str
    claims: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, credential_id: _Optional[str] = ..., applies_to: _Optional[str] = ..., sts_endpoint: _Optional[str] = ..., lifetime_minutes: _Optional[int] = ..., act_as_abn: _Optional[str] = ..., claims: _Optional[_Iterable[str]] = ...) -> None: ...

class SignStsRequestResponse(_message.Message):
    __slots__ = ("envelope", "credential_id")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    credential_id: str
    def __init__(self, envelope: _Optional[bytes] = ..., credential_id: _Optional[str] = ...) -> None: ...

class SignXmlRequest(_message.Message):
    __slots__ = ("credential_id", "document", "ids")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    document: bytes
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, credential_id: _Optional[str] = ..., document: _Optional[bytes] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SignXmlResponse(_message.Message):
    __slots__ = ("document", "credential_id")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    document: bytes
    credential_id: str
    def __init__(self, document: _Optional[bytes] = ..., credential_id: _Optional[str] = ...) -> None: ...

class RenewCredentialRequest(_message.Message):
    __slots__ = ("credential", "issue", "accepted_terms_version", "key_type")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    ISSUE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TERMS_VERSION_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    credential: str
    issue: bool
    accepted_terms_version: str
    key_type: KeyType
    def __init__(self, credential: _Optional[str] = ..., issue: _Optional[bool] = ..., accepted_terms_version: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ...) -> None: ...

class RenewCredentialResponse(_message.Message):
    __slots__ = ("credential", "alias", "csr_pem", "alias_moved")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    ALIAS_MOVED_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    alias: str
    csr_pem: str
    alias_moved: bool
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., alias: _Optional[str] = ..., csr_pem: _Optional[str] = ..., alias_moved: _Optional[bool] = ...) -> None: ...

class SetCredentialLocalRequest(_message.Message):
    __slots__ = ("id", "local")
    ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    local: bool
    def __init__(self, id: _Optional[str] = ..., local: _Optional[bool] = ...) -> None: ...
