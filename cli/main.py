"""The `mcagent` command: `serve` runs the daemon; every other command is a gRPC client.

Clients reach the daemon on its Unix socket (`--socket PATH`, `MCAGENT_SOCKET`, else the
default in the data directory). On failure a command prints one line saying what was
wrong and exits non-zero (1 for a refused request, 2 for bad usage).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf.json_format import MessageToDict
from tabulate import tabulate

from agent.api.defaults import default_socket_path
from agent.api.v1 import agent_pb2 as pb
from agent.api.v1 import agent_pb2_grpc as pb_grpc

SOCKET_ENV = "MCAGENT_SOCKET"
TOKEN_ENV = "MCAGENT_TOKEN"
IMPORT_PASSWORD_ENV = "MCAGENT_IMPORT_PASSWORD"
EXPORT_PASSWORD_ENV = "MCAGENT_EXPORT_PASSWORD"


class UsageError(Exception):
    """Bad command-line usage; exit status 2."""


class CommandFailed(Exception):
    """The command could not do its work; exit status 1."""


def _enum_names(enum: Any, prefix: str) -> dict[str, int]:
    """CLI spellings of a proto enum: KEY_TYPE_RSA_2048 -> rsa-2048 (unspecified left out)."""
    return {
        name[len(prefix):].lower().replace("_", "-"): number
        for name, number in enum.items()
        if number != 0
    }


KEY_TYPES = _enum_names(pb.KeyType, "KEY_TYPE_")
ALGORITHMS = _enum_names(pb.SignatureAlgorithm, "SIGNATURE_ALGORITHM_")
BACKENDS = _enum_names(pb.Backend, "BACKEND_")
ROLES = _enum_names(pb.Role, "ROLE_")
GRANTABLE_ROLES = [r for r in ROLES if r != "principal-authority"]


def _spelling(table: dict[str, int], number: int) -> str:
    return next((name for name, value in table.items() if value == number), "unspecified")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


# -- client plumbing ------------------------------------------------------------------------


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CommandFailed(f"cannot read {what} {path}: {exc.strerror}") from None


class _Stub:
    """A service stub whose calls carry the caller's bearer token, if any."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Callable[[Any], Any]:
        method = getattr(self._stub, name)
        return lambda request: method(request, metadata=self._metadata, timeout=120)


