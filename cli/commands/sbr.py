"""SBR commands (issue 14): `mcagent sts request`, `mcagent xml sign`, and the credential verbs
`renew` and `local`; `credential list --expiring-within` lives with `list`."""

from __future__ import annotations

import argparse
import re
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf
from mcagent.cli.enums import KEY_TYPES
from mcagent.cli.errors import UsageError
from mcagent.cli.files import read_input, write_private_file


def days(text: str) -> int:
    """`90d` or `90`: a number of days (argparse type)."""
    match = re.fullmatch(r"([0-9]{1,4})d?", text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days such as 90d")
    return int(match.group(1))


def _write(ctx: Context, data: bytes, response: Any) -> None:
    if ctx.args.out:
        write_private_file(ctx.args.out, data)
    if ctx.out.json:
        ctx.out.document({"credential_id": response.credential_id, "out": ctx.args.out or None,
                          "document": None if ctx.args.out else data.decode("utf-8")})
    elif not ctx.args.out:
        ctx.out.binary(data)


def sts_request(ctx: Context) -> None:
    args = ctx.args
    response = ctx.client.credentials.SignStsRequest(pb.SignStsRequestRequest(
        credential_id=args.credential, applies_to=args.applies_to, sts_endpoint=args.sts or "",
        lifetime_minutes=args.lifetime or 0, act_as_abn=args.act_as or "", claims=args.claim or []))
    _write(ctx, response.envelope, response)


def xml_sign(ctx: Context) -> None:
    args = ctx.args
    if not args.id:
        raise UsageError("mcagent xml sign: error: name at least one element to sign with --id")
    response = ctx.client.credentials.SignXml(pb.SignXmlRequest(
        credential_id=args.credential, document=read_input(args.input), ids=args.id))
    _write(ctx, response.document, response)


def renew(ctx: Context) -> None:
    from mcagent.cli.commands.credential import accepted_terms  # credential.py imports this module

    args = ctx.args
    response = ctx.client.credentials.RenewCredential(pb.RenewCredentialRequest(
        credential=args.credential, issue=args.issue, accepted_terms_version=accepted_terms(ctx),
        key_type=KEY_TYPES[args.key_type] if args.key_type else 0))
    if args.csr_out and response.csr_pem:
        write_private_file(args.csr_out, response.csr_pem.encode("ascii"))
    if ctx.out.json:
        ctx.out.document(output.document(response))
        return
    ctx.out.line(response.credential.id)
    if response.alias_moved:
        ctx.out.note(f"{response.alias} now names {response.credential.id}")
    else:
        ctx.out.note(f"{response.alias} still names the old credential; it moves to {response.credential.id} when "
                     f"its certificate is installed (`mcagent credential install {response.credential.id} "
                     "--certificate FILE`)")
        if not args.csr_out:
            ctx.out.line(response.csr_pem.rstrip("\n"))


def local(ctx: Context) -> None:
    if ctx.args.local == ctx.args.cloud:
        raise UsageError("mcagent credential local: error: give --local or --cloud")
    credential = ctx.client.credentials.SetCredentialLocal(pb.SetCredentialLocalRequest(
        id=ctx.args.credential, local=ctx.args.local))
    ctx.out.result(credential, f"credential {credential.id} is {'local (no ActAs)' if credential.local else 'cloud'}")


def register_credential_verbs(verbs: Any, common: argparse.ArgumentParser) -> None:
    """`credential renew` and `credential local`."""
    p = leaf(verbs, "renew", renew, "a new key for the credential an alias names; the alias moves once the new "
             "certificate is installed (or at once with --issue)", common)
    p.add_argument("credential", help="ABRD:<ABN>_<name> (or an id)")
    p.add_argument("--issue", action="store_true", help="have the agent's CA certify the new key now")
    p.add_argument("--csr-out", metavar="FILE", help="write the CSR here (default: printed)")
    p.add_argument("--key-type", choices=list(KEY_TYPES), help="default: the old credential's")
    p.add_argument("--accept-terms", action="store_true", help="accept the current machine terms of use")
    p = leaf(verbs, "local", local, "flag a credential local (never used with ActAs) or cloud", common)
    p.add_argument("credential", help="id or alias")
    p.add_argument("--local", action="store_true")
    p.add_argument("--cloud", action="store_true")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "sts", "requests for the ATO's security token service, signed inside the agent")
    p = leaf(verbs, "request", sts_request, "a signed WS-Trust 1.3 Issue request (SOAP 1.2), ready to send", common)
    p.add_argument("credential", help="id or alias ABRD:<ABN>_<name>")
    p.add_argument("--applies-to", required=True, metavar="URI", help="the service the token is for")
    p.add_argument("--sts", metavar="URI", help="the STS endpoint (default: the ATO's)")
    p.add_argument("--lifetime", type=int, metavar="MINUTES", help="1 to 60 (default 20)")
    p.add_argument("--act-as", metavar="ABN", help="the client business (needs its active notification)")
    p.add_argument("--claim", action="append", metavar="URI", help="a claim type (repeatable; default: "
                   "credentialtype and abn)")
    p.add_argument("--out", help="write the envelope here (default: stdout)")
    verbs = group(groups, "xml", "XML documents signed inside the agent")
    p = leaf(verbs, "sign", xml_sign, "add an enveloped XML signature over the elements with these Ids", common)
    p.add_argument("credential", help="id or alias ABRD:<ABN>_<name>")
    p.add_argument("--in", dest="input", required=True, help="the document ('-' for stdin; at most 1 MiB)")
    p.add_argument("--id", action="append", help="an Id (or wsu:Id) to sign (repeatable)")
    p.add_argument("--out", help="write the signed document here (default: stdout)")
