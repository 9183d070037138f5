"""Regenerate the gRPC Python code in agent/api/v1 from proto/ (`make proto`).

The `-I proto` root mirrors the Python package path, so the generated modules import
each other as `agent.api.v1...` and resolve inside this distribution.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
PROTO_FILES = ["agent/api/v1/agent.proto"]


def generate(out_dir: pathlib.Path) -> None:
    """Run protoc for every proto file, writing into `out_dir` (the repository root normally)."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    for proto in PROTO_FILES:
        rc = protoc.main([
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--pyi_out={out_dir}",
            str(PROTO_ROOT / proto),
        ])
        if rc != 0:
            raise SystemExit(f"protoc failed on {proto} (exit {rc})")


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
