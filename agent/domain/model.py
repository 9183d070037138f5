"""Records the agent keeps: businesses and machine credentials."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from hsm.base import KeyType


class Backend(enum.Enum):
    """Where a credential's private key lives."""

    PKCS11 = "pkcs11"
    FILE = "file"


class CredentialStatus(enum.Enum):
    """Life cycle of a credential record.

    ``creating`` marks a record whose key is being generated; it is never shown to callers
    and is cleaned up at start-up if the agent stopped halfway (no key without its record).
    """

    CREATING = "creating"
    ACTIVE = "active"


@dataclass(frozen=True)
class Business:
    """A business, identified by its ABN."""

    abn: str
    name: str
    registered_at: dt.datetime


@dataclass(frozen=True)
class Credential:
    """A machine credential and where its key is.

    Attributes:
        id: the agent's identifier, also the key's label in its backend.
        key_uri: the key's URI in its backend (empty while ``creating``).
    """

    id: str
    abn: str
    name: str
    status: CredentialStatus
    key_type: KeyType
    backend: Backend
    key_uri: str
    created_at: dt.datetime
    created_by: str
    terms_version: str
