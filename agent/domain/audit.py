"""The audit log's hash chain: how an entry is hashed and how the chain is checked.

Each entry carries the hash of the one before it; the first carries GENESIS. An entry's
hash covers its sequence number, its fields and the previous hash, so editing an entry,
removing one or swapping two breaks the chain at that point.

Whoever holds the database could still cut off the newest entries, or rewrite entries and
recompute every hash. So the agent anchors the chain in its key custody: a *checkpoint*
entry (action ``audit.checkpoint``) carries a signature, made with the agent's audit key in
the token or key store file, over the sequence number and hash of the entry just before it.
Rewriting anything before a checkpoint breaks that signature; removing every checkpoint, or
the entries after the one the running agent last wrote, is reported too. What remains
undetectable from the database alone (cutting the log back to an older checkpoint while the
agent is stopped) is caught by comparing with a head kept elsewhere (`--expect-head`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _quote  # json.dumps' escaping (ensure_ascii=False)
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


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)  # made once, not per call


def canonical_json(value: Any) -> str:
    """The one JSON encoding of a detail: in the entry's hash and in the stored row."""
    return _CANONICAL.encode(value)


def bounded(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """An entry's fields with every part cut to the bounds above (the one place that applies
    them), and the detail's canonical JSON: encoded once, for the bound, the hash and the row."""
    detail = _bounded(fields.get("detail") or {})
    encoded = canonical_json(detail)
    if len(encoded) > MAX_DETAIL:
        detail = {"truncated": f"the detail ({len(encoded)} bytes) was over {MAX_DETAIL} bytes", "keys": sorted(detail)}
        encoded = canonical_json(detail)
    return {**fields, "detail": detail,
            **{name: clip(fields.get(name) or "", MAX_FIELD) for name in ("actor", "target", "abn")}}, encoded


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


def entry_hash(entry: AuditEntry, detail_json: str | None = None) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the entry's fields.

    Args:
        detail_json: `canonical_json(entry.detail)` when the caller has it already.
    """
    return hash_of(entry.seq, entry.at, entry.actor, entry.action, entry.outcome, entry.abn, entry.target,
                   canonical_json(entry.detail) if detail_json is None else detail_json, entry.prev_hash)


def timestamp(at: dt.datetime) -> str:
    """An entry's time as hashed and stored: ISO 8601 in UTC with microseconds."""
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def hash_of(seq: int, at: dt.datetime | str, actor: str, action: str, outcome: str, abn: str, target: str,
            detail_json: str, prev_hash: str) -> str:
    """`entry_hash` from the fields: the body is exactly ``canonical_json`` of the entry's fields
    (keys in sorted order, strings escaped as json.dumps does), built without encoding the detail again.

    Args:
        at: the entry's time, or its `timestamp` when the caller has it already.
    """
    when = at if isinstance(at, str) else timestamp(at)
    body = (f'{{"abn":{_quote(abn)},"action":{_quote(action)},"actor":{_quote(actor)},"at":{_quote(when)},'
            f'"detail":{detail_json},"outcome":{_quote(outcome)},"seq":{int(seq)},"target":{_quote(target)}}}')
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


CHECKPOINT = "audit.checkpoint"
TAMPERING = "audit.tampering-detected"  # written at start-up when the newest checkpoint is gone or forged


def checkpoint_message(seq: int, head_hash: str) -> bytes:
    """What a checkpoint signs: the position and hash of the entry before it."""
    return f"mcagent audit checkpoint\n{seq}\n{head_hash}".encode()


@dataclass(frozen=True)
class VerifyResult:
    """What `verify_chain` found."""

    ok: bool
    entries: int
    head_hash: str
    problem: str = ""
    bad_seq: int = 0
    checkpoint_seq: int = 0  # the newest valid checkpoint entry, 0 if none
    first_checkpoint_seq: int = 0  # the oldest: entries before it are anchored only by the chain


def verify_chain(entries: Iterable[AuditEntry],
                 checkpoint_valid: Callable[[AuditEntry], bool] | None = None) -> VerifyResult:
    """Walk the chain in sequence order and report the first entry that does not fit.

    Args:
        checkpoint_valid: checks a checkpoint entry's signature (over its ``prev_hash``);
            None skips the signatures.
    """
    prev_hash, expected_seq, count, checkpoint, first = GENESIS, 1, 0, 0, 0
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
            return VerifyResult(False, count, prev_hash, f"entry {entry.seq} was changed", entry.seq, checkpoint)
        if entry.action == CHECKPOINT and checkpoint_valid is not None:
            if not checkpoint_valid(entry):
                return VerifyResult(False, count, prev_hash,
                                    f"checkpoint entry {entry.seq} does not carry a valid signature of the audit key "
                                    "over the entries before it: they were rewritten", entry.seq, checkpoint)
            checkpoint, first = entry.seq, first or entry.seq
        prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    return VerifyResult(True, count, prev_hash, checkpoint_seq=checkpoint, first_checkpoint_seq=first)
