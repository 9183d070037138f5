"""SignStream: signs pipelined over one bidirectional stream, with a bounded window.

Each request message is one sign, answered by one response with the same request id, in
the order the signs finish. Every sign goes through `AgentService.sign`, exactly as a unary
Sign: authorised against current state, signed in custody, durably audited before its
response is queued (signs finishing together share the audit appender's group commit).

Flow control: at most WINDOW signs of a stream are in flight (read and not yet answered on
the wire). The stream's reader takes a slot before it reads the next request and a slot is
given back only once its response has been handed to gRPC for sending, so a client that
sends fast and reads slowly is held back by HTTP/2 flow control instead of growing the
agent's memory: per stream, at most WINDOW requests and responses are held.

A request that fails (bad input, refused, the token away) gets a response with the status
code and message instead of a signature; the stream goes on. A message that is not a valid
SignStreamRequest gets such a response with an empty request id (its id cannot be read).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.domain import errors as domain
from mcagent.agent.domain.audit import clip
from mcagent.agent.domain.calls import Caller, SignItem
from mcagent.agent.domain.service import AgentService
from mcagent.agent.server.interceptors import MAX_DETAILS, MalformedRequest, status_of
from mcagent.hsm import errors as keys
from mcagent.hsm.base import SignatureAlgorithm

log = logging.getLogger(__name__)

WINDOW = 64  # signs in flight per stream
SIGN_THREADS = 16  # signs of all streams at once (each waits on the token or the audit commit)
MAX_REQUEST_ID = 128  # bytes of a client's request id
_POLL = 0.5  # seconds between checks whether the stream ended while the reader waits for a slot
_END = object()


ALGORITHMS = {
    pb.SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256: SignatureAlgorithm.RSA_PKCS1_SHA256,
    pb.SIGNATURE_ALGORITHM_RSA_PKCS1_SHA1: SignatureAlgorithm.RSA_PKCS1_SHA1,
    pb.SIGNATURE_ALGORITHM_RSA_PSS_SHA256: SignatureAlgorithm.RSA_PSS_SHA256,
    pb.SIGNATURE_ALGORITHM_ECDSA_SHA256: SignatureAlgorithm.ECDSA_SHA256,
}
ALGORITHM_NUMBERS = {member: number for number, member in ALGORITHMS.items()}


def sign_item(request: Any) -> SignItem:
    """The domain's view of a SignRequest or a SignStreamRequest (they share these fields).

    Raises:
        InvalidArgument: an algorithm number this agent does not know.
    """
    algorithm = None
    if request.algorithm:
        algorithm = ALGORITHMS.get(request.algorithm)
        if algorithm is None:
            raise domain.InvalidArgument(f"unknown signature algorithm {request.algorithm}")
    which = request.WhichOneof("input")
    return SignItem(credential_id=request.credential_id, algorithm=algorithm,
                    data=request.data if which == "data" else None,
                    digest=request.digest if which == "digest" else None, permission=request.permission)


class SignStreams:
    """Serves SignStream calls; one sign thread pool shared by every stream."""

    def __init__(self, service: AgentService) -> None:
        self._service = service
        self._executor = ThreadPoolExecutor(SIGN_THREADS, thread_name_prefix="stream-sign")

    def serve(self, caller: Caller, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """The responses to `requests` (the caller was authenticated when the call started)."""
        stream = _Stream(self, caller, requests)
        context.add_callback(stream.stop)  # cancelled or finished: the reader stops waiting
        threading.Thread(target=stream.read, name="sign-stream-reader", daemon=True).start()
        return stream.responses()

    def sign_one(self, caller: Caller, request: Any) -> Any:
        """One response: the signature, or the error this one request met."""
        if isinstance(request, MalformedRequest):
            return _error("", grpc.StatusCode.INVALID_ARGUMENT, request.message)
        request_id = request.request_id
        try:
            if len(request_id.encode()) > MAX_REQUEST_ID:
                raise domain.InvalidArgument(f"a request id is at most {MAX_REQUEST_ID} bytes long")
            signed = self._service.sign(caller, sign_item(request))
        except (domain.DomainError, keys.KeyStoreError) as exc:
            code = status_of(exc) or grpc.StatusCode.INTERNAL
            log.info("SignStream item refused: %s: %s", code.name, exc)
            return _error(request_id[:MAX_REQUEST_ID], code, clip(str(exc), MAX_DETAILS))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # also a native library's panic: the item is answered, the stream goes on
            log.exception("SignStream item failed with an unexpected error")
            return _error(request_id, grpc.StatusCode.INTERNAL, "internal error in the agent; see its log")
        return pb.SignStreamResponse(request_id=request_id, signature=signed.signature,
                                     algorithm=ALGORITHM_NUMBERS[signed.algorithm])


def _error(request_id: str, code: grpc.StatusCode, message: str) -> Any:
    return pb.SignStreamResponse(request_id=request_id, code=code.value[0], error=message)


class _Stream:
    """One call: a reader thread that submits signs while slots are free, and the responses."""

    def __init__(self, streams: SignStreams, caller: Caller, requests: Iterator[Any]) -> None:
        self._streams = streams
        self._caller = caller
        self._requests = requests
        self._slots = threading.Semaphore(WINDOW)
        self._done: queue.SimpleQueue[Any] = queue.SimpleQueue()  # responses, then _END with the count
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def read(self) -> None:
        submitted = 0
        try:
            while not self._stopped.is_set():
                if not self._slots.acquire(timeout=_POLL):
                    continue
                try:
                    request = next(self._requests)
                except StopIteration:
                    self._slots.release()
                    break
                future = self._streams._executor.submit(self._streams.sign_one, self._caller, request)
                future.add_done_callback(lambda f: self._done.put(f.result()))
                submitted += 1
        except Exception:  # the call was cancelled or failed under us: answer what was read, then end
            log.debug("SignStream: the request stream ended early", exc_info=True)
        finally:
            self._done.put((_END, submitted))

    def responses(self) -> Iterator[Any]:
        sent, total = 0, None
        try:
            while total is None or sent < total:
                item = self._done.get()
                if isinstance(item, tuple) and item and item[0] is _END:
                    total = item[1]
                    continue
                yield item
                sent += 1
                self._slots.release()  # this response is with gRPC: the reader may take the next request
        finally:
            self._stopped.set()
