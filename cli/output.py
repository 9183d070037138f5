"""Everything the command line prints: one JSON shape per message type, text, tables.

With `--json` a command prints the message it got back, as `document(message)` shapes it
(docs/cli-json.md lists each command's keys). The shape is stable: every field of the
message is present, under its proto (snake_case) name; a sub-message or timestamp that is not
set is `null`, an empty list `[]`, an empty string `""`. Numbers are JSON numbers (int64
too), timestamps RFC 3339 UTC strings, bytes base64, enums spelled as the command line's
flags spell them (`rsa-2048`, `file`, `machine-credential-administrator`, `rsa-pkcs1-sha256`),
a list wrapped in a message is the list itself (`"permissions": ["osir.usi"]`), and JSON
carried in a string is the object (an audit entry's `detail_json` is printed as `detail`).
So a Credential reads the same from `create`, `show`, `claim`, `revoke` and `install`.
Without `--json` it prints text: a sentence, a `label: value` block, or a table.

Standard output carries the result; notes and one-time instructions go to standard error,
so a script can capture an id or a token on its own. A failure under --json is
`{"error": {"code": …, "message": …}}` on standard output (cli/main.py).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli.enums import ALGORITHMS, BACKENDS, KEY_TYPES, ROLES, spelling
from tabulate import tabulate

# -- JSON -----------------------------------------------------------------------------------

# Proto enums by full name, as the command line spells them.
_ENUMS: dict[str, dict[str, int]] = {
    pb.KeyType.DESCRIPTOR.full_name: KEY_TYPES,
    pb.SignatureAlgorithm.DESCRIPTOR.full_name: ALGORITHMS,
    pb.Backend.DESCRIPTOR.full_name: BACKENDS,
    pb.Role.DESCRIPTOR.full_name: ROLES,
}
# Messages that are a list in a wrapper: printed as the list.
_LISTS = {pb.PermissionSet.DESCRIPTOR.full_name: "permissions"}
# Fields printed under another name or in another form: (message, field) -> (key, convert).
_FIELDS: dict[tuple[str, str], tuple[str, Callable[[Any], Any]]] = {
    (pb.AuditEntry.DESCRIPTOR.full_name, "detail_json"): ("detail", lambda text: json.loads(text) if text else {}),
    (pb.Principal.DESCRIPTOR.full_name, "uid"): ("uid", lambda uid: None if uid < 0 else uid),
}
# Fields never printed: the exported file's bytes went to --out.
_OMIT = {(pb.ExportCredentialResponse.DESCRIPTOR.full_name, "data")}
_TIMESTAMP = "google.protobuf.Timestamp"


def _enum(field: FieldDescriptor, number: int) -> str | None:
    spellings = _ENUMS.get(field.enum_type.full_name)
    if spellings is not None:
        name = spelling(spellings, number)
        return None if name == "unspecified" else name
    value = field.enum_type.values_by_number.get(number)
    return None if value is None or number == 0 else value.name.lower().replace("_", "-")


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name == _TIMESTAMP:
            return value.ToJsonString()
        if name in _LISTS:
            return list(getattr(value, _LISTS[name]))
        return document(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum(field, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def document(message: Message) -> dict[str, Any]:
    """The JSON shape of `message`: every field, by proto name, in the forms the module docstring lists."""
    name = message.DESCRIPTOR.full_name
    result: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if (name, field.name) in _OMIT:
            continue
        value = getattr(message, field.name)
        if field.is_repeated:
            shaped: Any = [_value(field, item) for item in value]
        elif field.has_presence and not message.HasField(field.name):
            shaped = None
        else:
            shaped = _value(field, value)
        key, convert = _FIELDS.get((name, field.name), (field.name, None))
        result[key] = convert(shaped) if convert is not None and shaped is not None else shaped
    return result


def error_document(code: str, message: str) -> dict[str, Any]:
    """A failure under --json: the gRPC status name (or USAGE, INVALID_CONFIG, FAILED …) and the message."""
    return {"error": {"code": code, "message": message}}


def created_document(created: pb.CreateCredentialResponse) -> dict[str, Any]:
    """What `credential create` and `import` print with --json: the Credential, renewal notice beside it."""
    result = document(created.credential)
    result.update(notice=created.notice or None, replaces_id=created.replaces_id or None)
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
    if c.HasField("certificate_not_after"):  # SBR: expiry, alias, local flag
        rows.append(("expires", when(c.certificate_not_after)))
    rows += [("alias", c.alias or "(held by another credential of this name)"),
             ("actas", "refused: flagged local" if c.local else "allowed with a notification")]
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
                   spelling(KEY_TYPES, c.key_type), spelling(BACKENDS, c.backend), reminders_text(c) or "-",
                   when(c.certificate_not_after)[:10] if c.HasField("certificate_not_after") else "-")
                  for c in response.credentials),
                 ["ID", "ABN", "NAME", "STATUS", "HOLDER", "KEY TYPE", "BACKEND", "REMINDERS", "EXPIRES"])
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


def token_notice(name: str, stdout: TextIO) -> str:
    """Where a new principal's token went: "above" on a terminal; in plain words when redirected."""
    if _is_terminal(stdout):
        return f"created principal {name}; the token above is shown only once"
    return (f"created principal {name}; its bearer token was written to standard output (not shown here) "
            "and is shown only once; keep it secret")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


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
