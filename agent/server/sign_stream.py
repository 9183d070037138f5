"""SignStream: signs pipelined over one bidirectional stream, with a bounded window.

Each request message is one sign, answered by one response with the same request id, in
the order the signs finish. The stream is served in micro-batches: its reader thread reads
requests, and whatever requests are waiting are signed together through the same domain
path as SignBatch (`AgentService.sign_batch`): authorised against one read of the state,
signed in custody, every sign and refusal audited in one `append_many`, durable before any
of the batch's responses is released. A lone request does not wait for company: it goes
at once as a batch of one; while a batch is in progress the next requests gather and form
the next. A batch runs as one task on an executor shared by every stream; a stream with
more waiting queues its next task behind the other streams' (no stream starves the rest).

Flow control: at most WINDOW signs of a stream are in flight (read and not yet answered on
the wire). The stream's reader takes a slot before it reads the next request and a slot is
given back only once its response has been handed to gRPC for sending, so a client that
sends fast and reads slowly is held back by HTTP/2 flow control instead of growing the
agent's memory: per stream, at most WINDOW requests and responses are held.

A request that fails (bad input, refused, the token away) gets a response with the status
code and message instead of a signature; the stream goes on. A message that is not a valid
SignStreamRequest gets such a response with an empty request id (its id cannot be read).

An open stream holds one of the server's rpc threads for its life (its responses wait for
the next batch), so a process serves at most MAX_STREAMS at once: one more is refused at
once with RESOURCE_EXHAUSTED, and the server's other threads stay free for unary calls
(agent/server/server.py). A stream that ended (or was cancelled) has its batches answer
nothing and sign nothing; so do all streams once `SignStreams.close()` ran (the daemon stops).
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
from mcagent.agent.domain.calls import Caller, Signed, SignItem
from mcagent.agent.domain.service import AgentService
from mcagent.agent.server.interceptors import MAX_DETAILS, MalformedRequest, status_of
from mcagent.hsm import errors as keys
from mcagent.hsm.base import SignatureAlgorithm

log = logging.getLogger(__name__)

WINDOW = 64  # signs in flight per stream
# Open streams per process. Each holds an rpc thread; server.py sizes its pool at this plus a
# reserve for unary and admin calls. 48 leaves room for the 32 cloud servers of the
# concurrency test, each with one stream, and more (docs/decisions.md).
MAX_STREAMS = 48
SIGN_THREADS = 16  # batches of all streams at once (each waits on the token or the audit commit)
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


_INTERNAL = dict(code=grpc.StatusCode.INTERNAL.value[0], error="internal error in the agent; see its log")


def item_error(exc: BaseException) -> dict[str, Any]:
    """The `code` and `error` of one item's failure, for a SignBatchResult or a
    SignStreamResponse: the one mapping of per-item errors (an unexpected error says only
    that it happened; the log has it)."""
    code = status_of(exc) if isinstance(exc, (domain.DomainError, keys.KeyStoreError)) else None
    if code is None:
        log.error("a sign item failed with an unexpected error", exc_info=exc)
        return _INTERNAL
    log.info("sign item refused: %s: %s", code.name, exc)
    return dict(code=code.value[0], error=clip(str(exc), MAX_DETAILS))


def _stream_item(request: Any) -> SignItem:
    """The sign a SignStream message asks for.

    Raises:
        InvalidArgument: an undecodable message, a request id over MAX_REQUEST_ID bytes, an
            unknown algorithm.
    """
    if isinstance(request, MalformedRequest):
        raise domain.InvalidArgument(request.message)
    if len(request.request_id.encode()) > MAX_REQUEST_ID:
        raise domain.InvalidArgument(f"a request id is at most {MAX_REQUEST_ID} bytes long")
    return sign_item(request)


def _request_id(request: Any) -> str:
    """The id an answer carries: empty for an undecodable message, a long one cut to MAX_REQUEST_ID bytes."""
    if isinstance(request, MalformedRequest):
        return ""
    return request.request_id.encode()[:MAX_REQUEST_ID].decode(errors="ignore")


class SignStreams:
    """Serves SignStream calls (at most MAX_STREAMS at once); one executor for the batches of every stream."""

    def __init__(self, service: AgentService) -> None:
        self._service = service
        self._executor = ThreadPoolExecutor(SIGN_THREADS, thread_name_prefix="stream-sign")
        self._lock = threading.Lock()  # guards the two below
        self._open: set[_Stream] = set()  # streams whose responses have not ended (each holds an rpc thread)
        self._closed = False

    def serve(self, caller: Caller, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """The responses to `requests` (the caller was authenticated when the call started).

        Raises:
            ResourceExhausted: MAX_STREAMS streams are open already.
            Unavailable: the daemon is stopping.
        """
        stream = _Stream(self, caller, requests)
        with self._lock:
            if self._closed:
                raise domain.Unavailable("the agent is stopping; open the stream again once it is back")
            if len(self._open) >= MAX_STREAMS:
                raise domain.ResourceExhausted(
                    f"this agent serves at most {MAX_STREAMS} SignStreams at once and all are open: keep one "
                    "stream per client process and send every sign over it, or retry once another stream ended")
            self._open.add(stream)
        if not context.add_callback(stream.stop):  # cancelled or finished: the reader stops waiting
            stream.stop()  # the call ended already
        threading.Thread(target=stream.read, name="sign-stream-reader", daemon=True).start()
        return stream.responses()

    def close(self) -> None:
        """Stop every stream (their batches sign nothing more) and the executor: queued batches
        are dropped, running ones finish. Each stream's responses end, so no thread waits on them."""
        with self._lock:
            self._closed = True
            streams = list(self._open)
        for stream in streams:
            stream.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for stream in streams:
            stream.abandon()

    @property
    def closed(self) -> bool:
        return self._closed

    def _forget(self, stream: _Stream) -> None:
        with self._lock:
            self._open.discard(stream)

    def _submit(self, batch: Any) -> None:
        """Queue a stream's batch; once closed it is not run (`close` ends the stream's responses)."""
        try:
            self._executor.submit(batch)
        except RuntimeError:  # shut down: close() ends this stream
            log.debug("SignStream: a batch after the agent began stopping was dropped")

    def answer(self, caller: Caller, requests: list[Any]) -> list[Any]:
        """The responses to requests waiting together, in order: signed as one batch."""
        responses: list[Any] = [None] * len(requests)
        items, where = [], []
        for index, request in enumerate(requests):
            try:
                items.append(_stream_item(request))
                where.append(index)
            except domain.InvalidArgument as exc:
                responses[index] = pb.SignStreamResponse(request_id=_request_id(request), **item_error(exc))
        if items:
            try:
                outcomes: list[Any] = self._service.sign_batch(caller, items)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # no signature of the batch leaves (its audit failed): each item says why
                outcomes = [exc] * len(items)
            for index, outcome in zip(where, outcomes, strict=True):
                request_id = requests[index].request_id
                if isinstance(outcome, Signed):
                    responses[index] = pb.SignStreamResponse(request_id=request_id, signature=outcome.signature,
                                                             algorithm=ALGORITHM_NUMBERS[outcome.algorithm])
                else:
                    responses[index] = pb.SignStreamResponse(request_id=request_id, **item_error(outcome))
        return responses


