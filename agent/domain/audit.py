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

# What one entry may hold, so that no caller can make the log grow by more than a few KiB per
# entry: names, paths and messages are cut with a marker; request payloads are never recorded.
MAX_FIELD = 128  # actor, target, abn
MAX_TEXT = 512  # a string inside the detail
MAX_ITEMS = 20  # a list inside the detail
MAX_DETAIL = 2048  # the whole detail, as JSON


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters plus a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return clip(value, MAX_TEXT)
    if isinstance(value, dict):
        return {clip(str(k), MAX_FIELD): _bounded(v) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, (list, tuple)):
        items = [_bounded(v) for v in value[:MAX_ITEMS]]
        return items + [f"...[{len(value) - MAX_ITEMS} more items]"] if len(value) > MAX_ITEMS else items
    return value


def bounded(fields: dict[str, Any]) -> dict[str, Any]:
    """An entry's fields with every part cut to the bounds above (the one place that applies them)."""
    detail = _bounded(fields.get("detail") or {})
    size = len(json.dumps(detail, sort_keys=True))
    if size > MAX_DETAIL:
        detail = {"truncated": f"the detail ({size} bytes) was over {MAX_DETAIL} bytes", "keys": sorted(detail)}
    return {**fields, "detail": detail,
            **{name: clip(fields.get(name) or "", MAX_FIELD) for name in ("actor", "target", "abn")}}


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
