"""Everything the command line prints: one JSON shape per message type, text, tables.

With `--json` a command prints the message it got back, as `document(message)` shapes it:
the proto field names, empty fields left out (protobuf's JSON mapping), so a Credential
reads the same from `create`, `show`, `claim`, `revoke` and `install`. Without `--json`
it prints text: a sentence, a `label: value` block, or a table.

Standard output carries the result; notes and one-time instructions go to standard error,
so a script can capture an id or a token on its own.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli.enums import ALGORITHMS, BACKENDS, KEY_TYPES, ROLES, spelling
from tabulate import tabulate

# -- JSON -----------------------------------------------------------------------------------


def _signature_document(response: pb.SignResponse) -> dict[str, Any]:
    # Older than the rule below and kept: the algorithm as the --algorithm flag spells it,
    # and the chain always present.
    return {
        "signature": base64.b64encode(response.signature).decode("ascii"),
        "algorithm": spelling(ALGORITHMS, response.algorithm),
        "certificate_chain": [base64.b64encode(c).decode("ascii") for c in response.certificate_chain],
    }


def _export_document(response: pb.ExportCredentialResponse) -> dict[str, Any]:
    # The file's bytes went to --out; they are not echoed.
    return {"notice": response.notice} if response.notice else {}


_SHAPES: dict[type, Callable[[Any], dict[str, Any]]] = {
    pb.SignResponse: _signature_document,
    pb.ExportCredentialResponse: _export_document,
}


def document(message: Message) -> dict[str, Any]:
    """The JSON shape of `message`: protobuf's mapping with proto field names, unless _SHAPES says otherwise."""
    shape = _SHAPES.get(type(message))
    if shape is not None:
        return shape(message)
    return MessageToDict(message, preserving_proto_field_name=True)


def created_document(created: pb.CreateCredentialResponse) -> dict[str, Any]:
    """What `credential create` and `import` print with --json: the Credential, renewal notice beside it."""
    result = document(created.credential)
    if created.notice:
        result.update(notice=created.notice, replaces_id=created.replaces_id)
    return result


def exported_document(response: pb.ExportCredentialResponse, path: str, file_format: str) -> dict[str, Any]:
    """What `credential export --json` prints: where the file went, its format, and any notice."""
    return {"out": path, "format": file_format, **document(response)}


# -- text -----------------------------------------------------------------------------------


def when(stamp: Any) -> str:
    """A Timestamp as ISO 8601 UTC to the second."""
    return stamp.ToDatetime().isoformat(timespec="seconds") + "Z"


def _block(rows: Iterable[tuple[str, str]], width: int) -> str:
    return "\n".join(f"{label + ':':{width}}{value}" for label, value in rows)


def reminders_text(c: pb.Credential) -> str:
    """The claim reminders recorded for an unassigned credential, on one line."""
    return "; ".join(f"day {r.day} reminder recorded {when(r.recorded_at)} to {', '.join(r.recipients)}"
                     for r in c.reminders)


def credential_text(c: pb.Credential) -> str:
    """One credential, a `label: value` line per fact."""
    rows = [
        ("id", c.id),
        ("abn", c.abn),
        ("name", c.name),
        ("status", c.display_status or c.status),
        ("holder", c.holder or "(unassigned)"),
        ("key type", spelling(KEY_TYPES, c.key_type)),
        ("backend", spelling(BACKENDS, c.backend)),
        ("key uri", c.key_uri),
        ("created", when(c.created_at)),
        ("created by", c.created_by),
        ("terms accepted", c.terms_version),
        ("first used", when(c.first_used_at) if c.HasField("first_used_at") else "not yet (full permissions)"),
        ("permissions", ", ".join(c.permissions.permissions) if c.HasField("permissions") else "all"),
    ]
    if c.HasField("unassigned_at"):
        rows += [("unassigned", when(c.unassigned_at)), ("works until", when(c.window_ends_at))]
    if c.reminders:
        rows.append(("reminders", reminders_text(c)))
    if c.HasField("revoked_at"):
        rows.append(("revoked", f"{when(c.revoked_at)} by {c.revoked_by}"))
    return _block(rows, 16)