class Client:
    """Stubs on a channel to the daemon: its Unix socket, or TCP with mutual TLS."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.address:
            if not (args.tls_cert and args.tls_key and args.tls_ca):
                raise UsageError("mcagent: error: --address needs --tls-cert, --tls-key and --tls-ca (mutual TLS)")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read_file(args.tls_ca, "--tls-ca"),
                private_key=_read_file(args.tls_key, "--tls-key"),
                certificate_chain=_read_file(args.tls_cert, "--tls-cert"),
            )
            self.target = args.address
            channel = grpc.secure_channel(args.address, credentials)
        else:
            self.target = f"unix:{args.socket or os.environ.get(SOCKET_ENV) or default_socket_path()}"
            channel = grpc.insecure_channel(self.target)
        token = _token(args)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.businesses = _Stub(pb_grpc.BusinessServiceStub(channel), metadata)
        self.credentials = _Stub(pb_grpc.CredentialServiceStub(channel), metadata)
        self.principals = _Stub(pb_grpc.PrincipalServiceStub(channel), metadata)
        self.audit = _Stub(pb_grpc.AuditServiceStub(channel), metadata)
        self.notifications = _Stub(pb_grpc.NotificationServiceStub(channel), metadata)
        self.ca = _Stub(pb_grpc.CAServiceStub(channel), metadata)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        token = _read_file(args.token_file, "--token-file").decode("utf-8").strip()
        if not token:
            raise CommandFailed(f"--token-file {args.token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _client(args: argparse.Namespace) -> Client:
    return Client(args)


def _emit(args: argparse.Namespace, message: Any, text: str) -> None:
    if args.json:
        print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2))
    else:
        print(text)


def _when(stamp: Any) -> str:
    return stamp.ToDatetime().isoformat(timespec="seconds") + "Z"


def _reminders_text(c: pb.Credential) -> str:
    return "; ".join(f"day {r.day} reminder recorded {_when(r.recorded_at)} to {', '.join(r.recipients)}"
                     for r in c.reminders)


def _credential_lines(c: pb.Credential) -> str:
    rows = [
        ("id", c.id),
        ("abn", c.abn),
        ("name", c.name),
        ("status", c.display_status or c.status),
        ("holder", c.holder or "(unassigned)"),
        ("key type", _spelling(KEY_TYPES, c.key_type)),
        ("backend", _spelling(BACKENDS, c.backend)),
        ("key uri", c.key_uri),
        ("created", _when(c.created_at)),
        ("created by", c.created_by),
        ("terms accepted", c.terms_version),
        ("first used", _when(c.first_used_at) if c.HasField("first_used_at") else "not yet (full permissions)"),
        ("permissions", ", ".join(c.permissions.permissions) if c.HasField("permissions") else "all"),
    ]
    if c.HasField("unassigned_at"):
        rows += [("unassigned", _when(c.unassigned_at)), ("works until", _when(c.window_ends_at))]
    if c.reminders:
        rows.append(("reminders", _reminders_text(c)))
    if c.HasField("revoked_at"):
        rows.append(("revoked", f"{_when(c.revoked_at)} by {c.revoked_by}"))
    return "\n".join(f"{label + ':':16}{value}" for label, value in rows)


# -- commands -------------------------------------------------------------------------------


def cmd_business_register(args: argparse.Namespace) -> None:
    business = _client(args).businesses.RegisterBusiness(
        pb.RegisterBusinessRequest(abn=args.abn, name=args.name, principal_authority=args.principal_authority)
    )
    _emit(args, business, f"registered business {business.abn} ({business.name})")


def cmd_business_lookup(args: argparse.Namespace) -> None:
    business = _client(args).businesses.GetBusiness(pb.GetBusinessRequest(abn=args.abn))
    _emit(args, business, f"{business.abn}  {business.name}")


def cmd_terms_show(args: argparse.Namespace) -> None:
    terms = _client(args).credentials.GetMachineTerms(pb.GetMachineTermsRequest())
    _emit(args, terms, f"Machine terms of use, version {terms.version}\n\n{terms.text}")


def cmd_credential_create(args: argparse.Namespace) -> None:
    client = _client(args)
    accepted = ""
    if args.accept_terms:
        accepted = client.credentials.GetMachineTerms(pb.GetMachineTermsRequest()).version
    created = client.credentials.CreateCredential(
        pb.CreateCredentialRequest(
            abn=args.abn,
            name=args.name,
            key_type=KEY_TYPES[args.key_type] if args.key_type else 0,
            backend=BACKENDS[args.backend] if args.backend else 0,
            store=args.store or "",
            accepted_terms_version=accepted,
        )
    )
    if args.json:
        document = MessageToDict(created.credential, preserving_proto_field_name=True)
        if created.notice:
            document.update(notice=created.notice, replaces_id=created.replaces_id)
        print(json.dumps(document, indent=2))
        return
    print(created.credential.id)
    if created.notice:
        print(f"note: {created.notice}", file=sys.stderr)


def cmd_credential_list(args: argparse.Namespace) -> None:
    response = _client(args).credentials.ListCredentials(
        pb.ListCredentialsRequest(abn=args.abn or "", page_size=args.limit, page_token=args.page_token or "")
    )
    rows = [
        (c.id, c.abn, c.name, c.display_status or c.status, c.holder or "-", _spelling(KEY_TYPES, c.key_type),
         _spelling(BACKENDS, c.backend), _reminders_text(c) or "-")
        for c in response.credentials
    ]
    headers = ["ID", "ABN", "NAME", "STATUS", "HOLDER", "KEY TYPE", "BACKEND", "REMINDERS"]
    text = tabulate(rows, headers=headers)
    if response.next_page_token:
        text += f"\nmore: --page-token {response.next_page_token}"
    _emit(args, response, text)


def cmd_credential_show(args: argparse.Namespace) -> None:
    credential = _client(args).credentials.GetCredential(pb.GetCredentialRequest(id=args.id))
    _emit(args, credential, _credential_lines(credential))


def cmd_credential_public_key(args: argparse.Namespace) -> None:
    key = _client(args).credentials.GetPublicKey(pb.GetPublicKeyRequest(id=args.id))
    _emit(args, key, key.pem.rstrip("\n"))


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CommandFailed(f"cannot read --in {path}: {exc.strerror}") from None


def cmd_credential_sign(args: argparse.Namespace) -> None:
    payload = _read_input(args.input)
    request = pb.SignRequest(credential_id=args.id, algorithm=ALGORITHMS[args.algorithm] if args.algorithm else 0,
                             permission=args.permission or "")
    if args.digest:
        request.digest = payload
    else:
        request.data = payload
    response = _client(args).credentials.Sign(request)
    if args.json:
        print(json.dumps({
            "signature": base64.b64encode(response.signature).decode("ascii"),
            "algorithm": _spelling(ALGORITHMS, response.algorithm),
            "certificate_chain": [base64.b64encode(c).decode("ascii") for c in response.certificate_chain],
        }, indent=2))
    elif args.out:
        with open(args.out, "wb") as fh:
            fh.write(response.signature)
    else:
        sys.stdout.buffer.write(response.signature)
        sys.stdout.buffer.flush()


def cmd_credential_revoke(args: argparse.Namespace) -> None:
    credential = _client(args).credentials.RevokeCredential(pb.RevokeCredentialRequest(id=args.id, confirm=args.yes))
    _emit(args, credential, f"revoked credential {credential.id} ({credential.name})")


def cmd_credential_claim(args: argparse.Namespace) -> None:
    credential = _client(args).credentials.ClaimCredential(pb.ClaimCredentialRequest(id=args.id))
    _emit(args, credential, f"claimed credential {credential.id} ({credential.name}); status {credential.status}")


def cmd_credential_permissions(args: argparse.Namespace) -> None:
    request = pb.PermissionsRequest(id=args.id)
    if args.set is not None:
        request.set.permissions.extend(p.strip() for p in args.set.split(",") if p.strip())
    response = _client(args).credentials.Permissions(request)
    rows = [("yes" if p.granted else "no", p.id, p.agency, p.service) for p in response.permissions]
    header = "" if response.first_used else "not used yet: full permissions until its first use\n"
    _emit(args, response, header + tabulate(rows, headers=["GRANTED", "PERMISSION", "AGENCY", "SERVICE"]))


def cmd_principal_create(args: argparse.Namespace) -> None:
    response = _client(args).principals.CreatePrincipal(pb.CreatePrincipalRequest(
        name=args.name, uid=-1 if args.uid is None else args.uid, certificate_subject=args.certificate_subject or "",
    ))
    if args.json:
        print(json.dumps(MessageToDict(response, preserving_proto_field_name=True), indent=2))
        return
    print(response.token)
    print(f"created principal {response.principal.name}; the token above is shown only once", file=sys.stderr)


def cmd_principal_list(args: argparse.Namespace) -> None:
    response = _client(args).principals.ListPrincipals(pb.ListPrincipalsRequest())
    rows = [(p.name, "-" if p.uid < 0 else p.uid, p.certificate_subject or "-") for p in response.principals]
    _emit(args, response, tabulate(rows, headers=["NAME", "UID", "CERTIFICATE SUBJECT"]))


def cmd_whoami(args: argparse.Namespace) -> None:
    response = _client(args).principals.WhoAmI(pb.WhoAmIRequest())
    _emit(args, response, response.name + (" (local administrator)" if response.local_administrator else ""))


def _role_request(args: argparse.Namespace) -> pb.RoleRequest:
    return pb.RoleRequest(abn=args.abn, principal=args.principal, role=ROLES[args.role])


def cmd_role_grant(args: argparse.Namespace) -> None:
    grant = _client(args).businesses.GrantRole(_role_request(args))
    _emit(args, grant, f"granted {args.role} in {grant.abn} to {grant.principal}")


def cmd_role_remove(args: argparse.Namespace) -> None:
    response = _client(args).businesses.RemoveRole(_role_request(args))
    text = f"removed {args.role} in {args.abn} from {args.principal}"
    for credential_id in response.unassigned_credential_ids:
        text += (f"\ncredential {credential_id} is now unassigned (suspended); `mcagent credential show "
                 f"{credential_id}` gives the date it stops working unless claimed")
    _emit(args, response, text)


def cmd_role_list(args: argparse.Namespace) -> None:
    response = _client(args).businesses.ListRoles(pb.ListRolesRequest(abn=args.abn))
    rows = [(_spelling(ROLES, g.role), g.principal, _when(g.granted_at), g.granted_by) for g in response.roles]
    _emit(args, response, tabulate(rows, headers=["ROLE", "PRINCIPAL", "GRANTED", "BY"]))


def cmd_audit_list(args: argparse.Namespace) -> None:
    response = _client(args).audit.ListAudit(
        pb.ListAuditRequest(abn=args.abn or "", limit=args.limit, after=args.after)
    )
    rows = [(e.seq, _when(e.at), e.actor, e.action, e.outcome, e.abn or "-", e.target or "-",
             json.loads(e.detail_json).get("reason", "")) for e in response.entries]
    text = tabulate(rows, headers=["SEQ", "AT", "ACTOR", "ACTION", "OUTCOME", "ABN", "TARGET", "REASON"])
    if response.next_after:
        text += f"\nmore: --after {response.next_after}"
    _emit(args, response, text)


def cmd_audit_verify(args: argparse.Namespace) -> None:
    result = _client(args).audit.VerifyAudit(pb.VerifyAuditRequest(expect_head=args.expect_head or ""))
    if result.ok:
        _emit(args, result, f"audit log intact: {result.entries} entries, head {result.entries}:{result.head_hash} "
                            f"(keep it elsewhere; check later with --expect-head), signed checkpoints from entry "
                            f"{result.first_checkpoint_seq} to entry {result.checkpoint_seq}")
        return
    if args.json:
        print(json.dumps(MessageToDict(result, preserving_proto_field_name=True), indent=2))
    raise CommandFailed(f"audit log broken at entry {result.bad_seq}: {result.problem} "
                        f"({result.entries} entries before it are intact)")


def _notification_lines(n: pb.Notification) -> str:
    rows = [
        ("id", n.id),
        ("status", n.status),
        ("business", f"{n.abn} {n.business_name}"),
        ("provider", f"{n.dsp_abn} {n.dsp_name}"),
        ("software ids", ", ".join(n.software_ids)),
        ("start date", n.start_date),
        ("end date", n.end_date or "no end date"),
        ("agencies", ", ".join(n.agencies)),
        ("created", f"{_when(n.created_at)} by {n.created_by}"),
    ]
    if n.requested_by:
        rows.append(("requested by", n.requested_by))
    if n.declaration_by:
        rows.append(("declaration", f"accepted {_when(n.declaration_at)} by {n.declaration_by}"))
    if n.removed_by:
        rows.append(("removed", f"{_when(n.removed_at)} by {n.removed_by}"))
    return "\n".join(f"{label + ':':14}{value}" for label, value in rows)


def cmd_notification_add(args: argparse.Namespace) -> None:
    n = _client(args).notifications.AddNotification(pb.AddNotificationRequest(
        abn=args.abn, dsp_abn=args.dsp_abn, software_ids=args.software_id, start_date=args.start,
        end_date=args.end or "", agencies=args.agency, accept_declaration=args.accept_declaration,
    ))
    _emit(args, n, _notification_lines(n))


def cmd_notification_request(args: argparse.Namespace) -> None:
    n = _client(args).notifications.RequestNotification(pb.RequestNotificationRequest(
        dsp_abn=args.dsp_abn, abn=args.abn, software_ids=args.software_id, start_date=args.start,
        end_date=args.end or "", agencies=args.agency,
    ))
    _emit(args, n, _notification_lines(n) + "\npending until the business accepts it")


def cmd_notification_accept(args: argparse.Namespace) -> None:
    n = _client(args).notifications.AcceptNotification(
        pb.AcceptNotificationRequest(id=args.id, accept_declaration=args.accept_declaration)
    )
    _emit(args, n, _notification_lines(n))


def cmd_notification_edit(args: argparse.Namespace) -> None:
    n = _client(args).notifications.EditNotification(pb.EditNotificationRequest(
        id=args.id, software_ids=args.software_id or [], start_date=args.start or "", end_date=args.end or "",
        no_end_date=args.no_end, accept_declaration=args.accept_declaration,
    ))
    _emit(args, n, _notification_lines(n))


def cmd_notification_remove(args: argparse.Namespace) -> None:
    n = _client(args).notifications.RemoveNotification(pb.RemoveNotificationRequest(id=args.id, confirm=args.yes))
    _emit(args, n, f"removed notification {n.id}; it stays in the history")


def cmd_notification_show(args: argparse.Namespace) -> None:
    n = _client(args).notifications.GetNotification(pb.GetNotificationRequest(id=args.id))
    _emit(args, n, _notification_lines(n))


def cmd_notification_list(args: argparse.Namespace) -> None:
    response = _client(args).notifications.ListNotifications(
        pb.ListNotificationsRequest(abn=args.abn or "", status=args.status or "")
    )
    rows = [(n.id, n.status, n.abn, n.dsp_abn, ", ".join(n.software_ids), n.start_date, n.end_date or "-")
            for n in response.notifications]
    headers = ["ID", "STATUS", "BUSINESS", "PROVIDER", "SOFTWARE IDS", "START", "END"]
    _emit(args, response, tabulate(rows, headers=headers))


def _password(args: argparse.Namespace, env_name: str, *, confirm: bool) -> str:
    """A password from --password-file, else the environment, else a prompt on the terminal."""
    if args.password_file:
        password = _read_file(args.password_file, "--password-file").decode("utf-8").rstrip("\r\n")
    else:
        password = os.environ.get(env_name, "")
    if password:
        return password
    if not sys.stdin.isatty():
        raise CommandFailed(f"no password: set {env_name}, pass --password-file FILE, or run on a terminal")
    import getpass

    password = getpass.getpass("Key store password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise CommandFailed("the two passwords differ")
    return password


def _write_private_file(path: str, data: bytes) -> None:
    """Write atomically with mode 0600: a temporary file beside it, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise CommandFailed(f"cannot write {path}: {exc.strerror}") from None


