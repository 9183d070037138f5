"""SignStream's window: the reader takes a request only when one of WINDOW slots is free."""

from __future__ import annotations

import threading
import time

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.domain.calls import Caller, Signed
from mcagent.agent.server.sign_stream import WINDOW, SignStreams
from mcagent.hsm.base import SignatureAlgorithm


class _Service:
    """Signs at once (the window, not the token, is under test here)."""

    def __init__(self) -> None:
        self.signed = 0
        self._lock = threading.Lock()

    def sign(self, caller, item):
        with self._lock:
            self.signed += 1
        return Signed(signature=b"sig-" + item.digest, algorithm=SignatureAlgorithm.ECDSA_SHA256)


class _Context:
    def add_callback(self, callback) -> None:
        self.callback = callback


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
