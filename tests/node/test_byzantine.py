"""The test-only Byzantine behaviours (node/byzantine.py) against real replicas: a real primary or replica
makes the honest message, the behaviour tampers with it, and what it sends crosses the wire codec to real
replicas, which must refuse every invalid proposal, keep every conflicting pair as evidence, and accept what
is merely a second valid block. The real network runs them in tests/integration/test_byzantine.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.events import (
    BROADCAST,
    MessageReceived,
    Output,
    ReportMisbehaviour,
    Send,
    Tick,
    TimerFired,
    TxReceived,
)
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    Prepare,
    PrePrepare,
    compute_signing_digest,
    decode_message,
    encode_message,
)
from consensus.replica import RecoveredState, Replica, ReplicaConfig
from core.devkeys import dev_node_key
from core.errors import CodecError, ConfigError
from core.genesis import Genesis
from core.keys import is_valid_signature
from node.byzantine import (
    BYZANTINE_ENV,
    INVALID_BLOCK_KINDS,
    ByzantineBehaviour,
    parse_behaviour,
)
from tests.consensus.pbft_sim import (
    CHAIN_ID,
    GENESIS_HASH,
    GENESIS_ROOT,
    GENESIS_TIME_MS,
    SIM_PARAMS,
    make_tx,
)
from tests.node.nodekit import GENESIS

N = 4
KEYS = [dev_node_key("validator", i) for i in range(N)]
NOW = GENESIS_TIME_MS + 100_000
PEERS = (1, 2, 3)


def make_replica(index: int) -> Replica:
    config = ReplicaConfig(
        CHAIN_ID, GENESIS_HASH, GENESIS_TIME_MS, tuple(k.public_key for k in KEYS), SIM_PARAMS, index
    )
    replica = Replica(config, KEYS[index], RecoveredState.genesis(GENESIS_ROOT))
    replica.start(NOW)
    replica.step(Tick(NOW))
    return replica


def byzantine(behaviour: str, index: int = 0, from_height: int = 1) -> ByzantineBehaviour:
    return ByzantineBehaviour(behaviour, from_height, CHAIN_ID, KEYS[index], SIM_PARAMS)


def propose() -> PrePrepare:
    """The honest proposal of validator 0, the primary of view 0, for height 1 (with one transaction)."""
    primary = make_replica(0)
    primary.step(TxReceived((make_tx(7),)))
    primary.step(Tick(NOW + SIM_PARAMS.batch_wait_ms))
    pp = sent(primary.step(TimerFired("batch")), PrePrepare)[0]
    assert isinstance(pp, PrePrepare) and pp.height == 1 and pp.tx_ids == (make_tx(7).tx_id,)
    return pp


def wire(message: Message) -> Message:
    return decode_message(encode_message(message), params=SIM_PARAMS)


def receive(replica: Replica, peer: int, message: Message) -> list[Output]:
    """One message over the wire codec; a proposal's transaction reaches the replica first, as gossip."""
    if isinstance(message, PrePrepare):
        replica.step(TxReceived((make_tx(7),)))
    return replica.step(MessageReceived(peer, wire(message)))


def sent(outputs: list[Output], kind: type) -> list[Message]:
    return [o.message for o in outputs if isinstance(o, Send) and isinstance(o.message, kind)]


def is_signed(message: Message) -> bool:
    digest = compute_signing_digest(CHAIN_ID, message)
    return is_valid_signature(KEYS[message.sender].public_key, digest, message.signature)


def test_the_variable_names_a_behaviour_and_a_first_height() -> None:
    assert parse_behaviour("double_vote") == ("double_vote", 1)
    assert parse_behaviour("invalid_block@12") == ("invalid_block", 12)
    for bad in ("silent", "equivocate@", "equivocate@0", "equivocate@-1", "equivocate@x", "EQUIVOCATE"):
        with pytest.raises(ConfigError, match=BYZANTINE_ENV):
            parse_behaviour(bad)


def test_it_is_refused_outside_a_devnet_and_absent_when_unset() -> None:
    key = KEYS[1]
    assert ByzantineBehaviour.from_environment(GENESIS, key, environ={}) is None
    hook = ByzantineBehaviour.from_environment(GENESIS, key, environ={BYZANTINE_ENV: "double_vote@3"})
    assert hook is not None and (hook.behaviour, hook.from_height) == ("double_vote", 3)
    main: Genesis = GENESIS.model_copy(update={"chain_id": "carbon-main"})
    with pytest.raises(ConfigError, match="test hook, refused on chain 'carbon-main'"):
        ByzantineBehaviour.from_environment(main, key, environ={BYZANTINE_ENV: "double_vote"})


