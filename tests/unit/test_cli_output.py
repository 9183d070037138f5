"""cli/output.py: one JSON shape per message, whichever command prints it; text without --json."""

from __future__ import annotations

import argparse
import io
import json
from types import SimpleNamespace

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, credential
from mcagent.cli.output import Output


def _credential() -> pb.Credential:
    created = Timestamp()
    created.FromSeconds(1_700_000_000)
    c = pb.Credential(id="c-1", abn="51824753556", name="server-1", status="active", display_status="Active",
                      holder="bob", key_type=pb.KEY_TYPE_EC_P256, backend=pb.BACKEND_FILE,
                      key_uri="file:///k#c-1", created_at=created, created_by="bob", terms_version="1")
    c.permissions.permissions.append("osir.usi")
    return c


CREDENTIAL = _credential()


def _fake_client(**calls) -> SimpleNamespace:
    return SimpleNamespace(credentials=SimpleNamespace(**calls))


def _run(handler, *, json_mode: bool, reply: dict | None = None) -> tuple[str, str]:
    """Run a command's handler against a fake client; returns (stdout, stderr)."""
    client = _fake_client(
        GetCredential=lambda request: CREDENTIAL,
        RevokeCredential=lambda request: CREDENTIAL,
        ClaimCredential=lambda request: CREDENTIAL,
        InstallCertificate=lambda request: CREDENTIAL,
        CreateCredential=lambda request: pb.CreateCredentialResponse(credential=CREDENTIAL, **(reply or {})),
        GetMachineTerms=lambda request: pb.MachineTerms(version="1"),
    )
    args = argparse.Namespace(id="c-1", yes=True, abn="51824753556", name="server-1", key_type=None, backend=None,
                              store=None, accept_terms=True, certificate="/dev/null", chain=None)
    stdout, stderr = io.StringIO(), io.StringIO()
    handler(Context(args=args, out=Output(json=json_mode, stdout=stdout, stderr=stderr), connect=lambda: client))
    return stdout.getvalue(), stderr.getvalue()


@pytest.mark.parametrize("handler", [credential.show, credential.revoke, credential.claim, credential.install,
                                     credential.create])
def test_a_credential_has_one_json_shape_whichever_command_prints_it(handler):
    printed, _ = _run(handler, json_mode=True)
    renewal = {"notice": None, "replaces_id": None} if handler is credential.create else {}
    assert json.loads(printed) == {**output.document(CREDENTIAL), **renewal}
    assert json.loads(printed)["key_uri"] == "file:///k#c-1"
    assert json.loads(printed)["permissions"] == ["osir.usi"]


def test_a_listed_credential_has_the_shape_of_a_shown_one():
    listing = output.document(pb.ListCredentialsResponse(credentials=[CREDENTIAL]))
    assert listing["credentials"] == [output.document(CREDENTIAL)]


def test_a_renewal_adds_its_notice_beside_the_credential_fields():
    reply = {"notice": "revoke c-0 if it has not expired", "replaces_id": "c-0"}
    printed, stderr = _run(credential.create, json_mode=True, reply=reply)
    assert json.loads(printed) == {**output.document(CREDENTIAL), **reply}
    assert stderr == ""
    printed, stderr = _run(credential.create, json_mode=False, reply=reply)
    assert printed == "c-1\n" and stderr == f"note: {reply['notice']}\n"


def test_without_json_a_shown_credential_is_text():
    printed, _ = _run(credential.show, json_mode=False)
    assert printed == output.credential_text(CREDENTIAL) + "\n"
    assert "key type:       ec-p256" in printed and "permissions:    osir.usi" in printed
    with pytest.raises(json.JSONDecodeError):
        json.loads(printed)
    printed, _ = _run(credential.revoke, json_mode=False)
    assert printed == "revoked credential c-1 (server-1)\n"


def test_a_signature_document_spells_the_algorithm_as_its_flag_does():
    response = pb.SignResponse(signature=b"\x01\x02", algorithm=pb.SIGNATURE_ALGORITHM_ECDSA_SHA256,
                               certificate_chain=[b"leaf", b"root"])
    assert output.document(response) == {"signature": "AQI=", "algorithm": "ecdsa-sha256",
                                         "certificate_chain": ["bGVhZg==", "cm9vdA=="]}


def test_an_export_document_never_carries_the_file():
    response = pb.ExportCredentialResponse(data=b"secret key file", notice="integrityValue is empty")
    assert output.exported_document(response, "out.xml", "keystore-xml") == {
        "out": "out.xml", "format": "keystore-xml", "notice": "integrityValue is empty"}
    assert "data" not in output.document(response)