def notification_text(n: pb.Notification) -> str:
    """One notification, a `label: value` line per fact."""
    rows = [
        ("id", n.id),
        ("status", n.status),
        ("business", f"{n.abn} {n.business_name}"),
        ("provider", f"{n.dsp_abn} {n.dsp_name}"),
        ("software ids", ", ".join(n.software_ids)),
        ("start date", n.start_date),
        ("end date", n.end_date or "no end date"),
        ("agencies", ", ".join(n.agencies)),
        ("created", f"{when(n.created_at)} by {n.created_by}"),
    ]
    if n.requested_by:
        rows.append(("requested by", n.requested_by))
    if n.declaration_by:
        rows.append(("declaration", f"accepted {when(n.declaration_at)} by {n.declaration_by}"))
    if n.removed_by:
        rows.append(("removed", f"{when(n.removed_at)} by {n.removed_by}"))
    return _block(rows, 14)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """Rows under upper-case headers, columns aligned."""
    return tabulate(list(rows), headers=list(headers))


def credentials_table(response: pb.ListCredentialsResponse) -> str:
    """A page of credentials, and how to ask for the next."""
    text = table(((c.id, c.abn, c.name, c.display_status or c.status, c.holder or "-",
                   spelling(KEY_TYPES, c.key_type), spelling(BACKENDS, c.backend), reminders_text(c) or "-")
                  for c in response.credentials),
                 ["ID", "ABN", "NAME", "STATUS", "HOLDER", "KEY TYPE", "BACKEND", "REMINDERS"])
    if response.next_page_token:
        text += f"\nmore: --page-token {response.next_page_token}"
    return text


def permissions_text(response: pb.PermissionsResponse) -> str:
    """A credential's permissions, each granted or not."""
    header = "" if response.first_used else "not used yet: full permissions until its first use\n"
    return header + table((("yes" if p.granted else "no", p.id, p.agency, p.service) for p in response.permissions),
                          ["GRANTED", "PERMISSION", "AGENCY", "SERVICE"])


def principals_table(response: pb.ListPrincipalsResponse) -> str:
    return table(((p.name, "-" if p.uid < 0 else p.uid, p.certificate_subject or "-") for p in response.principals),
                 ["NAME", "UID", "CERTIFICATE SUBJECT"])


def roles_table(response: pb.ListRolesResponse) -> str:
    return table(((spelling(ROLES, g.role), g.principal, when(g.granted_at), g.granted_by) for g in response.roles),
                 ["ROLE", "PRINCIPAL", "GRANTED", "BY"])


def audit_table(response: pb.ListAuditResponse) -> str:
    """A page of the audit log (the reason of a refusal from its detail), and how to ask for the next."""
    text = table(((e.seq, when(e.at), e.actor, e.action, e.outcome, e.abn or "-", e.target or "-",
                   json.loads(e.detail_json).get("reason", "")) for e in response.entries),
                 ["SEQ", "AT", "ACTOR", "ACTION", "OUTCOME", "ABN", "TARGET", "REASON"])
    if response.next_after:
        text += f"\nmore: --after {response.next_after}"
    return text


def notifications_table(response: pb.ListNotificationsResponse) -> str:
    return table(((n.id, n.status, n.abn, n.dsp_abn, ", ".join(n.software_ids), n.start_date, n.end_date or "-")
                  for n in response.notifications),
                 ["ID", "STATUS", "BUSINESS", "PROVIDER", "SOFTWARE IDS", "START", "END"])


def keystore_table(response: pb.InspectKeystoreResponse) -> str:
    return table(((e.alias, e.abn, e.name, e.serial_number, when(e.not_before), when(e.not_after), e.status)
                  for e in response.entries),
                 ["ALIAS", "ABN", "NAME", "SERIAL", "NOT BEFORE", "NOT AFTER", "STATUS"])


def pem(text: str) -> str:
    """PEM text without its trailing newline (print adds one)."""
    return text.rstrip("\n")


# -- printing -------------------------------------------------------------------------------


class Output:
    """Where a command's results go: JSON or text on standard output, notes on standard error."""

    def __init__(self, *, json: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json = json
        self._stdout = stdout
        self._stderr = stderr

    @property
    def stdout(self) -> TextIO:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr or sys.stderr

    def result(self, message: Message, text: str) -> None:
        """Print `message` as JSON with --json, else `text`."""
        if self.json:
            self.document(document(message))
        else:
            self.line(text)

    def document(self, value: dict[str, Any]) -> None:
        """Print a JSON document."""
        print(json.dumps(value, indent=2), file=self.stdout)

    def line(self, text: str) -> None:
        """Print text on standard output."""
        print(text, file=self.stdout)

    def tell(self, text: str) -> None:
        """Print text for the person at the terminal (standard error), apart from the result."""
        print(text, file=self.stderr)

    def note(self, text: str) -> None:
        """A `note: …` line on standard error."""
        self.tell(f"note: {text}")

    def binary(self, data: bytes) -> None:
        """Raw bytes on standard output."""
        stream = self.stdout.buffer
        stream.write(data)
        stream.flush()
