"""Errors of the peer layer, split by who is at fault (core.errors).

A peer that sends something invalid raises an `InvalidInput` subclass here (FrameError, HandshakeRefused):
the connection is dropped and the peer may be banned, the node keeps running. Errors the *caller* must handle
when sending (PeerNotConnected, SendQueueFull, FrameTooLarge) derive from `P2PError`.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import CarbonchainError, InvalidInput


class RefusalCode(StrEnum):
    """Why a handshake was refused; sent to the other end in a `refuse` message (docs/protocol/p2p.md)."""

    MALFORMED = "malformed"  # a handshake message is not what the protocol allows
    VERSION = "version"  # different peer protocol version
    CHAIN_ID = "chain-id"  # the peer is on another chain
    GENESIS_HASH = "genesis-hash"  # same chain id, different genesis document
    UNKNOWN_PEER = "unknown-peer"  # the claimed identity is not in the genesis
    UNEXPECTED_PEER = "unexpected-peer"  # the dialled node answered with another identity
    WRONG_DIRECTION = "wrong-direction"  # this pair's link is dialled by the other end (identity.is_dialer)
    SELF = "self"  # a node connected to itself
    BAD_SIGNATURE = "bad-signature"  # the proof of the node key does not verify
    BANNED = "banned"  # the peer is banned for misbehaviour
    TIMEOUT = "timeout"  # a handshake step took too long
    BUSY = "busy"  # too many connections


class P2PError(CarbonchainError):
    """The peer layer cannot do what its caller asked (not a peer's fault)."""


class PeerNotConnected(P2PError):
    """There is no authenticated connection to that peer right now."""


class SendQueueFull(P2PError):
    """The peer's bounded send queue is full; the caller decides whether to drop, wait or disconnect."""


class FrameTooLarge(P2PError):
    """A frame we were asked to send exceeds the configured frame size limit."""


class FrameError(InvalidInput):
    """A peer sent a frame that is malformed, oversized, not binary or for a channel nobody handles."""


class HandshakeRefused(InvalidInput):
    """A handshake failed; `code` is the machine-readable reason, `by_peer` says the other end refused."""

    def __init__(self, code: RefusalCode, detail: str, *, by_peer: bool = False) -> None:
        who = "peer refused" if by_peer else "refused"
        super().__init__(f"handshake {who} ({code.value}): {detail}")
        self.code = code
        self.detail = detail
        self.by_peer = by_peer
