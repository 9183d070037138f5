"""Regenerate the gRPC Python code in agent/api/v1 from proto/ (`make proto`).

The `-I proto` root mirrors the installed package path (`mcagent.agent.api.v1`), so the
generated modules import each other by the names they have once installed. protoc writes
them under that path in a scratch folder; they are committed in `agent/api/v1/`, which the
wheel installs as `mcagent.agent.api.v1`. The .proto itself is copied beside them, so the
wheel ships the contract (package data) for clients in other languages or other protoc runs.
"""

import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
PROTO_FILES = ["mcagent/agent/api/v1/agent.proto"]
INSTALLED_PREFIX = "mcagent/"  # the package root the source folders are installed under


def source_path(generated: str) -> str:
    """Where a generated file lives in this repository: its installed path without `mcagent/`."""
    return generated.removeprefix(INSTALLED_PREFIX)


def generate(out_dir: pathlib.Path) -> None:
    """Run protoc for every proto file, writing into `out_dir` at the repository's layout, .proto included."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        for proto in PROTO_FILES:
            rc = protoc.main([
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{well_known}",
                f"--python_out={scratch}",
                f"--grpc_python_out={scratch}",
                f"--pyi_out={scratch}",
                str(PROTO_ROOT / proto),
            ])
            if rc != 0:
                raise SystemExit(f"protoc failed on {proto} (exit {rc})")
            stem = proto.removesuffix(".proto")
            for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
                target = out_dir / source_path(stem + suffix)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(pathlib.Path(scratch) / (stem + suffix), target)
            shutil.copyfile(PROTO_ROOT / proto, out_dir / source_path(proto))


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
