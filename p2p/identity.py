"""Who is on the network: peer identities pinned to the genesis, and who dials whom.

Every node is named by its role and index in the genesis (`validators[i]` or `observers[j]`) and proves that
name with the Ed25519 node key listed there. Validators form a full mesh in which the lower index dials the
higher, so two validators never hold two links to each other; observers dial every validator and never
listen. These rules are pure functions of the genesis, so both ends of a link agree on them without talking.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    index: int  # position in genesis.validators or genesis.observers

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


class PeerDirectory:
    """The genesis's node keys and peer addresses, looked up by identity or by key."""

    def __init__(self, genesis: Genesis) -> None:
        self.validators: tuple[PeerId, ...] = tuple(
            PeerId.validator(i) for i in range(len(genesis.validators))
        )
        self.observers: tuple[PeerId, ...] = tuple(PeerId.observer(j) for j in range(len(genesis.observers)))
        self._keys: dict[PeerId, bytes] = {}
        self._addresses: dict[PeerId, str] = {}
        for peer, validator in zip(self.validators, genesis.validators, strict=True):
            self._keys[peer] = validator.node_key_bytes
            self._addresses[peer] = validator.peer_address
        for peer, observer in zip(self.observers, genesis.observers, strict=True):
            self._keys[peer] = observer.node_key_bytes
        self._by_key = {key: peer for peer, key in self._keys.items()}

    def __iter__(self) -> Iterator[PeerId]:
        yield from self.validators
        yield from self.observers

    def is_known(self, peer: PeerId) -> bool:
        return peer in self._keys

    def get_key(self, peer: PeerId) -> bytes | None:
        """The node key the genesis pins to this identity, or None for an identity it does not list."""
        return self._keys.get(peer)

    def get_peer_by_key(self, public_key: bytes) -> PeerId | None:
        return self._by_key.get(public_key)

    def get_address(self, peer: PeerId) -> str | None:
        """The genesis `host:port` where a validator listens; observers have none."""
        return self._addresses.get(peer)


def is_dialer(local: PeerId, remote: PeerId) -> bool:
    """True when `local` is the end that opens the connection to `remote`.

    Validator to validator: the lower index dials. Observer to validator: the observer dials. Nobody dials an
    observer, and observers never link to each other.
    """
    if not remote.is_validator:
        return False
    if local.is_validator:
        return local.index < remote.index
    return True


def compute_dial_targets(directory: PeerDirectory, local: PeerId) -> list[PeerId]:
    """The peers `local` keeps an outgoing connection to, in index order."""
    return [peer for peer in directory.validators if peer != local and is_dialer(local, peer)]
