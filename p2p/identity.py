"""Who is on the network: peer identities pinned to the genesis, and who dials whom.

Every node is named by its role and index and proves that name with its Ed25519 node key. An observer's
index is its position in the genesis `observers`; a validator's is its permanent validator number
(core/validators.py: the genesis validators are 0..n-1, one added by governance gets the next unused
number). The validators a node admits are those of the genesis until the node learns from the chain that the
set changed (`PeerDirectory.update_validators`: the set in force plus an approved change's new members).
Validators form a full mesh in which the lower number dials the higher, so two validators never hold two
links to each other; observers dial every validator and never listen. These rules are pure functions of
the directory, so both ends of a link agree on them without talking.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.genesis import Genesis


class PeerRole(StrEnum):
    """A node's kind; the value is its spelling on the wire."""

    VALIDATOR = "validator"
    OBSERVER = "observer"


@dataclass(frozen=True, order=True)
class PeerId:
    """A node's name: its role and its position in that role's genesis list."""

    role: PeerRole  # validator or observer
    index: int  # a validator's number, an observer's position in genesis.observers

    @classmethod
    def validator(cls, index: int) -> PeerId:
        return cls(PeerRole.VALIDATOR, index)

    @classmethod
    def observer(cls, index: int) -> PeerId:
        return cls(PeerRole.OBSERVER, index)

    @property
    def is_validator(self) -> bool:
        return self.role is PeerRole.VALIDATOR

    def __str__(self) -> str:
        return f"{self.role.value}-{self.index}"


@dataclass(frozen=True, slots=True)
class ValidatorEntry:
    """A validator as the peer layer needs it: its number, node key and where it listens."""

    number: int
    node_key: bytes
    peer_address: str


@dataclass(frozen=True, slots=True)
class DirectoryChange:
    """What `PeerDirectory.update_validators` changed."""

    added: tuple[PeerId, ...]  # validators new to the directory, or known under a new key
    dropped: tuple[PeerId, ...]  # validators gone, or whose old key is no longer admitted
    moved: tuple[PeerId, ...]  # validators with a new peer address


class PeerDirectory:
    """The node keys and peer addresses of the nodes we admit, looked up by identity or by key."""

    def __init__(self, genesis: Genesis, validators: Sequence[ValidatorEntry] | None = None) -> None:
        self.observers: tuple[PeerId, ...] = tuple(PeerId.observer(j) for j in range(len(genesis.observers)))
        self._observer_keys = {
            peer: observer.node_key_bytes
            for peer, observer in zip(self.observers, genesis.observers, strict=True)
        }
        self.validators: tuple[PeerId, ...] = ()
        self._keys: dict[PeerId, bytes] = {}
        self._addresses: dict[PeerId, str] = {}
        self._by_key: dict[bytes, PeerId] = {}
        if validators is None:
            validators = [
                ValidatorEntry(i, v.node_key_bytes, v.peer_address) for i, v in enumerate(genesis.validators)
            ]
        self.update_validators(validators)

    def update_validators(self, validators: Sequence[ValidatorEntry]) -> DirectoryChange:
        """Admit exactly these validators (and the genesis observers) from now on."""
        entries = sorted(validators, key=lambda entry: entry.number)
        if len({entry.number for entry in entries}) != len(entries):
            raise ValueError("validator numbers must be distinct")
        old_keys = {peer: key for peer, key in self._keys.items() if peer.is_validator}
        old_addresses = dict(self._addresses)
        new_keys = {PeerId.validator(entry.number): entry.node_key for entry in entries}
        self.validators = tuple(new_keys)
        self._keys = {**new_keys, **self._observer_keys}
        self._addresses = {PeerId.validator(entry.number): entry.peer_address for entry in entries}
        self._by_key = {key: peer for peer, key in self._keys.items()}
        return DirectoryChange(
            added=tuple(peer for peer, key in new_keys.items() if old_keys.get(peer) != key),
            dropped=tuple(peer for peer, key in old_keys.items() if new_keys.get(peer) != key),
            moved=tuple(
                peer
                for peer, address in self._addresses.items()
                if peer in old_addresses and old_addresses[peer] != address
            ),
        )

    def __iter__(self) -> Iterator[PeerId]:
        yield from self.validators
        yield from self.observers

    def is_known(self, peer: PeerId) -> bool:
        return peer in self._keys

    def get_key(self, peer: PeerId) -> bytes | None:
        """The node key admitted for this identity, or None for an identity we do not admit."""
        return self._keys.get(peer)

    def get_peer_by_key(self, public_key: bytes) -> PeerId | None:
        return self._by_key.get(public_key)

    def get_address(self, peer: PeerId) -> str | None:
        """The `host:port` where a validator listens; observers have none."""
        return self._addresses.get(peer)


def is_dialer(local: PeerId, remote: PeerId) -> bool:
    """True when `local` is the end that opens the connection to `remote`.

    Validator to validator: the lower number dials. Observer to validator: the observer dials. Nobody dials an
    observer, and observers never link to each other.
    """
    if not remote.is_validator:
        return False
    if local.is_validator:
        return local.index < remote.index
    return True


def compute_dial_targets(directory: PeerDirectory, local: PeerId) -> list[PeerId]:
    """The peers `local` keeps an outgoing connection to, in number order."""
    return [peer for peer in directory.validators if peer != local and is_dialer(local, peer)]
