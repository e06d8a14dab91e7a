"""TEST ONLY: a Byzantine validator, for tests of a real network (devnet chains only).

CARBONCHAIN_TEST_BYZANTINE=<behaviour>[@<height>] in a validator's environment makes it lie on the wire from
that height on (default 1). Its replica stays honest: it persists, tallies and executes what an honest one
would; only what its shell sends is changed, peer by peer, by `ByzantineBehaviour.tamper` (no I/O: a
message and the peers it goes to in, what to send to whom out). Every forged message is signed with the
validator's own key, so it passes the signature check and reaches the rules behind it. The behaviours:

- `equivocate`: once, at its first PRE-PREPARE or PREPARE at or above the height. As the primary it proposes
  two blocks for the slot (the second one's time 1 ms later, valid too): the first half of the other
  validators, in number order, get the real one, the others the second one, and the last gets both. As a
  replica it also signs PREPAREs for two made-up blocks `pipeline_depth + 1` heights ahead, sent to every
  validator: no replica can have committed that height yet, so every one that receives them holds the
  conflict. Either way the evidence of an equivocation (node/evidence.py) reaches the chain.
- `double_vote`: every PREPARE and COMMIT it signs is doubled by one for a made-up block of the same view
  and height: the other validators, in number order, get the real vote and the made-up one in turn, and the
  last gets both (so it holds the pair, if the height is not delivered there yet).
- `invalid_block`: every block it proposes as the primary is replaced, for every validator, by an invalid
  one, with the defect `INVALID_BLOCK_KINDS[(height - from_height) % len(INVALID_BLOCK_KINDS)]` (the first
  invalid proposal has a wrong tx_root); `_INVALID_PROPOSALS` says how honest replicas refuse each.

The node refuses to start with the variable set on a chain that is not a devnet (ConfigError), and logs a
warning when it is in effect. Unset, nothing here runs: the shell's send path is the honest one.
docs/TESTING.md ("A Byzantine validator") has what the honest validators do with each, and the tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from consensus.messages import Commit, Message, Prepare, PrePrepare, compute_signing_digest
from core.devkeys import is_devnet_chain_id
from core.errors import ConfigError
from core.genesis import ConsensusParams, Genesis
from core.hashing import merkle_root
from core.keys import SigningKey

log = logging.getLogger(__name__)

BYZANTINE_ENV = "CARBONCHAIN_TEST_BYZANTINE"
BEHAVIOURS = ("equivocate", "double_vote", "invalid_block")
Outgoing = list[tuple[int, Message]]  # (validator number, message), in sending order
_Signed = TypeVar("_Signed", bound=PrePrepare | Prepare | Commit)


def _scrambled(value: bytes) -> bytes:
    """A deterministic 32-byte value that is not `value`: a made-up block hash or root."""
    return hashlib.sha256(b"carbonchain-test-byzantine" + value).digest()


def _with_header(pp: PrePrepare, **changes: Any) -> PrePrepare:
    return replace(pp, header=replace(pp.header, **changes))


def _too_many_txs(pp: PrePrepare, params: ConsensusParams) -> PrePrepare:
    """One transaction id over block_txs_max (made-up ids after the real ones), header counts to match."""
    extra = params.block_txs_max + 1 - len(pp.tx_ids)
    tx_ids = pp.tx_ids + tuple(_scrambled(i.to_bytes(4, "big")) for i in range(extra))
    header = replace(pp.header, tx_count=len(tx_ids), tx_root=merkle_root(list(tx_ids)))
    return replace(pp, header=header, tx_ids=tx_ids)


# kind -> the invalid proposal made of a real one (unsigned), and how an honest replica refuses it
_INVALID_PROPOSALS: dict[str, Callable[[PrePrepare, ConsensusParams], PrePrepare]] = {
    # a fault of the block itself: refused and reported ("invalid pre-prepare ...: tx_root does not match")
    "tx_root": lambda pp, _: _with_header(pp, tx_root=_scrambled(pp.header.tx_root)),
    # does not fit the replica's own roots: refused without an accusation (it could be the replica's state)
    "state_root": lambda pp, _: _with_header(pp, state_root=_scrambled(pp.header.state_root)),
    # the header's height is not the slot's: refused and reported on arrival
    "height": lambda pp, _: _with_header(pp, height=pp.header.height + 1),
    # does not link to the previous block: refused without an accusation (a primary of an older view)
    "prev_hash": lambda pp, _: _with_header(pp, prev_hash=_scrambled(pp.header.prev_hash)),
    # beyond clock_drift_max_ms ahead: refused without an accusation (the receiver's clock may be off)
    "time_ms": lambda pp, p: _with_header(pp, time_ms=pp.header.time_ms + 3 * p.clock_drift_max_ms + 1),
    # over the size limit: decode_message refuses the frame, and the peer layer drops and bans the sender
    "too_many_txs": _too_many_txs,
}
INVALID_BLOCK_KINDS = tuple(_INVALID_PROPOSALS)


def parse_behaviour(text: str) -> tuple[str, int]:
    """`<behaviour>[@<height>]` as (behaviour, from_height); ConfigError if it is neither."""
    behaviour, at, height = text.strip().partition("@")
    if behaviour not in BEHAVIOURS:
        raise ConfigError(
            f"{BYZANTINE_ENV} must be one of {', '.join(BEHAVIOURS)} (then @<height>), not {text!r}"
        )
    if not at:
        return behaviour, 1
    if not height.isdigit() or int(height) < 1:
        raise ConfigError(f"{BYZANTINE_ENV}: {height!r} after @ is not a height (1 or more)")
    return behaviour, int(height)


class ByzantineBehaviour:
    """What a Byzantine validator sends instead of what its honest replica asked for."""

    def __init__(
        self, behaviour: str, from_height: int, chain_id: str, key: SigningKey, params: ConsensusParams
    ) -> None:
        self.behaviour = behaviour
        self.from_height = from_height
        self._chain_id = chain_id
        self._key = key
        self._params = params
        self._equivocated = False  # `equivocate` acts once

    @classmethod
    def from_environment(
        cls, genesis: Genesis, key: SigningKey, environ: Mapping[str, str] = os.environ
    ) -> ByzantineBehaviour | None:
        """The behaviour BYZANTINE_ENV names, None when it is unset; ConfigError outside a devnet."""
        text = environ.get(BYZANTINE_ENV, "")
        if not text:
            return None
        if not is_devnet_chain_id(genesis.chain_id):
            raise ConfigError(f"{BYZANTINE_ENV} is a test hook, refused on chain {genesis.chain_id!r}")
        behaviour, from_height = parse_behaviour(text)
        log.warning("TEST HOOK: this validator is Byzantine (%s from height %d)", behaviour, from_height)
        return cls(behaviour, from_height, genesis.chain_id, key, genesis.consensus)

    def tamper(self, message: Message, peers: Sequence[int]) -> Outgoing:
        """The messages to send, and to whom, instead of `message` to each of `peers` (in number order)."""
        honest: Outgoing = [(peer, message) for peer in peers]
        if not peers or not isinstance(message, PrePrepare | Prepare | Commit):
            return honest
        if message.height < self.from_height:
            return honest
        if self.behaviour == "equivocate":
            return self._equivocate(message, peers)
        if self.behaviour == "double_vote" and isinstance(message, Prepare | Commit):
            forged = self._sign(replace(message, block_hash=_scrambled(message.block_hash)))
            sends: Outgoing = [(peer, forged if i % 2 else message) for i, peer in enumerate(peers[:-1])]
            return [*sends, (peers[-1], message), (peers[-1], forged)]
        if self.behaviour == "invalid_block" and isinstance(message, PrePrepare):
            kind = INVALID_BLOCK_KINDS[(message.height - self.from_height) % len(INVALID_BLOCK_KINDS)]
            invalid = self._sign(_INVALID_PROPOSALS[kind](message, self._params))
            return [(peer, invalid) for peer in peers]
        return honest

    def _equivocate(self, message: PrePrepare | Prepare | Commit, peers: Sequence[int]) -> Outgoing:
        honest: Outgoing = [(peer, message) for peer in peers]
        if self._equivocated or isinstance(message, Commit):
            return honest
        self._equivocated = True
        if isinstance(message, PrePrepare):
            other = self._sign(_with_header(message, time_ms=message.header.time_ms + 1))
            half = len(peers) // 2
            sends: Outgoing = [(peer, message if i < half else other) for i, peer in enumerate(peers)]
            return [*sends, (peers[-1], message)]
        ahead = message.height + self._params.pipeline_depth + 1
        for tag in (b"equivocation-1", b"equivocation-2"):
            fake = self._sign(replace(message, height=ahead, block_hash=_scrambled(tag + message.block_hash)))
            honest += [(peer, fake) for peer in peers]
        return honest

    def _sign(self, message: _Signed) -> _Signed:
        return replace(message, signature=self._key.sign(compute_signing_digest(self._chain_id, message)))