class _Stream:
    """One call: a reader thread that gathers requests while slots are free, batch tasks on
    the shared executor that answer them, and the responses."""

    def __init__(self, streams: SignStreams, caller: Caller, requests: Iterator[Any]) -> None:
        self._streams = streams
        self._caller = caller
        self._requests = requests
        self._slots = threading.Semaphore(WINDOW)
        self._lock = threading.Lock()  # guards the three below
        self._waiting: list[Any] = []  # read, in no batch yet
        self._busy = False  # a batch task is queued or running
        self._ended = False  # the reader is done: _END follows the last batch
        self._answers: queue.SimpleQueue[Any] = queue.SimpleQueue()  # a batch's responses (a list), then _END
        self._stopped = threading.Event()
        self._responding = False  # responses() began: it frees the stream's place when it ends

    def stop(self) -> None:
        """The call ended (or the daemon stops): nothing more is read or signed."""
        self._stopped.set()
        if not self._responding:  # its responses never began: nothing else frees its place
            self._streams._forget(self)

    def abandon(self) -> None:
        """The daemon stops and no batch runs any more: the responses end now."""
        self._answers.put(_END)

    def read(self) -> None:
        try:
            while not self._stopped.is_set():
                if not self._slots.acquire(timeout=_POLL):
                    continue
                try:
                    request = next(self._requests)
                except StopIteration:
                    self._slots.release()
                    break
                with self._lock:
                    self._waiting.append(request)
                    start, self._busy = not self._busy, True
                if start:  # otherwise the batch in progress takes this request into the next
                    self._streams._submit(self._batch)
        except Exception:  # the call was cancelled or failed under us: answer what was read, then end
            log.debug("SignStream: the request stream ended early", exc_info=True)
        finally:
            with self._lock:
                self._ended = True
                if not self._busy:
                    self._answers.put(_END)

    def _batch(self) -> None:
        """Answer what is waiting; if more gathered meanwhile, queue the next batch. A stopped
        stream's batch answers and signs nothing: nobody would receive its signatures."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            if not self._stopped.is_set() and not self._streams.closed:
                self._answers.put(self._answer(batch))
        finally:
            with self._lock:
                again = self._busy = bool(self._waiting)
                if not again and self._ended:
                    self._answers.put(_END)
            if again:
                self._streams._submit(self._batch)

    def _answer(self, batch: list[Any]) -> list[Any]:
        """The batch's responses; if answering fails (a bug), each request is answered INTERNAL."""
        try:
            return self._streams.answer(self._caller, batch)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            log.exception("SignStream: a batch of %d requests failed; each is answered INTERNAL", len(batch))
            return [pb.SignStreamResponse(request_id=_request_id(request), **_INTERNAL) for request in batch]

    def responses(self) -> Iterator[Any]:
        """The responses; once they end, the stream's place (and the rpc thread) is free."""
        self._responding = True
        try:
            while (answers := self._answers.get()) is not _END:
                for response in answers:
                    yield response
                    self._slots.release()  # this response is with gRPC: the reader may take the next request
        finally:
            self._stopped.set()
            self._streams._forget(self)
