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
    __slots__ = ("abn", "name")
    ABN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    abn: str
    name: str
    def __init__(self, abn: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetBusinessRequest(_message.Message):
    __slots__ = ("abn",)
    ABN_FIELD_NUMBER: _ClassVar[int]
    abn: str
    def __init__(self, abn: _Optional[str] = ...) -> None: ...

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

class Credential(_message.Message):
    __slots__ = ("id", "abn", "name", "status", "key_type", "backend", "key_uri", "created_at", "created_by", "terms_version")
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
    def __init__(self, id: _Optional[str] = ..., abn: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., backend: _Optional[_Union[Backend, str]] = ..., key_uri: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., terms_version: _Optional[str] = ...) -> None: ...

class CreateCredentialRequest(_message.Message):
    __slots__ = ("abn", "name", "key_type", "backend", "keystore_path", "accepted_terms_version")
    ABN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    KEYSTORE_PATH_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TERMS_VERSION_FIELD_NUMBER: _ClassVar[int]
    abn: str
    name: str
    key_type: KeyType
    backend: Backend
    keystore_path: str
    accepted_terms_version: str
    def __init__(self, abn: _Optional[str] = ..., name: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., backend: _Optional[_Union[Backend, str]] = ..., keystore_path: _Optional[str] = ..., accepted_terms_version: _Optional[str] = ...) -> None: ...

class GetCredentialRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListCredentialsRequest(_message.Message):
    __slots__ = ("abn",)
    ABN_FIELD_NUMBER: _ClassVar[int]
    abn: str
    def __init__(self, abn: _Optional[str] = ...) -> None: ...

class ListCredentialsResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[Credential]
    def __init__(self, credentials: _Optional[_Iterable[_Union[Credential, _Mapping]]] = ...) -> None: ...

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
    __slots__ = ("credential_id", "algorithm", "data", "digest")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    algorithm: SignatureAlgorithm
    data: bytes
    digest: bytes
    def __init__(self, credential_id: _Optional[str] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., data: _Optional[bytes] = ..., digest: _Optional[bytes] = ...) -> None: ...

class SignResponse(_message.Message):
    __slots__ = ("signature", "algorithm", "certificate_chain")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    algorithm: SignatureAlgorithm
    certificate_chain: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, signature: _Optional[bytes] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., certificate_chain: _Optional[_Iterable[bytes]] = ...) -> None: ...
