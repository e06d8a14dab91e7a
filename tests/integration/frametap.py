"""What the nodes say to each other, read off the wire by the fault proxy (plaintext links only).

The proxy (tests/integration/faultproxy.py) splits each direction of a link into WebSocket frames. A
ConsensusTrace given to `FaultNetwork.observe()` sees every whole data message as the proxy reads it and
decodes it layer by layer: the WebSocket frame (RFC 6455 5.2, unmasked as in 5.3), then either a handshake
message (p2p/handshake.py: the responder's `welcome` means the link is up) or an application frame
`[channel, payload]` (p2p/framing.py) whose "consensus" payload is one consensus message
(consensus/messages.py). It records who sent which kind for which view and height, and when, so that a test
can assert on the protocol as it happened on the wire, e.g. that a restarted validator votes in the current
view soon after its first link came up.

Times are the proxy loop's clock, which is time.monotonic() (asyncio's loop.time()), taken when the proxy
read the message: the moment the sender's bytes reached the network, before any injected delay.
The trace is filled by the proxy's thread and read by the test's: a lock guards it, and `wait_for` blocks
on a condition (run it in a thread from async code: `await asyncio.to_thread(trace.wait_for, ...)`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from consensus.messages import (
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    decode_message,
)
from core.errors import InvalidInput
from core.genesis import Genesis
from node.channels import CHANNEL_CONSENSUS
from p2p.framing import decode_frame
from p2p.handshake import HANDSHAKE_MESSAGE_BYTES_MAX, decode_welcome
from tests.integration.faultproxy import Direction

T = TypeVar("T")
FRAME_BYTES_MAX = 64 * 1024 * 1024  # above any node's limit: the trace must not be the one refusing
KINDS: dict[type, str] = {  # the wire "kind" of each consensus message
    PrePrepare: "pre_prepare",
    Prepare: "prepare",
    Commit: "commit",
    Checkpoint: "checkpoint",
    ViewChange: "view_change",
    NewView: "new_view",
}


def get_websocket_payload(frame: bytes) -> bytes:
    """The payload of one complete WebSocket frame (header, optional 64-bit length and mask key, payload)."""
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    if not frame[1] & 0x80:
        return frame[offset : offset + length]
    mask, offset = frame[offset : offset + 4], offset + 4
    payload = frame[offset : offset + length]
    # XOR with the 4-byte key repeated, as one big integer operation (a byte loop is slow for big frames)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


@dataclass(frozen=True)
class SeenMessage:
    """One consensus message as it passed the proxy."""

    at_s: float  # time.monotonic() when the proxy read it
    sender: str  # node name, from the link and direction ("validator-0")
    receiver: str
    kind: str  # "pre_prepare", "prepare", "commit", "checkpoint", "view_change", "new_view"
    view: int | None  # None for a checkpoint
    height: int | None  # None for a view change and a new view


@dataclass(frozen=True)
class LinkUp:
    """A handshake completed: the proxy passed the responder's `welcome`."""

    at_s: float
    dialler: str
    listener: str

    def involves(self, name: str) -> bool:
        return name in (self.dialler, self.listener)


class ConsensusTrace:
    """A faultproxy LinkObserver that records links coming up and consensus messages."""

    def __init__(self, genesis: Genesis) -> None:
        self._params = genesis.consensus
        self._validator_count = len(genesis.validators)
        self._changed = threading.Condition()
        self._messages: list[SeenMessage] = []
        self._links: list[LinkUp] = []
        self.undecodable = 0  # application frames on the consensus channel that did not decode

    # --- called by the proxy's thread ----------------------------------------------------------------

    def on_message(self, link: str, direction: Direction, frame: bytes, at_s: float) -> None:
        dialler, listener = link.split("->")
        sender, receiver = (dialler, listener) if direction == "forward" else (listener, dialler)
        data = get_websocket_payload(frame)
        if direction == "backward" and len(data) <= HANDSHAKE_MESSAGE_BYTES_MAX and self._is_welcome(data):
            with self._changed:
                self._links.append(LinkUp(at_s, dialler, listener))
                self._changed.notify_all()
            return
        try:
            peer_frame = decode_frame(data, FRAME_BYTES_MAX)
        except InvalidInput:
            return  # a handshake message
        if peer_frame.channel != CHANNEL_CONSENSUS:
            return
        try:
            message = decode_message(
                peer_frame.payload, params=self._params, validator_count=self._validator_count
            )
        except InvalidInput:
            with self._changed:
                self.undecodable += 1
            return
        view = None if isinstance(message, Checkpoint) else message.view
        height = None if isinstance(message, ViewChange | NewView) else message.height
        seen = SeenMessage(at_s, sender, receiver, KINDS[type(message)], view, height)
        with self._changed:
            self._messages.append(seen)
            self._changed.notify_all()

    @staticmethod
    def _is_welcome(data: bytes) -> bool:
        try:
            decode_welcome(data)
        except InvalidInput:
            return False
        return True

    # --- read by the test ------------------------------------------------------------------------------

    def messages(self) -> list[SeenMessage]:
        with self._changed:
            return list(self._messages)

    def links_up(self) -> list[LinkUp]:
        with self._changed:
            return list(self._links)

    def wait_for(self, find: Callable[[ConsensusTrace], T | None], timeout_s: float) -> T | None:
        """Block until `find(self)` returns something (re-evaluated whenever the trace grows), or None once
        timeout_s passed."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = find(self)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self._changed.wait(remaining)