def cmd_credential_csr(args: argparse.Namespace) -> None:
    response = _client(args).credentials.GetCsr(pb.CredentialRef(id=args.id))
    _emit(args, response, response.pem.rstrip("\n"))


def cmd_credential_certificate(args: argparse.Namespace) -> None:
    response = _client(args).credentials.GetCertificateChain(pb.CredentialRef(id=args.id))
    _emit(args, response, response.pem.rstrip("\n"))


def cmd_credential_install(args: argparse.Namespace) -> None:
    credential = _client(args).credentials.InstallCertificate(pb.InstallCertificateRequest(
        id=args.id, certificate=_read_file(args.certificate, "--certificate"),
        chain=_read_file(args.chain, "--chain") if args.chain else b"",
    ))
    _emit(args, credential, f"installed the certificate on credential {credential.id} ({credential.name})")


def cmd_credential_import(args: argparse.Namespace) -> None:
    if bool(args.keystore) == bool(args.pkcs12):
        raise UsageError("mcagent credential import: error: give --keystore FILE --alias ID, or --pkcs12 FILE")
    if args.keystore and not args.alias:
        raise UsageError("mcagent credential import: error: --keystore needs --alias (see `mcagent keystore inspect`)")
    client = _client(args)
    request = pb.ImportCredentialRequest(
        alias=args.alias or "", password=_password(args, IMPORT_PASSWORD_ENV, confirm=False),
        backend=BACKENDS[args.backend] if args.backend else 0, store=args.store or "",
        principal_authority=args.principal_authority or "",
        accepted_terms_version=client.credentials.GetMachineTerms(pb.GetMachineTermsRequest()).version
        if args.accept_terms else "",
    )
    if args.keystore:
        request.keystore_xml = _read_file(args.keystore, "--keystore")
    else:
        request.pkcs12 = _read_file(args.pkcs12, "--pkcs12")
    created = client.credentials.ImportCredential(request)
    _emit(args, created, created.credential.id)


