"""The audit log's hash chain: how an entry is hashed and how the chain is checked.

Each entry carries the hash of the one before it; the first carries GENESIS. An entry's
hash covers its sequence number, its fields and the previous hash, so editing an entry,
removing one or swapping two breaks the chain at that point. (Removing the newest entries
leaves a shorter, valid chain: the head hash printed by `audit verify` is what to keep
elsewhere to detect that.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
MAX_PAGE = 1000  # RAM exports at most 1,000 records at a time


@dataclass(frozen=True)
class AuditEntry:
    """One audited event.

    Attributes:
        seq: position in the log, from 1, without gaps.
        at: when (UTC).
        actor: who asked (principal name, or the local administrator).
        action: what was asked, e.g. ``credential.sign``.
        outcome: ``allowed`` or ``refused``.
        abn: the business concerned, or empty.
        target: the object concerned (credential id, principal name ...), or empty.
        detail: anything else worth keeping (never a secret).
        prev_hash: the previous entry's hash.
        hash: this entry's hash.
    """

    seq: int
    at: dt.datetime
    actor: str
    action: str
    outcome: str
    abn: str = ""
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the entry's fields."""
    body = json.dumps(
        {
            "seq": entry.seq,
            "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "actor": entry.actor,
            "action": entry.action,
            "outcome": entry.outcome,
            "abn": entry.abn,
            "target": entry.target,
            "detail": entry.detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{entry.prev_hash}\n{body}".encode()).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    """What `verify_chain` found."""

    ok: bool
    entries: int
    head_hash: str
    problem: str = ""
    bad_seq: int = 0


def verify_chain(entries: Iterable[AuditEntry]) -> VerifyResult:
    """Walk the chain in sequence order and report the first entry that does not fit."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for entry in entries:
        if entry.seq != expected_seq:
            problem = (f"entry {expected_seq} is missing (removed)" if entry.seq > expected_seq
                       else f"entry {entry.seq} is out of order")
            return VerifyResult(False, count, prev_hash, problem, expected_seq)
        if entry.prev_hash != prev_hash:
            return VerifyResult(False, count, prev_hash,
                                f"entry {entry.seq} does not follow entry {entry.seq - 1} "
                                "(an entry was removed or reordered)", entry.seq)
        if entry_hash(entry) != entry.hash:
            return VerifyResult(False, count, prev_hash, f"entry {entry.seq} was changed", entry.seq)
        prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    return VerifyResult(True, count, prev_hash)
