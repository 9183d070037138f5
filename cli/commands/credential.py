"""`mcagent credential`: a credential's life (create, list, show, sign, revoke, claim,
permissions), then its certificate and key files (csr, certificate, install, import, export)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf, sbr
from mcagent.cli.enums import ALGORITHMS, BACKENDS, KEY_TYPES
from mcagent.cli.errors import CommandFailed, UsageError
from mcagent.cli.files import password, read_file, read_input, write_private_file

IMPORT_PASSWORD_ENV = "MCAGENT_IMPORT_PASSWORD"
EXPORT_PASSWORD_ENV = "MCAGENT_EXPORT_PASSWORD"


def accepted_terms(ctx: Context) -> str:
    """With --accept-terms, the version of the machine terms in force now; else none."""
    if not ctx.args.accept_terms:
        return ""
    return ctx.client.credentials.GetMachineTerms(pb.GetMachineTermsRequest()).version


def create(ctx: Context) -> None:
    args = ctx.args
    accepted = accepted_terms(ctx)
    created = ctx.client.credentials.CreateCredential(
        pb.CreateCredentialRequest(
            abn=args.abn,
            name=args.name,
            key_type=KEY_TYPES[args.key_type] if args.key_type else 0,
            backend=BACKENDS[args.backend] if args.backend else 0,
            store=args.store or "",
            accepted_terms_version=accepted,
        )
    )
    _print_created(ctx, created)


def _print_created(ctx: Context, created: pb.CreateCredentialResponse) -> None:
    """Create and import answer alike: the id (JSON: the credential, with any renewal notice)."""
    if ctx.out.json:
        ctx.out.document(output.created_document(created))
        return
    ctx.out.line(created.credential.id)
    if created.notice:
        ctx.out.note(created.notice)


def list_credentials(ctx: Context) -> None:
    args = ctx.args
    response = ctx.client.credentials.ListCredentials(
        pb.ListCredentialsRequest(abn=args.abn or "", page_size=args.limit, page_token=args.page_token or "",
                                  expiring_within_days=args.expiring_within or 0)
    )
    ctx.out.result(response, output.credentials_table(response))


def show(ctx: Context) -> None:
    credential = ctx.client.credentials.GetCredential(pb.GetCredentialRequest(id=ctx.args.id))
    ctx.out.result(credential, output.credential_text(credential))


def public_key(ctx: Context) -> None:
    key = ctx.client.credentials.GetPublicKey(pb.GetPublicKeyRequest(id=ctx.args.id))
    ctx.out.result(key, output.pem(key.pem))


def sign(ctx: Context) -> None:
    args = ctx.args
    payload = read_input(args.input)
    request = pb.SignRequest(credential_id=args.id, algorithm=ALGORITHMS[args.algorithm] if args.algorithm else 0,
                             permission=args.permission or "", include_chain=bool(ctx.out.json))
    if args.digest:
        request.digest = payload
    else:
        request.data = payload
    if args.out:  # before the sign: a signature made and audited must not be lost to an unwritable path
        directory = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise CommandFailed(f"cannot write {args.out}: its directory {directory} does not exist or is not "
                                "writable; nothing was signed")
    response = ctx.client.credentials.Sign(request)
    if args.out:
        write_private_file(args.out, response.signature)
    if ctx.out.json:
        ctx.out.document(output.document(response))
    elif not args.out:
        ctx.out.binary(response.signature)


def revoke(ctx: Context) -> None:
    credential = ctx.client.credentials.RevokeCredential(pb.RevokeCredentialRequest(id=ctx.args.id,
                                                                                    confirm=ctx.args.yes))
    ctx.out.result(credential, f"revoked credential {credential.id} ({credential.name})")


def claim(ctx: Context) -> None:
    credential = ctx.client.credentials.ClaimCredential(pb.ClaimCredentialRequest(id=ctx.args.id))
    ctx.out.result(credential, f"claimed credential {credential.id} ({credential.name}); status {credential.status}")


def permissions(ctx: Context) -> None:
    request = pb.PermissionsRequest(id=ctx.args.id)
    if ctx.args.set is not None:
        request.set.permissions.extend(p.strip() for p in ctx.args.set.split(",") if p.strip())
    response = ctx.client.credentials.Permissions(request)
    ctx.out.result(response, output.permissions_text(response))


# -- certificates and key files -----------------------------------------------------------


def csr(ctx: Context) -> None:
    response = ctx.client.credentials.GetCsr(pb.CredentialRef(id=ctx.args.id))
    ctx.out.result(response, output.pem(response.pem))


def certificate(ctx: Context) -> None:
    response = ctx.client.credentials.GetCertificateChain(pb.CredentialRef(id=ctx.args.id))
    ctx.out.result(response, output.pem(response.pem))


def install(ctx: Context) -> None:
    args = ctx.args
    credential = ctx.client.credentials.InstallCertificate(pb.InstallCertificateRequest(
        id=args.id, certificate=read_file(args.certificate, "--certificate"),
        chain=read_file(args.chain, "--chain") if args.chain else b"",
    ))
    ctx.out.result(credential, f"installed the certificate on credential {credential.id} ({credential.name})")


def import_credential(ctx: Context) -> None:
    args = ctx.args
    if bool(args.keystore) == bool(args.pkcs12):
        raise UsageError("mcagent credential import: error: give --keystore FILE --alias ID, or --pkcs12 FILE")
    if args.keystore and not args.alias:
        raise UsageError("mcagent credential import: error: --keystore needs --alias (see `mcagent keystore inspect`)")
    client = ctx.client
    request = pb.ImportCredentialRequest(
        alias=args.alias or "", password=password(args.password_file, IMPORT_PASSWORD_ENV, confirm=False),
        backend=BACKENDS[args.backend] if args.backend else 0, store=args.store or "",
        principal_authority=args.principal_authority or "",
        accepted_terms_version=accepted_terms(ctx),
    )
    if args.keystore:
        request.keystore_xml = read_file(args.keystore, "--keystore")
    else:
        request.pkcs12 = read_file(args.pkcs12, "--pkcs12")
    created = client.credentials.ImportCredential(request)
    _print_created(ctx, created)


def export(ctx: Context) -> None:
    args = ctx.args
    response = ctx.client.credentials.ExportCredential(pb.ExportCredentialRequest(
        id=args.id, format=args.format, password=password(args.password_file, EXPORT_PASSWORD_ENV, confirm=True),
    ))
    write_private_file(args.out, response.data)
    if ctx.out.json:
        ctx.out.document(output.exported_document(response, args.out, args.format))
        return
    ctx.out.line(f"wrote {args.out} ({args.format}, mode 0600)")
    if response.notice:
        ctx.out.note(response.notice)


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "credential", "machine credentials")
    p = leaf(verbs, "create", create, "create a machine credential", common)
    p.add_argument("--abn", required=True)
    p.add_argument("--name", required=True, help="credential name (the certificate's CN)")
    p.add_argument("--key-type", choices=list(KEY_TYPES), help="default rsa-2048")
    p.add_argument("--backend", choices=list(BACKENDS), help="default: the agent's --keystore-backend")
    p.add_argument("--store", metavar="NAME", help="file backend: which of the agent's configured key store files "
                   "(default: its default one)")
    p.add_argument("--accept-terms", action="store_true", help="accept the current machine terms of use")
    p = leaf(verbs, "list", list_credentials, "list credentials, a page at a time", common)
    p.add_argument("--abn", help="only this business")
    p.add_argument("--limit", type=int, default=100, help="credentials per page, at most 1000")
    p.add_argument("--page-token", help="continue where the previous page stopped")
    p.add_argument("--expiring-within", type=sbr.days, metavar="DAYS",
                   help="only live credentials whose certificate expires within DAYS (e.g. 90d), soonest first")
    p = leaf(verbs, "show", show, "show one credential", common)
    p.add_argument("id")
    p = leaf(verbs, "public-key", public_key, "print the credential's public key (PEM)", common)
    p.add_argument("id")
    p = leaf(verbs, "sign", sign, "sign a file (raw signature to --out or stdout)", common)
    p.add_argument("id")
    p.add_argument("--in", dest="input", required=True, help="file to sign ('-' for stdin)")
    p.add_argument("--out", help="write the signature here (default: stdout)")
    p.add_argument("--algorithm", choices=list(ALGORITHMS), help="default: rsa-pkcs1-sha256 or ecdsa-sha256")
    p.add_argument("--digest", action="store_true", help="the input is already a digest")
    p.add_argument("--permission", help="the permission the signature is used for (refused if not granted)")
    p = leaf(verbs, "revoke", revoke, "revoke a credential for good (destroys its key)", common)
    p.add_argument("id")
    p.add_argument("--yes", action="store_true", help="confirm: revoking cannot be undone")
    p = leaf(verbs, "claim", claim, "claim an unassigned credential (an MCA of its business)", common)
    p.add_argument("id")
    p = leaf(verbs, "permissions", permissions, "show or amend a credential's permissions", common)
    p.add_argument("id")
    p.add_argument("--set", metavar="P1,P2,...", help="grant exactly these (PA or AA, after first use)")

    p = leaf(verbs, "csr", csr, "a PKCS#10 request signed by the credential's key", common)
    p.add_argument("id")
    p = leaf(verbs, "certificate", certificate, "the certificate chain, leaf first (PEM)", common)
    p.add_argument("id")
    p = leaf(verbs, "install", install, "install a certificate issued elsewhere", common)
    p.add_argument("id")
    p.add_argument("--certificate", required=True, metavar="FILE", help="PEM or DER")
    p.add_argument("--chain", metavar="FILE", help="the issuers, PEM")
    p = leaf(verbs, "import", import_credential, "install a credential from keystore.xml or PKCS#12", common)
    p.add_argument("--keystore", metavar="FILE", help="a RAM key store file (keystore.xml)")
    p.add_argument("--alias", metavar="ID", help="which credential in it (ABRD:<ABN>_<name>)")
    p.add_argument("--pkcs12", metavar="FILE", help="a PKCS#12 file instead")
    p.add_argument("--backend", choices=list(BACKENDS), help="where the key goes (default: the agent's)")
    p.add_argument("--store", metavar="NAME", help="file backend: which of the agent's configured key store files")
    p.add_argument("--password-file", help=f"file holding the password (else env {IMPORT_PASSWORD_ENV}, else prompt)")
    p.add_argument("--principal-authority", metavar="PRINCIPAL", help="for a business not yet registered")
    p.add_argument("--accept-terms", action="store_true", help="accept the current machine terms of use")
    p = leaf(verbs, "export", export, "write a file-backed credential to keystore.xml or PKCS#12", common)
    p.add_argument("id")
    p.add_argument("--format", required=True, choices=["keystore-xml", "pkcs12"])
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--password-file", help=f"file holding the password (else env {EXPORT_PASSWORD_ENV}, else prompt)")
    sbr.register_credential_verbs(verbs, common)  # renew, local (SBR)