def cmd_credential_export(args: argparse.Namespace) -> None:
    response = _client(args).credentials.ExportCredential(pb.ExportCredentialRequest(
        id=args.id, format=args.format, password=_password(args, EXPORT_PASSWORD_ENV, confirm=True),
    ))
    _write_private_file(args.out, response.data)
    print(f"wrote {args.out} ({args.format}, mode 0600)")
    if response.notice:
        print(f"note: {response.notice}", file=sys.stderr)


def cmd_keystore_inspect(args: argparse.Namespace) -> None:
    response = _client(args).credentials.InspectKeystore(
        pb.InspectKeystoreRequest(keystore_xml=_read_file(args.file, "key store file"))
    )
    rows = [(e.alias, e.abn, e.name, e.serial_number, _when(e.not_before), _when(e.not_after), e.status)
            for e in response.entries]
    headers = ["ALIAS", "ABN", "NAME", "SERIAL", "NOT BEFORE", "NOT AFTER", "STATUS"]
    _emit(args, response, tabulate(rows, headers=headers))


def cmd_ca_init(args: argparse.Namespace) -> None:
    response = _client(args).ca.InitCA(pb.InitCARequest())
    _emit(args, response, response.root_pem.rstrip("\n"))


def cmd_ca_certificate(args: argparse.Namespace) -> None:
    response = _client(args).ca.GetCACertificates(pb.GetCACertificatesRequest())
    _emit(args, response, (response.issuing_pem if args.issuing else response.root_pem).rstrip("\n"))


