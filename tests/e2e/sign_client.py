"""A signing client process for the multi-process tests: signs until a deadline, a new
connection every few signs (so that connections land on every worker), and prints one JSON
line per signature received: {"credential": …, "data": hex, "signature": hex}.

Usage: python -m tests.e2e.sign_client SOCKET SECONDS CREDENTIAL_ID... (bearer token in MCAGENT_TOKEN)
"""

from __future__ import annotations

import json
import os
import sys
import time

import grpc
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

SIGNS_PER_CONNECTION = 10


def main() -> None:
    socket, seconds, credentials = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    metadata = (("authorization", f"Bearer {os.environ['MCAGENT_TOKEN']}"),)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        with grpc.insecure_channel(f"unix:{socket}") as channel:
            stub = pb_grpc.CredentialServiceStub(channel)
            for _ in range(SIGNS_PER_CONNECTION):
                credential = credentials[n % len(credentials)]
                data = f"pid {os.getpid()} sign {n}".encode()
                n += 1
                try:
                    reply = stub.Sign(pb.SignRequest(credential_id=credential, data=data), metadata=metadata,
                                      timeout=60)
                except grpc.RpcError as exc:
                    print(json.dumps({"error": f"{exc.code().name}: {exc.details()}"}), flush=True)
                    continue
                print(json.dumps({"credential": credential, "data": data.hex(), "signature": reply.signature.hex()}),
                      flush=True)


if __name__ == "__main__":
    main()
