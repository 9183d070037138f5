"""An audit entry's detail is encoded once (`bounded`), and the hash built around that encoding
is the hash of the whole entry's canonical JSON, as entries written before were hashed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from mcagent.agent.domain.audit import MAX_DETAIL, AuditEntry, bounded, canonical_json, entry_hash, hash_of


def _reference_hash(entry: AuditEntry) -> str:
    """How entries were hashed until the detail was encoded once (kept here as the reference)."""
    body = json.dumps({"seq": entry.seq, "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
                       "actor": entry.actor, "action": entry.action, "outcome": entry.outcome, "abn": entry.abn,
                       "target": entry.target, "detail": entry.detail},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{entry.prev_hash}\n{body}".encode()).hexdigest()


AWKWARD = [
    dict(actor="alice", action="credential.sign", outcome="allowed", abn="51824753556", target="c-1",
         detail={"algorithm": "ecdsa-sha256", "permission": "", "digest_sha256": "ab" * 32}),
    dict(actor='quote " back \\ slash', action="x.y", outcome="refused", abn="", target="tab\tnew\nline\x00",
         detail={"z": [1, 2.5, None, True], "a": {"nested": {"b": "é 日本 \u2028 \U0001f600"}}, "10": -3}),
    dict(actor="", action="", outcome="", abn="", target="", detail={}),
]


@pytest.mark.parametrize("fields", AWKWARD)
def test_the_hash_built_around_the_encoded_detail_is_the_whole_entry_hash(fields):
    at = dt.datetime(2026, 11, 2, 20, 0, 0, 123, tzinfo=dt.timezone(dt.timedelta(hours=11)))
    f, detail_json = bounded({**fields, "at": at})
    assert detail_json == canonical_json(f["detail"]) and json.loads(detail_json) == f["detail"]
    entry = AuditEntry(seq=12345, prev_hash="f" * 64, **f)
    expected = _reference_hash(entry)
    assert hash_of(12345, at, f["actor"], f["action"], f["outcome"], f["abn"], f["target"], detail_json,
                   "f" * 64) == expected
    assert entry_hash(entry) == expected == entry_hash(entry, detail_json)


def test_a_detail_over_the_bound_is_replaced_by_a_note_and_encoded_as_stored():
    f, detail_json = bounded({"at": dt.datetime.now(dt.UTC), "detail": {f"k{i}": "x" * 200 for i in range(15)}})
    assert f["detail"]["truncated"].startswith("the detail (") and len(f["detail"]["keys"]) == 15
    assert detail_json == canonical_json(f["detail"]) and len(detail_json) <= MAX_DETAIL