def cmd_ca_crl(args: argparse.Namespace) -> None:
    response = _client(args).ca.GetCRL(pb.GetCRLRequest())
    _emit(args, response, response.pem.rstrip("\n"))


def cmd_serve(args: argparse.Namespace) -> None:
    from agent import log
    from agent.config import Config, ConfigError
    from agent.server.server import AgentServer, forbid_core_dumps

    log.configure(args.log_level)

    try:
        forbid_core_dumps()  # before a PIN, password or key is in memory
        config = Config.build(
            data_dir=args.data_dir,
            socket_path=args.socket,
            backend=args.keystore_backend,
            keystore_path=args.keystore,
            keystore_password_file=args.keystore_password_file,
            pkcs11_module=args.pkcs11_module,
            pkcs11_token=args.pkcs11_token,
            pkcs11_pin_file=args.pkcs11_pin_file,
            socket_mode=args.socket_mode,
            admin_uids=args.admin_uid,
            listen=args.listen,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            client_ca=args.client_ca,
            insecure_listen=args.insecure_listen,
            timezone=args.timezone,
            stores=args.store,
            crl_url=args.crl_url,
            certificate_policy=args.certificate_policy,
            crl_listen=args.crl_listen,
            max_connections=args.max_connections,
            max_connections_per_uid=args.max_connections_per_uid,
            idle_timeout=args.idle_timeout,
        )
        AgentServer(config).run_until_signalled()
    except ConfigError as exc:
        raise CommandFailed(str(exc)) from None


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> Parser:
    """The whole command tree."""
    def client_options(p: argparse.ArgumentParser, default: Any) -> None:
        p.add_argument("--socket", default=default, help=f"daemon socket (env {SOCKET_ENV})")
        p.add_argument("--address", default=default, help="HOST:PORT of the agent's mutual-TLS listener")
        p.add_argument("--tls-cert", default=default, help="client certificate (PEM) for --address")
        p.add_argument("--tls-key", default=default, help="client key (PEM) for --address")
        p.add_argument("--tls-ca", default=default, help="CA that signed the agent's certificate (PEM)")
        p.add_argument("--token-file", default=default, help=f"file holding a bearer token (else env {TOKEN_ENV})")
        p.add_argument("--json", action="store_true", default=default or False, help="machine-readable output")

    common = Parser(add_help=False)
    client_options(common, argparse.SUPPRESS)
    parser = Parser(prog="mcagent", description="Machine-credential agent for SBR software.")
    client_options(parser, None)
    groups = parser.add_subparsers(dest="group", required=True, parser_class=Parser)

    def leaf(sub: Any, name: str, func: Callable[[argparse.Namespace], None], help_text: str) -> Parser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    serve = groups.add_parser("serve", help="run the daemon in the foreground")
    serve.set_defaults(func=cmd_serve)
    serve.add_argument("--data-dir", help="data directory (default: per-user data home)/mcagent")
    serve.add_argument("--socket", default=argparse.SUPPRESS, help="Unix socket (default: <data-dir>/mcagent.sock)")
    serve.add_argument("--keystore-backend", choices=list(BACKENDS), default="file", help="default key backend")
    serve.add_argument("--keystore", help="default key store file (default: <data-dir>/keystore.mcks)")
    serve.add_argument("--store", action="append", metavar="NAME=PATH",
                       help="another key store file that clients may choose by NAME (repeatable)")
    serve.add_argument("--keystore-password-file", help="file holding the key store password "
                       "(else env MCAGENT_KEYSTORE_PASSWORD)")
    serve.add_argument("--pkcs11-module", help="PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
    serve.add_argument("--pkcs11-token", help="label of the token holding the keys")
    serve.add_argument("--pkcs11-pin-file", help="file holding the token's user PIN (else env MCAGENT_PKCS11_PIN)")
    serve.add_argument("--socket-mode", default="0600", help="Unix socket permissions, octal (default 0600)")
    serve.add_argument("--admin-uid", type=int, action="append", help="another uid that is the local administrator")
    serve.add_argument("--listen", help="HOST:PORT for TCP with mutual TLS (needs --tls-cert, --tls-key, --client-ca)")
    serve.add_argument("--tls-cert", default=argparse.SUPPRESS, help="server certificate chain (PEM)")
    serve.add_argument("--tls-key", default=argparse.SUPPRESS, help="server private key (PEM)")
    serve.add_argument("--client-ca", help="CA whose client certificates are accepted (PEM)")
    serve.add_argument("--insecure-listen", help="HOST:PORT for plain TCP without TLS: development only")
    serve.add_argument("--timezone", help="where 'today' is for notification dates (default Australia/Sydney)")
    serve.add_argument("--crl-url", help="http(s) URL of the CRL, written into every leaf the agent issues "
                       "(cRLDistributionPoints)")
    serve.add_argument("--certificate-policy", metavar="OID",
                       help="policy OID written into every leaf the agent issues (certificatePolicies)")
    serve.add_argument("--crl-listen", metavar="HOST:PORT", help="serve the CRL over plain HTTP at /crl")
    serve.add_argument("--max-connections", type=int, metavar="N",
                       help="Unix-socket connections at once, all uids together (default 1024)")
    serve.add_argument("--max-connections-per-uid", type=int, metavar="N",
                       help="Unix-socket connections at once from one uid (default 64)")
    serve.add_argument("--idle-timeout", type=int, metavar="SECONDS",
                       help="close a Unix-socket connection idle this long (default 300)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")

    business = groups.add_parser("business", help="businesses").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    p = leaf(business, "register", cmd_business_register, "register a business by ABN")
    p.add_argument("--abn", required=True, help="11 digits; spaces allowed")
    p.add_argument("--name", required=True, help="legal name")
    p.add_argument("--principal-authority", required=True, metavar="PRINCIPAL", help="its principal authority")
    p = leaf(business, "lookup", cmd_business_lookup, "a registered business's legal name, to check before acting")
    p.add_argument("--abn", required=True)

    terms = groups.add_parser("terms", help="machine terms of use").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    leaf(terms, "show", cmd_terms_show, "print the current machine terms of use")

    credential = groups.add_parser("credential", help="machine credentials").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    p = leaf(credential, "create", cmd_credential_create, "create a machine credential")
    p.add_argument("--abn", required=True)
    p.add_argument("--name", required=True, help="credential name (the certificate's CN)")
    p.add_argument("--key-type", choices=list(KEY_TYPES), help="default rsa-2048")
    p.add_argument("--backend", choices=list(BACKENDS), help="default: the agent's --keystore-backend")
    p.add_argument("--store", metavar="NAME", help="file backend: which of the agent's configured key store files "
                   "(default: its default one)")
    p.add_argument("--accept-terms", action="store_true", help="accept the current machine terms of use")
    p = leaf(credential, "list", cmd_credential_list, "list credentials, a page at a time")
    p.add_argument("--abn", help="only this business")
    p.add_argument("--limit", type=int, default=100, help="credentials per page, at most 1000")
    p.add_argument("--page-token", help="continue where the previous page stopped")
    p = leaf(credential, "show", cmd_credential_show, "show one credential")
    p.add_argument("id")
    p = leaf(credential, "public-key", cmd_credential_public_key, "print the credential's public key (PEM)")
    p.add_argument("id")
    p = leaf(credential, "sign", cmd_credential_sign, "sign a file (raw signature to --out or stdout)")
    p.add_argument("id")
    p.add_argument("--in", dest="input", required=True, help="file to sign ('-' for stdin)")
    p.add_argument("--out", help="write the signature here (default: stdout)")
    p.add_argument("--algorithm", choices=list(ALGORITHMS), help="default: rsa-pkcs1-sha256 or ecdsa-sha256")
    p.add_argument("--digest", action="store_true", help="the input is already a digest")
    p.add_argument("--permission", help="the permission the signature is used for (refused if not granted)")
    p = leaf(credential, "revoke", cmd_credential_revoke, "revoke a credential for good (destroys its key)")
    p.add_argument("id")
    p.add_argument("--yes", action="store_true", help="confirm: revoking cannot be undone")
    p = leaf(credential, "claim", cmd_credential_claim, "claim an unassigned credential (an MCA of its business)")
    p.add_argument("id")
    p = leaf(credential, "permissions", cmd_credential_permissions, "show or amend a credential's permissions")
    p.add_argument("id")
    p.add_argument("--set", metavar="P1,P2,...", help="grant exactly these (PA or AA, after first use)")

    p = leaf(credential, "csr", cmd_credential_csr, "a PKCS#10 request signed by the credential's key")
    p.add_argument("id")
    p = leaf(credential, "certificate", cmd_credential_certificate, "the certificate chain, leaf first (PEM)")
    p.add_argument("id")
    p = leaf(credential, "install", cmd_credential_install, "install a certificate issued elsewhere")
    p.add_argument("id")
    p.add_argument("--certificate", required=True, metavar="FILE", help="PEM or DER")
    p.add_argument("--chain", metavar="FILE", help="the issuers, PEM")
    p = leaf(credential, "import", cmd_credential_import, "install a credential from keystore.xml or PKCS#12")
    p.add_argument("--keystore", metavar="FILE", help="a RAM key store file (keystore.xml)")
    p.add_argument("--alias", metavar="ID", help="which credential in it (ABRD:<ABN>_<name>)")
    p.add_argument("--pkcs12", metavar="FILE", help="a PKCS#12 file instead")
    p.add_argument("--backend", choices=list(BACKENDS), help="where the key goes (default: the agent's)")
    p.add_argument("--store", metavar="NAME", help="file backend: which of the agent's configured key store files")
    p.add_argument("--password-file", help=f"file holding the password (else env {IMPORT_PASSWORD_ENV}, else prompt)")
    p.add_argument("--principal-authority", metavar="PRINCIPAL", help="for a business not yet registered")
    p.add_argument("--accept-terms", action="store_true", help="accept the current machine terms of use")
    p = leaf(credential, "export", cmd_credential_export, "write a file-backed credential to keystore.xml or PKCS#12")
    p.add_argument("id")
    p.add_argument("--format", required=True, choices=["keystore-xml", "pkcs12"])
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--password-file", help=f"file holding the password (else env {EXPORT_PASSWORD_ENV}, else prompt)")

    keystore = groups.add_parser("keystore", help="RAM key store files").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    p = leaf(keystore, "inspect", cmd_keystore_inspect, "list the credentials in a keystore.xml (no password)")
    p.add_argument("file")

    ca = groups.add_parser("ca", help="the agent's issuing CA").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    leaf(ca, "init", cmd_ca_init, "create the CA now (it is also created on first start)")
    p = leaf(ca, "certificate", cmd_ca_certificate, "the root CA certificate (PEM)")
    p.add_argument("--issuing", action="store_true", help="the issuing CA certificate instead")
    leaf(ca, "crl", cmd_ca_crl, "a fresh CRL of the issuing CA (PEM)")

    principal = groups.add_parser("principal", help="principals (local administrator)").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    p = leaf(principal, "create", cmd_principal_create, "create a principal; prints its bearer token once")
    p.add_argument("name")
    p.add_argument("--uid", type=int, help="Unix uid that identifies it on the socket")
    p.add_argument("--certificate-subject", metavar="DN", help="TLS client certificate subject (RFC 4514)")
    leaf(principal, "list", cmd_principal_list, "list principals")
    leaf(groups, "whoami", cmd_whoami, "who the agent takes you for")

    role = groups.add_parser("role", help="roles in a business").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    for verb, func, text in (("grant", cmd_role_grant, "grant a role"), ("remove", cmd_role_remove, "remove a role")):
        p = leaf(role, verb, func, text)
        p.add_argument("--abn", required=True)
        p.add_argument("--principal", required=True)
        p.add_argument("--role", required=True, choices=GRANTABLE_ROLES)
    p = leaf(role, "list", cmd_role_list, "who holds which role in a business")
    p.add_argument("--abn", required=True)

    notification = groups.add_parser("notification", help="cloud software notifications").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )

    def notification_fields(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument("--software-id", action="append", required=required, metavar="ID",
                       help="10-digit software ID from the provider (repeat for more)")
        p.add_argument("--start", required=required, metavar="YYYY-MM-DD", help="not before today")
        p.add_argument("--end", metavar="YYYY-MM-DD", help="default: no end date")

    p = leaf(notification, "add", cmd_notification_add, "notify agencies of a provider's software (PA or AA)")
    p.add_argument("--abn", required=True, help="your business")
    p.add_argument("--dsp-abn", required=True, help="the digital service provider")
    notification_fields(p, True)
    p.add_argument("--agency", action="append", required=True, help="agency to notify, e.g. osir")
    p.add_argument("--accept-declaration", action="store_true")
    p = leaf(notification, "request", cmd_notification_request, "as a provider, ask a client to notify")
    p.add_argument("--dsp-abn", required=True, help="your (the provider's) ABN")
    p.add_argument("--abn", required=True, help="the client business")
    notification_fields(p, True)
    p.add_argument("--agency", action="append", required=True)
    p = leaf(notification, "accept", cmd_notification_accept, "accept a pending request (the client's PA or AA)")
    p.add_argument("id")
    p.add_argument("--accept-declaration", action="store_true")
    p = leaf(notification, "edit", cmd_notification_edit, "change software IDs and dates (PA or AA)")
    p.add_argument("id")
    notification_fields(p, False)
    p.add_argument("--no-end", action="store_true", help="remove the end date")
    p.add_argument("--accept-declaration", action="store_true")
    p = leaf(notification, "remove", cmd_notification_remove, "end a notification; it stays in the history")
    p.add_argument("id")
    p.add_argument("--yes", action="store_true")
    p = leaf(notification, "show", cmd_notification_show, "one notification's details")
    p.add_argument("id")
    p = leaf(notification, "list", cmd_notification_list, "notifications, by business and status")
    p.add_argument("--abn")
    p.add_argument("--status", help="pending, active, removed or ended")

    audit = groups.add_parser("audit", help="the audit log").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    p = leaf(audit, "list", cmd_audit_list, "page through the audit log, oldest first")
    p.add_argument("--abn", help="one business (required unless you are the local administrator)")
    p.add_argument("--limit", type=int, default=100, help="entries per page, at most 1000")
    p.add_argument("--after", type=int, default=0, metavar="CURSOR", help="continue after this entry")
    p = leaf(audit, "verify", cmd_audit_verify, "check the audit log's hash chain and signed checkpoints")
    p.add_argument("--expect-head", metavar="SEQ:HASH", help="an entry recorded earlier that must still be there")
    return parser


def _describe_rpc_error(error: grpc.RpcError, args: argparse.Namespace) -> str:
    code, details = error.code(), error.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "No such file" in details):
        target = args.address or f"unix:{args.socket or os.environ.get(SOCKET_ENV) or default_socket_path()}"
        return f"cannot reach the agent at {target}: is `mcagent serve` running? ({details})"
    return f"{code.name}: {details}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
        return 0
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except CommandFailed as exc:
        print(f"mcagent: error: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"mcagent: error: {_describe_rpc_error(exc, args)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
