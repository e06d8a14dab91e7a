"""Limits, reconnect backoff, the ban list and who may start a handshake: the peer layer's policy, as pure code.

Time is an input here (monotonic milliseconds) and so is randomness (a jitter fraction), which keeps these
rules testable without clocks or sleeps; p2p.network feeds them `time.monotonic()` and `random.random()`.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
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
    # An unauthenticated dialler must send each handshake message (and its HTTP request) within this.
    handshake_step_timeout_ms: int = 1_000
    inbound_connections_max: int = 160  # authenticated plus pending inbound connections
    pending_handshakes_max: int = 64  # inbound connections not yet authenticated (CVE-2020-5303)
    pending_reserved_for_members: int = 32  # of those, the room only members' addresses may use
    pending_per_address_max: int = 4  # pending from one address (an IPv6 /64) outside the genesis
    pending_per_member_address_max: int = 32  # pending from one address of a genesis validator
    pending_per_identity_max: int = 2  # pending that named the same identity in their hello
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
        if self.pending_reserved_for_members >= self.pending_handshakes_max:
            raise InvariantBroken("PeerLimits.pending_reserved_for_members must leave room for others")
        if self.pending_per_address_max > self.pending_handshakes_max - self.pending_reserved_for_members:
            raise InvariantBroken("PeerLimits.pending_per_address_max exceeds the room left to others")
        if self.pending_per_member_address_max > self.pending_handshakes_max:
            raise InvariantBroken("PeerLimits.pending_per_member_address_max exceeds pending_handshakes_max")


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


# --- who may start a handshake -----------------------------------------------------------------------------


def split_hosts(addresses: Iterable[str]) -> list[str]:
    """The host parts of `host:port` addresses (brackets of IPv6 literals removed), sorted and unique."""
    return sorted({address.rsplit(":", 1)[0].strip("[]") for address in addresses})


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def compute_address_key(host: str) -> str:
    """The unit the per-address limits count: an IPv4 address, an IPv6 /64 (one site's usual allocation),
    the IPv4 address inside an IPv4-mapped IPv6 address; anything unparsable counts as itself."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class _Pending:
    key: str  # compute_address_key of the remote address
    member: bool  # the address is one a genesis validator listens on
    claimed: PeerId | None = None  # the identity its hello named; None while it is silent


@dataclass(frozen=True)
class Admission:
    """The answer to one inbound connection that wants to start a handshake."""

    ticket: int | None  # its handle for greet()/release(); None = refused (HTTP 503)
    evicted: tuple[int, ...] = ()  # silent pending connections to drop now to make room for it


class PendingHandshakes:
    """The bounded set of inbound connections between the HTTP upgrade and the end of the handshake.

    A flood of connections that upgrade and then stay silent must not keep members out (issue: 40 such
    loops kept a restarted validator from re-linking). Four rules, checked on every arrival:

    1. Per address: at most pending_per_address_max from one address (pending_per_member_address_max from an
       address a genesis validator listens on, since a whole consortium may share one host or NAT).
    2. Room for members: addresses outside the genesis share only pending_handshakes_max minus
       pending_reserved_for_members; members' addresses may use all of it.
    3. The silent make room: when an arrival finds its address or its pool full, the oldest pending
       connection there that has not yet sent its hello is evicted, not the arrival. A genuine peer sends its
       hello within one round trip of the upgrade, long before pending_per_*_max newer arrivals from its
       address evict it; a silent one only ever holds a slot until someone needs it. Only when every
       connection in the full group has spoken is the arrival refused.
    4. Per claimed identity: at most pending_per_identity_max connections that sent a hello naming the same
       identity (greet() refuses more); with the short step deadline of the shell this bounds the slots that
       hellos without a following auth can hold.

    Evicted and finished connections are release()d; releasing twice is harmless.
    """

    def __init__(self, limits: PeerLimits, member_hosts: Iterable[str] = ()) -> None:
        self.limits = limits
        self._member_keys = frozenset(compute_address_key(host) for host in member_hosts)
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # oldest first
        self._next_ticket = 1

    def __len__(self) -> int:
        return len(self._pending)

    def add_member_hosts(self, hosts: Iterable[str]) -> None:
        """Treat these addresses (IP literals) as members' too."""
        self._member_keys |= {compute_address_key(host) for host in hosts}

    def admit(self, host: str) -> Admission:
        """Decide on a connection from `host`; the evicted tickets are already released."""
        limits = self.limits
        key = compute_address_key(host)
        member = key in self._member_keys
        same_address = sum(1 for entry in self._pending.values() if entry.key == key)
        non_members = sum(1 for entry in self._pending.values() if not entry.member)
        address_max = limits.pending_per_member_address_max if member else limits.pending_per_address_max
        # Which silent connections may make room, in order of preference; None = there is room.
        victims: list[Callable[[_Pending], bool]] | None = None
        if same_address >= address_max:
            victims = [lambda entry: entry.key == key]
        elif (
            not member and non_members >= limits.pending_handshakes_max - limits.pending_reserved_for_members
        ):
            victims = [_is_non_member]
        elif len(self._pending) >= limits.pending_handshakes_max:
            # The reserved room is the members': non-members' silent connections go first.
            victims = [_is_non_member, _is_any] if member else [_is_non_member]
        evicted: tuple[int, ...] = ()
        if victims is not None:
            victim = next((t for rule in victims if (t := self._oldest_silent(rule)) is not None), None)
            if victim is None:
                return Admission(None)
            self.release(victim)
            evicted = (victim,)
        ticket = self._next_ticket
        self._next_ticket += 1
        self._pending[ticket] = _Pending(key, member)
        return Admission(ticket, evicted)

    def greet(self, ticket: int, claimed: PeerId) -> bool:
        """The connection sent a hello naming `claimed`; False when that identity has too many pending."""
        entry = self._pending.get(ticket)
        if entry is None:
            return False
        same = sum(1 for other in self._pending.values() if other.claimed == claimed)
        if same >= self.limits.pending_per_identity_max:
            return False
        entry.claimed = claimed
        return True

    def release(self, ticket: int) -> None:
        """The connection finished its handshake, failed, or was evicted."""
        self._pending.pop(ticket, None)

    def _oldest_silent(self, matches: Callable[[_Pending], bool]) -> int | None:
        for ticket, entry in self._pending.items():
            if entry.claimed is None and matches(entry):
                return ticket
        return None


def _is_non_member(entry: _Pending) -> bool:
    return not entry.member


def _is_any(entry: _Pending) -> bool:
    return True
