"""A bare grpcio server on a Unix socket: the floor under the agent's own cost.

    python -m bench.bare_server SOCKET_PATH

The same grpcio synchronous server the agent runs (a thread pool of 32), with a generic
handler and no interceptor, no authentication, no protobuf: `/bare.Bare/Unary` answers its
request's bytes, `/bare.Bare/Stream` echoes every message of a bidirectional stream. It
serves until it is terminated.
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures

import grpc


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _stream(requests, context: grpc.ServicerContext):
    yield from requests


class _Handler(grpc.GenericRpcHandler):
    _methods = {
        "/bare.Bare/Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "/bare.Bare/Stream": grpc.stream_stream_rpc_method_handler(_stream),
    }

    def service(self, handler_call_details):
        return self._methods.get(handler_call_details.method)


def main() -> None:
    path = sys.argv[1]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), handlers=[_Handler()],
                         options=[("grpc.http2.bdp_probe", 0)])  # as the agent's server
    server.add_insecure_port(f"unix:{path}")
    server.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
