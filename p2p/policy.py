"""Limits, reconnect backoff and the ban list: the peer layer's policy, as pure code.

Time is an input here (monotonic milliseconds) and so is randomness (a jitter fraction), which keeps these
rules testable without clocks or sleeps; p2p.network feeds them `time.monotonic()` and `random.random()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import InvariantBroken
from p2p.identity import PeerId


@dataclass(frozen=True)
class PeerLimits:
    """Every bound of the peer layer; defaults suit a consortium of up to 64 validators and 64 observers."""

    frame_bytes_max: int = (
        16 * 1024 * 1024
    )  # largest WebSocket message accepted or sent (aiohttp max_msg_size)
    send_queue_frames_max: int = 1024  # per-peer send queue, in frames
    send_queue_bytes_max: int = 64 * 1024 * 1024  # per-peer send queue, in encoded bytes
    handshake_timeout_ms: int = 5_000  # deadline for the whole handshake; each step waits at most the rest
    inbound_connections_max: int = 160  # authenticated plus pending inbound connections
    pending_handshakes_max: int = 16  # inbound connections not yet authenticated (CVE-2020-5303)
    ban_duration_ms: int = 60_000  # how long a misbehaving peer is refused
    handler_errors_max: int = 10  # unexpected handler exceptions a peer may trigger before it is banned
    reconnect_base_ms: int = 250  # first reconnect delay
    reconnect_max_ms: int = 30_000  # reconnect delays never exceed this
    heartbeat_ms: int = 10_000  # WebSocket ping interval; a peer silent for half of it more is dropped
    write_stall_timeout_ms: int = 30_000  # a peer that accepts no bytes for this long is dropped
    close_grace_ms: int = 5_000  # how long close() waits for tasks before cancelling them

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise InvariantBroken(f"PeerLimits.{name} must be positive")
        if self.reconnect_base_ms > self.reconnect_max_ms:
            raise InvariantBroken("PeerLimits.reconnect_base_ms must not exceed reconnect_max_ms")
        if self.pending_handshakes_max > self.inbound_connections_max:
            raise InvariantBroken("PeerLimits.pending_handshakes_max must not exceed inbound_connections_max")


def compute_backoff_ms(attempt: int, limits: PeerLimits, jitter_fraction: float) -> int:
    """Delay before reconnect attempt `attempt` (0 = first retry): exponential, capped, with "equal jitter".

    The ceiling doubles per attempt up to reconnect_max_ms; the delay is uniform in [ceiling/2, ceiling], so
    nodes that lost a peer together do not all redial in the same instant, and no delay is ever near zero.
    """
    if attempt < 0 or not 0.0 <= jitter_fraction <= 1.0:
        raise InvariantBroken(f"bad backoff input: attempt={attempt}, jitter={jitter_fraction}")
    ceiling = min(limits.reconnect_max_ms, limits.reconnect_base_ms << min(attempt, 32))
    half = ceiling // 2
    return half + int((ceiling - half) * jitter_fraction)


@dataclass(frozen=True)
class Ban:
    """Why and until when a peer is refused."""

    until_ms: int  # monotonic milliseconds at which the ban ends
    reason: str  # what the peer did


@dataclass
class BanList:
    """Banned identities. Bounded: only genesis identities are ever banned, at most 128."""

    duration_ms: int
    _bans: dict[PeerId, Ban] = field(default_factory=dict)

    def ban(self, peer: PeerId, now_ms: int, reason: str) -> Ban:
        """Ban `peer` from now for the configured duration (a later ban extends an earlier one)."""
        ban = Ban(now_ms + self.duration_ms, reason)
        self._bans[peer] = ban
        return ban

    def get_ban(self, peer: PeerId, now_ms: int) -> Ban | None:
        """The peer's current ban, or None; expired bans are forgotten here."""
        ban = self._bans.get(peer)
        if ban is not None and ban.until_ms <= now_ms:
            del self._bans[peer]
            return None
        return ban

    def is_banned(self, peer: PeerId, now_ms: int) -> bool:
        return self.get_ban(peer, now_ms) is not None

    def unban(self, peer: PeerId) -> None:
        self._bans.pop(peer, None)
