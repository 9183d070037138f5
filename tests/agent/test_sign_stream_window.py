"""SignStream's window (the reader takes a request only when one of WINDOW slots is free) and
its micro-batches (waiting requests are signed together; a lone one goes at once)."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.domain.calls import Caller, Signed
from mcagent.agent.domain.errors import ResourceExhausted, Unavailable
from mcagent.agent.server.sign_stream import MAX_STREAMS, WINDOW, SignStreams
from mcagent.hsm.base import SignatureAlgorithm


class _Service:
    """Signs a batch at once, or after `pause` seconds (the window and the batching, not the
    token, are under test here); keeps each batch's size."""

    def __init__(self, pause: float = 0.0) -> None:
        self.signed = 0
        self.batches: list[int] = []
        self._pause = pause
        self._lock = threading.Lock()

    def sign_batch(self, caller, items):
        time.sleep(self._pause)
        with self._lock:
            self.signed += len(items)
            self.batches.append(len(items))
        return [Signed(signature=b"sig-" + item.digest, algorithm=SignatureAlgorithm.ECDSA_SHA256) for item in items]


class _Context:
    def add_callback(self, callback) -> bool:
        self.callback = callback
        return True  # as grpc's: the call is still active


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_no_more_than_window_requests_are_read_ahead_of_the_answers_sent():
    pulled = [0]

    def requests():
        n = 0
        while True:  # endless: only the window stops it
            pulled[0] += 1
            n += 1
            yield pb.SignStreamRequest(request_id=str(n), credential_id="c", digest=b"%032d" % n)

    service = _Service()
    context = _Context()
    responses = SignStreams(service).serve(Caller("sw", "p-1"), requests(), context)
    _wait_for(lambda: service.signed == WINDOW)
    time.sleep(0.3)  # would it read more? it must not
    assert pulled[0] == WINDOW and service.signed == WINDOW
    taken = [next(responses) for _ in range(10)]  # ten answers handed on: ten more requests may be read
    _wait_for(lambda: pulled[0] >= WINDOW + 9)
    time.sleep(0.3)
    assert WINDOW + 9 <= pulled[0] <= WINDOW + 10  # the tenth slot is freed when the eleventh answer is asked for
    assert all(r.code == 0 and r.signature.startswith(b"sig-") for r in taken)
    responses.close()  # the call ends: the reader stops
    context.callback()


def test_every_request_is_answered_once_then_the_stream_ends():
    requests = [pb.SignStreamRequest(request_id=str(n), credential_id="c", digest=b"%032d" % n) for n in range(500)]
    responses = list(SignStreams(_Service()).serve(Caller("sw", "p-1"), iter(requests), _Context()))
    assert sorted(r.request_id for r in responses) == sorted(str(n) for n in range(500))


def _request(n: int):
    return pb.SignStreamRequest(request_id=str(n), credential_id="c", digest=b"%032d" % n)


def test_requests_waiting_together_are_signed_as_one_batch():
    """While a batch is being signed the next requests gather: far fewer batches than signs."""
    service = _Service(pause=0.2)
    responses = list(SignStreams(service).serve(Caller("sw", "p-1"), iter([_request(n) for n in range(640)]),
                                                _Context()))
    assert sorted(int(r.request_id) for r in responses) == list(range(640))
    assert sum(service.batches) == 640 and all(size <= WINDOW for size in service.batches)
    assert service.batches[0] == 1  # the first request found no company and went at once
    assert len(service.batches) <= 640 // 16, service.batches  # the window's worth gathers behind each batch


def test_a_lone_request_is_answered_without_waiting_for_company():
    """One request, then the client sends nothing more (its stream stays open): it is answered."""
    more = threading.Event()

    def requests():
        yield _request(1)
        more.wait(30)  # nothing else comes until the answer has been read

    service = _Service()
    context = _Context()
    responses = SignStreams(service).serve(Caller("sw", "p-1"), requests(), context)
    answered = []
    reader = threading.Thread(target=lambda: answered.append(next(responses)))
    reader.start()
    reader.join(10)
    more.set()
    assert [r.request_id for r in answered] == ["1"] and service.batches == [1]
    responses.close()
    context.callback()


