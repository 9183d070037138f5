"""The committed gRPC code is what `make proto` generates from proto/ today."""

import pathlib

from mcagent.agent.api.generate import PROTO_FILES, ROOT, generate, source_path


def test_committed_generated_code_is_current(tmp_path):
    generate(tmp_path)
    stale = []
    for proto in PROTO_FILES:
        stem = source_path(proto.removesuffix(".proto"))
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", ".proto"):
            fresh = (tmp_path / f"{stem}{suffix}").read_text()
            committed_path = ROOT / f"{stem}{suffix}"
            if not committed_path.exists() or committed_path.read_text() != fresh:
                stale.append(str(pathlib.Path(committed_path).relative_to(ROOT)))
    assert not stale, f"generated code is stale, run `make proto`: {stale}"
