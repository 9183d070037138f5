"""The attacks of issue 9, each performed against a real daemon, asserting the safe outcome."""

from __future__ import annotations

import json
import os

import grpc
import pytest

from agent.api.v1 import agent_pb2 as pb
from agent.api.v1 import agent_pb2_grpc as pb_grpc
from tests.e2e.conftest import Daemon

ABN = "51824753556"
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def _stub(daemon: Daemon, service=pb_grpc.CredentialServiceStub):
    channel = grpc.insecure_channel(f"unix:{daemon.socket}")
    metadata = (("authorization", f"Bearer {daemon.token}"),) if daemon.token else ()
    return channel, service(channel), metadata


def _audit(daemon: Daemon) -> list[dict]:
    entries, after = [], 0
    while True:
        page = json.loads(daemon.as_principal(None).ok("audit", "list", "--limit", "1000", "--after", str(after),
                                                       "--json"))
        entries += page.get("entries", [])
        after = int(page.get("next_after", 0))
        if not after:
            return entries


@pytest.fixture
def pa(file_daemon):
    return file_daemon.new_business(ABN, "pa")


# -- a client never chooses a server path -------------------------------------------------------


@pytest.mark.parametrize("chosen", ["{tmp}/planted.mcks", "{data}/mcagent.db", "/etc/shadow", "../escape", "x" * 300])
def test_create_with_a_client_chosen_path_is_refused_and_opens_nothing(pa, tmp_path, chosen):
    chosen = chosen.format(tmp=tmp_path, data=pa.data_dir)
    before = (sorted(os.listdir(pa.data_dir)), (pa.data_dir / "keystore.mcks").read_bytes())
    channel, stub, metadata = _stub(pa)
    with channel, pytest.raises(grpc.RpcError) as refused:
        stub.CreateCredential(pb.CreateCredentialRequest(
            abn=ABN, name="evil", backend=pb.BACKEND_FILE, store=chosen,
            accepted_terms_version=stub.GetMachineTerms(pb.GetMachineTermsRequest(), metadata=metadata).version,
        ), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "--store NAME=PATH" in refused.value.details()
    assert chosen not in refused.value.details()
    assert not (tmp_path / "planted.mcks").exists()
    assert (sorted(os.listdir(pa.data_dir)), (pa.data_dir / "keystore.mcks").read_bytes()) == before
    assert json.loads(pa.ok("credential", "list", "--json")).get("credentials", []) == []


def test_import_with_a_client_chosen_path_is_refused(pa, tmp_path):
    xml = open(os.path.join(FIXTURES, "two-abns.keystore.xml"), "rb").read()
    channel, stub, metadata = _stub(pa)
    with channel, pytest.raises(grpc.RpcError) as refused:
        stub.ImportCredential(pb.ImportCredentialRequest(
            keystore_xml=xml, alias="whatever", password="x", backend=pb.BACKEND_FILE,
            store=str(tmp_path / "planted.mcks")), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not (tmp_path / "planted.mcks").exists()


def test_the_cli_chooses_a_configured_store_by_name_only(pa):
    result = pa.cli("credential", "create", "--abn", ABN, "--name", "x", "--store", "/tmp", "--accept-terms")
    assert result.returncode != 0
    assert "no key store file is configured under that name (configured: default)" in result.stderr.decode()


def test_the_daemon_refuses_a_planted_database_link_and_a_shared_data_dir(tmp_path):
    import subprocess

    from tests.conftest import KEYSTORE_PASSWORD
    from tests.e2e.conftest import MCAGENT

    env = {**os.environ, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    linked = tmp_path / "linked"
    linked.mkdir(mode=0o700)
    (tmp_path / "victim").write_text("not a database")
    os.symlink(tmp_path / "victim", linked / "mcagent.db")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for data_dir, expected in ((linked, "is not a regular file"), (shared, "writable by nobody else")):
        result = subprocess.run([MCAGENT, "serve", "--data-dir", str(data_dir)], env=env, capture_output=True,
                                timeout=60)
        assert result.returncode != 0
        assert expected in result.stderr.decode()
    assert (tmp_path / "victim").read_text() == "not a database"