def test_below_its_first_height_and_for_other_messages_it_is_honest() -> None:
    pp = propose()
    vote = Prepare(0, 1, pp.block_hash, 0, b"")
    checkpoint = Checkpoint(4, b"\x01" * 32, b"\x02" * 32, 0, b"")
    for behaviour in ("equivocate", "double_vote", "invalid_block"):
        for message in (pp, vote):
            assert byzantine(behaviour, from_height=2).tamper(message, PEERS) == [(p, message) for p in PEERS]
        assert byzantine(behaviour).tamper(checkpoint, PEERS) == [(p, checkpoint) for p in PEERS]
    assert byzantine("invalid_block").tamper(pp, ()) == []  # no validator connected: nothing to send


@pytest.mark.parametrize("kind", INVALID_BLOCK_KINDS)
def test_every_invalid_block_is_signed_and_refused_by_an_honest_replica(kind: str) -> None:
    pp = propose()
    honest_replica = make_replica(1)
    assert sent(receive(make_replica(1), 0, pp), Prepare)  # the real proposal is accepted: the control
    offset = INVALID_BLOCK_KINDS.index(kind)
    hook = byzantine("invalid_block", from_height=pp.height - offset)  # this height gets this kind
    sends = hook.tamper(pp, PEERS)
    assert [peer for peer, _ in sends] == list(PEERS) and len({m for _, m in sends}) == 1  # the same for all
    invalid = sends[0][1]
    assert isinstance(invalid, PrePrepare) and invalid.block_hash != pp.block_hash and is_signed(invalid)
    if kind == "too_many_txs":  # over the size limit: the frame never reaches the replica
        with pytest.raises(CodecError, match="tx_ids"):
            wire(invalid)
        return
    outputs = receive(honest_replica, 0, invalid)
    assert not sent(outputs, Prepare)
    reports = [o.reason for o in outputs if isinstance(o, ReportMisbehaviour)]
    # a fault of the block itself is reported; a block that only does not fit our chain is not
    assert bool(reports) == (kind in ("tx_root", "height")), reports


def test_an_equivocating_primary_splits_its_proposal_and_the_last_validator_holds_both() -> None:
    pp = propose()
    hook = byzantine("equivocate")
    sends = hook.tamper(pp, PEERS)
    assert [peer for peer, _ in sends] == [1, 2, 3, 3]
    other = sends[1][1]
    assert [m for _, m in sends] == [pp, other, other, pp]
    assert isinstance(other, PrePrepare) and other.block_hash != pp.block_hash and is_signed(other)
    assert sent(receive(make_replica(2), 0, other), Prepare)  # a valid block, only a second one
    last = make_replica(3)
    receive(last, 0, other)
    outputs = receive(last, 0, pp)
    assert [o.evidence for o in outputs if isinstance(o, ReportMisbehaviour)] == [(other, pp)]
    assert hook.tamper(pp, PEERS) == [(peer, pp) for peer in PEERS]  # once only


def test_an_equivocating_replica_signs_two_prepares_ahead_once() -> None:
    pp = propose()
    [vote] = sent(receive(make_replica(1), 0, pp), Prepare)
    hook = byzantine("equivocate", index=1)
    sends = hook.tamper(vote, (0, 2, 3))
    assert sends[:3] == [(peer, vote) for peer in (0, 2, 3)]
    fakes = {m for _, m in sends[3:]}
    assert [peer for peer, _ in sends[3:]] == [0, 2, 3, 0, 2, 3] and len(fakes) == 2
    ahead = vote.height + SIM_PARAMS.pipeline_depth + 1  # a height no replica can have committed yet
    for fake in fakes:
        assert isinstance(fake, Prepare) and (fake.view, fake.height, fake.sender) == (0, ahead, 1)
        assert is_signed(fake)
    assert hook.tamper(vote, (0, 2, 3)) == [(peer, vote) for peer in (0, 2, 3)]  # once only


@pytest.mark.parametrize("kind", [Prepare, Commit])
def test_a_double_voter_sends_two_votes_for_one_slot_and_the_last_validator_holds_both(kind: type) -> None:
    vote = kind(0, 1, b"\x01" * 32, 1, b"")
    vote = replace(vote, signature=KEYS[1].sign(compute_signing_digest(CHAIN_ID, vote)))
    hook = byzantine("double_vote", index=1)
    sends = hook.tamper(vote, (0, 2, 3))
    forged = sends[1][1]
    assert sends == [(0, vote), (2, forged), (3, vote), (3, forged)]
    assert (forged.view, forged.height, forged.sender) == (0, 1, 1) and forged.block_hash != vote.block_hash
    assert is_signed(forged) and hook.tamper(vote, (0, 2, 3)) == sends  # every time, the same forgery
    last = make_replica(3)
    receive(last, 1, vote)
    [report] = [o for o in receive(last, 1, forged) if isinstance(o, ReportMisbehaviour)]
    assert report.evidence == (vote, forged)
    assert hook.tamper(vote, (2,)) == [(2, vote), (2, forged)]  # one peer: it gets both
    assert BROADCAST not in [peer for peer, _ in sends]