def test_a_cancelled_stream_signs_nothing_more():
    """The batch in progress when the call is cancelled finishes; the requests gathered behind
    it are neither signed nor audited (nobody would receive them), and the responses end."""
    service = _Service(pause=0.5)  # the first (lone) batch takes 0.5 s; the rest gather meanwhile
    gate = threading.Event()

    def requests():
        for n in range(40):
            yield _request(n)
        gate.wait(10)  # the client keeps its side open

    context = _Context()
    responses = SignStreams(service).serve(Caller("sw", "p-1"), requests(), context)
    answered = []
    reader = threading.Thread(target=lambda: answered.extend(responses))
    reader.start()
    time.sleep(0.2)  # batch 1 (one request) runs, 39 gather
    context.callback()  # the RPC is cancelled
    gate.set()  # and its request iterator ends, as grpc's does
    reader.join(5)
    assert not reader.is_alive(), "the responses of a cancelled stream did not end"
    time.sleep(0.6)  # a batch queued behind would have signed by now
    assert service.signed == 1 and service.batches == [1]


def test_a_batch_that_fails_answers_each_request_internal_and_the_stream_goes_on():
    class Broken:  # a result list of the wrong length: stands for any bug in answering a batch
        def sign_batch(self, caller, items):
            return [Signed(signature=b"s", algorithm=SignatureAlgorithm.ECDSA_SHA256)] * (len(items) + 1)

    responses = list(SignStreams(Broken()).serve(Caller("sw", "p-1"), iter([_request(n) for n in range(10)]),
                                                 _Context()))
    assert sorted(int(r.request_id) for r in responses) == list(range(10))
    assert all(r.code == grpc.StatusCode.INTERNAL.value[0] and not r.signature for r in responses)
    assert all("internal error" in r.error for r in responses)


def test_close_ends_every_stream_and_a_later_batch_signs_nothing():
    """The daemon stops: the batch running finishes, nothing gathered behind it is signed, the
    responses end (no thread stays waiting on them), and a new stream is refused."""
    service = _Service(pause=0.5)
    gate = threading.Event()

    def requests():
        for n in range(40):
            yield _request(n)
        gate.wait(10)

    streams = SignStreams(service)
    responses = streams.serve(Caller("sw", "p-1"), requests(), _Context())
    answered = []
    reader = threading.Thread(target=lambda: answered.extend(responses))
    reader.start()
    time.sleep(0.2)  # batch 1 runs, 39 gather
    started = time.monotonic()
    streams.close()
    assert time.monotonic() - started < 2
    reader.join(5)
    gate.set()
    assert not reader.is_alive(), "a stream's responses still wait after close"
    time.sleep(0.6)
    assert service.signed == 1
    with pytest.raises(Unavailable):
        streams.serve(Caller("sw", "p-1"), iter([_request(1)]), _Context())


def test_at_most_max_streams_are_open_at_once_and_an_ended_one_frees_its_place():
    gate = threading.Event()

    def held():
        yield _request(0)
        gate.wait(10)

    streams = SignStreams(_Service())
    contexts = [_Context() for _ in range(MAX_STREAMS)]
    open_ = [streams.serve(Caller("sw", "p-1"), held(), context) for context in contexts]
    for responses in open_:
        assert next(responses).request_id == "0"
    with pytest.raises(ResourceExhausted, match=f"at most {MAX_STREAMS} SignStreams.*one stream per client"):
        streams.serve(Caller("sw", "p-1"), held(), _Context())
    gate.set()  # every client ends its side: the streams end
    assert all(list(responses) == [] for responses in open_)
    more = list(streams.serve(Caller("sw", "p-1"), iter([_request(7)]), _Context()))
    assert [r.request_id for r in more] == ["7"]
