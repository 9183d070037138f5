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

from agent.api.defaults import default_socket_path
from agent.api.v1 import agent_pb2 as pb
from agent.api.v1 import agent_pb2_grpc as pb_grpc

SOCKET_ENV = "MCAGENT_SOCKET"


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


def _spelling(table: dict[str, int], number: int) -> str:
    return next((name for name, value in table.items() if value == number), "unspecified")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


# -- client plumbing ------------------------------------------------------------------------


class Client:
    """Stubs on a channel to the daemon's Unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.target = f"unix:{socket_path}"
        self.channel = grpc.insecure_channel(self.target)
        self.businesses = pb_grpc.BusinessServiceStub(self.channel)
        self.credentials = pb_grpc.CredentialServiceStub(self.channel)


def _client(args: argparse.Namespace) -> Client:
    return Client(args.socket or os.environ.get(SOCKET_ENV) or default_socket_path())


def _emit(args: argparse.Namespace, message: Any, text: str) -> None:
    if args.json:
        print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2))
    else:
        print(text)


def _credential_lines(c: pb.Credential) -> str:
    rows = [
        ("id", c.id),
        ("abn", c.abn),
        ("name", c.name),
        ("status", c.status),
        ("key type", _spelling(KEY_TYPES, c.key_type)),
        ("backend", _spelling(BACKENDS, c.backend)),
        ("key uri", c.key_uri),
        ("created", c.created_at.ToDatetime().isoformat(timespec="seconds") + "Z"),
        ("created by", c.created_by),
        ("terms accepted", c.terms_version),
    ]
    return "\n".join(f"{label + ':':16}{value}" for label, value in rows)


# -- commands -------------------------------------------------------------------------------


def cmd_business_register(args: argparse.Namespace) -> None:
    business = _client(args).businesses.RegisterBusiness(pb.RegisterBusinessRequest(abn=args.abn, name=args.name))
    _emit(args, business, f"registered business {business.abn} ({business.name})")


def cmd_business_show(args: argparse.Namespace) -> None:
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
    keystore = os.path.abspath(args.keystore) if args.keystore else ""
    credential = client.credentials.CreateCredential(
        pb.CreateCredentialRequest(
            abn=args.abn,
            name=args.name,
            key_type=KEY_TYPES[args.key_type] if args.key_type else 0,
            backend=BACKENDS[args.backend] if args.backend else 0,
            keystore_path=keystore,
            accepted_terms_version=accepted,
        )
    )
    _emit(args, credential, credential.id)


def cmd_credential_list(args: argparse.Namespace) -> None:
    from tabulate import tabulate

    response = _client(args).credentials.ListCredentials(pb.ListCredentialsRequest(abn=args.abn or ""))
    rows = [
        (c.id, c.abn, c.name, c.status, _spelling(KEY_TYPES, c.key_type), _spelling(BACKENDS, c.backend))
        for c in response.credentials
    ]
    _emit(args, response, tabulate(rows, headers=["ID", "ABN", "NAME", "STATUS", "KEY TYPE", "BACKEND"]))


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
    request = pb.SignRequest(credential_id=args.id, algorithm=ALGORITHMS[args.algorithm] if args.algorithm else 0)
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


def cmd_serve(args: argparse.Namespace) -> None:
    import logging

    from agent.config import Config
    from agent.server.server import AgentServer

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from agent.config import ConfigError

    try:
        config = Config.build(
            data_dir=args.data_dir,
            socket_path=args.socket,
            backend=args.keystore_backend,
            keystore_path=args.keystore,
            keystore_password_file=args.keystore_password_file,
            pkcs11_module=args.pkcs11_module,
            pkcs11_token=args.pkcs11_token,
            pkcs11_pin_file=args.pkcs11_pin_file,
        )
        AgentServer(config).run_until_signalled()
    except ConfigError as exc:
        raise CommandFailed(str(exc)) from None


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> Parser:
    """The whole command tree."""
    common = Parser(add_help=False)
    common.add_argument("--socket", default=argparse.SUPPRESS, help=f"daemon socket (env {SOCKET_ENV})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")

    parser = Parser(prog="mcagent", description="Machine-credential agent for SBR software.")
    parser.add_argument("--socket", default=None, help=f"daemon socket (env {SOCKET_ENV})")
    parser.add_argument("--json", action="store_true", default=False, help="machine-readable output")
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
    serve.add_argument("--keystore-password-file", help="file holding the key store password "
                       "(else env MCAGENT_KEYSTORE_PASSWORD)")
    serve.add_argument("--pkcs11-module", help="PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
    serve.add_argument("--pkcs11-token", help="label of the token holding the keys")
    serve.add_argument("--pkcs11-pin-file", help="file holding the token's user PIN (else env MCAGENT_PKCS11_PIN)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")

    business = groups.add_parser("business", help="businesses").add_subparsers(
        dest="verb", required=True, parser_class=Parser
    )
    p = leaf(business, "register", cmd_business_register, "register a business by ABN")
    p.add_argument("--abn", required=True, help="11 digits; spaces allowed")
    p.add_argument("--name", required=True, help="legal name")
    p = leaf(business, "show", cmd_business_show, "show a registered business")
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
    p.add_argument("--keystore", help="key store file for the file backend (default: the agent's)")
    p.add_argument("--accept-terms", action="store_true", help="accept the current machine terms of use")
    p = leaf(credential, "list", cmd_credential_list, "list credentials")
    p.add_argument("--abn", help="only this business")
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
    return parser


def _describe_rpc_error(error: grpc.RpcError, args: argparse.Namespace) -> str:
    code, details = error.code(), error.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "No such file" in details):
        target = args.socket or os.environ.get(SOCKET_ENV) or default_socket_path()
        return f"cannot reach the agent at unix:{target}: is `mcagent serve` running?"
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
