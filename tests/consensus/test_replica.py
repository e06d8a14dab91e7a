"""Unit vectors for the replica: given a state and one input, the exact outputs (pre / event / post)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pbft_sim import CHAIN_ID, GENESIS_HASH, GENESIS_ROOT, GENESIS_TIME_MS, SIM_PARAMS, make_tx

from consensus import log as clog
from consensus.events import (
    BROADCAST,
    REFUSED_EXPIRED,
    REFUSED_FULL,
    TIMER_PROGRESS,
    TIMER_TX_FETCH,
    BlockExecuted,
    BlocksFetched,
    CancelTimer,
    ExecuteBlock,
    FetchTxs,
    Halt,
    MessageReceived,
    Output,
    Persist,
    ReportMisbehaviour,
    Send,
    Tick,
    TimerFired,
    TxReceived,
    TxRefused,
    TxsFetched,
)
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    Prepare,
    PrePrepare,
    ViewChange,
    compute_signing_digest,
)
from consensus.pool import PoolLimits
from consensus.replica import RecoveredState, Replica, ReplicaConfig, Status
from core.block import (
    EMPTY_ROOT,
    Block,
    BlockHeader,
    CommitCertificate,
    compute_commit_digest,
    compute_tx_root,
    verify_commit_certificate,
)
from core.devkeys import dev_node_key
from core.hashing import Domain, tagged_hash
from core.tx import SignedTx
from core.validators import ValidatorSet

N = 4
KEYS = [dev_node_key("validator", i) for i in range(N)]
PUBLIC = tuple(k.public_key for k in KEYS)
VSET = ValidatorSet.of_keys(PUBLIC)
VSET_HASH = VSET.set_hash
NOW = GENESIS_TIME_MS + 100_000


def make_replica(index: int, recovered: RecoveredState | None = None) -> Replica:
    config = ReplicaConfig(CHAIN_ID, GENESIS_HASH, GENESIS_TIME_MS, PUBLIC, SIM_PARAMS, index)
    replica = Replica(config, KEYS[index], recovered or RecoveredState.genesis(GENESIS_ROOT))
    replica.start(NOW)
    replica.step(Tick(NOW))
    return replica


def sign(message: Message) -> Message:
    return replace(message, signature=KEYS[message.sender].sign(compute_signing_digest(CHAIN_ID, message)))


def make_block(height: int = 1, txs: tuple = (), time_ms: int = NOW) -> Block:
    header = BlockHeader(
        chain_id=CHAIN_ID,
        height=height,
        prev_hash=GENESIS_HASH,
        time_ms=time_ms,
        proposer=0,
        tx_count=len(txs),
        tx_root=compute_tx_root(txs),
        state_height=0,
        state_root=GENESIS_ROOT,
        results_root=EMPTY_ROOT,
        validators_hash=VSET_HASH,
        next_validators_hash=VSET_HASH,
    )
    return Block(header, txs)


BLOCKS: dict[bytes, tuple[SignedTx, ...]] = {}  # transactions of the blocks proposed in these tests


def pre_prepare(block: Block, view: int = 0) -> PrePrepare:
    BLOCKS[block.block_hash] = block.txs
    return sign(PrePrepare.of_block(view, block, view % N))


def deliver(replica: Replica, peer: int, message: Message) -> list[Output]:
    """One message; a PRE-PREPARE's transactions reach the replica first, as gossip brings them."""
    if isinstance(message, PrePrepare):
        for tx in BLOCKS.get(message.block_hash, ()):
            replica.step(TxReceived((tx,)))
    return replica.step(MessageReceived(peer, message))


def kinds(outputs: list[Output]) -> list[str]:
    return [
        type(o).__name__ + (f":{type(o.message).__name__}" if isinstance(o, Send) else "") for o in outputs
    ]


def test_pre_prepare_is_persisted_then_prepare_is_broadcast() -> None:
    replica = make_replica(1)
    block = make_block(txs=(make_tx(1),))
    outputs = deliver(replica, 0, pre_prepare(block))
    assert kinds(outputs)[:2] == ["Persist", "Send:Prepare"]
    persist, send = outputs[0], outputs[1]
    assert isinstance(persist, Persist) and isinstance(send, Send)
    assert send.to == BROADCAST and send.message.block_hash == block.block_hash
    logged = clog.load_persisted_state(dict((r.key, r.value) for r in persist.records), params=SIM_PARAMS)
    assert logged.votes[1] == clog.VoteRecord(0, clog.PHASE_PREPARE, block.block_hash)


def test_quorum_of_prepares_leads_to_commit_and_quorum_of_commits_to_execution() -> None:
    replica = make_replica(1)
    block = make_block(txs=(make_tx(2),))
    deliver(replica, 0, pre_prepare(block))
    # pre-prepare (primary) + our prepare + node 2's prepare = 2f+1: prepared, so COMMIT after persisting
    outputs = deliver(replica, 2, sign(Prepare(0, 1, block.block_hash, 2, b"")))
    assert kinds(outputs) == ["Persist", "Send:Commit"]
    assert deliver(replica, 3, sign(Prepare(0, 1, block.block_hash, 3, b""))) == []
    keys = [r.key for r in outputs[0].records]  # type: ignore[union-attr]
    assert any(k.startswith(b"c1/prep/") for k in keys) and any(k.startswith(b"c1/vote/") for k in keys)
    assert deliver(replica, 0, sign(Commit(0, 1, block.block_hash, 0, b""))) == []
    outputs = deliver(replica, 2, sign(Commit(0, 1, block.block_hash, 2, b"")))
    executes = [o for o in outputs if isinstance(o, ExecuteBlock)]
    assert len(executes) == 1 and executes[0].block == block
    verify_commit_certificate(executes[0].certificate, block.header, VSET)
    assert replica.delivered_height == 1


def test_bad_signature_is_dropped_and_reported() -> None:
    replica = make_replica(1)
    forged = Prepare(0, 1, b"\x01" * 32, 2, b"\x00" * 64)
    outputs = deliver(replica, 2, forged)
    assert outputs == [ReportMisbehaviour(2, "prepare signature does not verify")]


def test_pre_prepare_from_non_primary_is_reported() -> None:
    replica = make_replica(1)
    block = make_block()
    forged = sign(PrePrepare.of_block(0, block, 2))
    outputs = deliver(replica, 2, forged)
    assert [type(o) for o in outputs] == [ReportMisbehaviour]


def test_conflicting_votes_become_evidence() -> None:
    replica = make_replica(1)
    first = sign(Prepare(0, 1, b"\x01" * 32, 2, b""))
    second = sign(Prepare(0, 1, b"\x02" * 32, 2, b""))
    deliver(replica, 2, first)
    outputs = deliver(replica, 2, second)
    assert outputs == [
        ReportMisbehaviour(2, "conflicting Prepare messages signed by validator 2", (first, second))
    ]
    (evidence,) = replica.get_evidence()
    assert (evidence.signer, evidence.first, evidence.second) == (2, first, second)


def test_equivocating_primary_is_caught_and_only_the_first_block_is_prepared() -> None:
    replica = make_replica(1)
    first = pre_prepare(make_block(txs=(make_tx(3),)))
    second = pre_prepare(make_block(txs=(make_tx(4),)))
    deliver(replica, 0, first)
    outputs = deliver(replica, 0, second)
    assert [type(o) for o in outputs] == [ReportMisbehaviour]
    assert replica.get_evidence()[0].second == second


def test_invalid_block_is_not_prepared() -> None:
    replica = make_replica(1)
    block = make_block(txs=(make_tx(5),))
    bad = Block(replace(block.header, tx_root=b"\x00" * 32), block.txs)
    outputs = deliver(replica, 0, pre_prepare(bad))
    assert [type(o) for o in outputs] == [ReportMisbehaviour]
    assert "tx_root" in outputs[0].reason  # type: ignore[union-attr]


def test_expired_transaction_makes_block_invalid() -> None:
    replica = make_replica(1)
    expired = make_tx(6, valid_until=0)
    block = make_block(txs=(expired,))
    # the pool refused the expired transaction, so the replica fetches it from the proposer
    outputs = deliver(replica, 0, pre_prepare(block))
    assert [o for o in outputs if isinstance(o, FetchTxs)] == [FetchTxs(0, (expired.tx_id,))]
    outputs = replica.step(TxsFetched(0, (expired,)))
    assert [type(o) for o in outputs if not isinstance(o, CancelTimer)] == [ReportMisbehaviour]


def test_missing_transactions_are_fetched_from_the_proposer_then_from_others() -> None:
    replica = make_replica(1)
    held, missing = make_tx(20), make_tx(21)
    block = make_block(txs=(held, missing))
    pp = pre_prepare(block)
    replica.step(TxReceived((held,)))
    outputs = replica.step(MessageReceived(0, pp))
    assert [o for o in outputs if isinstance(o, FetchTxs)] == [FetchTxs(0, (missing.tx_id,))]
    assert "Send:Prepare" not in kinds(outputs)  # no vote on what we cannot check
    # the proposer does not answer: after a quarter of the view timeout, the next validator is asked
    replica.step(Tick(NOW + SIM_PARAMS.view_timeout_ms // 4))
    outputs = replica.step(TimerFired(TIMER_TX_FETCH))
    assert [o for o in outputs if isinstance(o, FetchTxs)] == [FetchTxs(2, (missing.tx_id,))]
    # a transaction nobody asked for completes nothing; the missing one does, and the vote follows
    assert "Send:Prepare" not in kinds(replica.step(TxsFetched(2, (make_tx(22),))))
    outputs = replica.step(TxsFetched(2, (missing,)))
    assert kinds(outputs)[:3] == ["CancelTimer", "Persist", "Send:Prepare"]  # nothing left to fetch
    assert replica.get_known_txs([missing.tx_id, held.tx_id]) == [missing, held]


def test_restarted_replica_never_prepares_a_conflicting_block() -> None:
    replica = make_replica(1)
    block = make_block(txs=(make_tx(7),))
    outputs = deliver(replica, 0, pre_prepare(block))
    log = {
        r.key: r.value for o in outputs if isinstance(o, Persist) for r in o.records if r.value is not None
    }
    restarted = make_replica(1, replace(RecoveredState.genesis(GENESIS_ROOT), log=log))
    other = make_block(txs=(make_tx(8),))
    outputs = deliver(restarted, 0, pre_prepare(other))
    assert not any(isinstance(o, Send) for o in outputs)
    # the same block again is accepted (its PREPARE is already signed) and goes on to COMMIT
    restarted2 = make_replica(1, replace(RecoveredState.genesis(GENESIS_ROOT), log=log))
    assert not any(isinstance(o, ReportMisbehaviour) for o in deliver(restarted2, 0, pre_prepare(block)))
    outputs = deliver(restarted2, 2, sign(Prepare(0, 1, block.block_hash, 2, b"")))
    assert kinds(outputs) == ["Persist", "Send:Commit"]


def test_primary_batches_pending_transactions_into_a_block() -> None:
    primary = make_replica(0)
    outputs = primary.step(TxReceived((make_tx(9),)))
    assert "SetTimer" in kinds(outputs)  # waits batch_wait_ms for more
    primary.step(Tick(NOW + SIM_PARAMS.batch_wait_ms))
    outputs = primary.step(TimerFired("batch"))
    assert kinds(outputs)[:2] == ["Persist", "Send:PrePrepare"]
    pp = outputs[1].message  # type: ignore[union-attr]
    assert (
        isinstance(pp, PrePrepare)
        and pp.tx_ids == (make_tx(9).tx_id,)  # the proposal names its transactions by id
        and pp.header.prev_hash == GENESIS_HASH
    )


def test_progress_timeout_probes_then_changes_view() -> None:
    replica = make_replica(1)
    replica.step(TxReceived((make_tx(10),)))  # the primary never proposes it: censorship or a dead primary
    now = NOW + SIM_PARAMS.view_timeout_ms
    replica.step(Tick(now))
    first = replica.step(TimerFired(TIMER_PROGRESS))
    assert "Send:ViewChange" not in kinds(first) and replica.status is Status.NORMAL  # first: are we behind?
    replica.step(Tick(now + SIM_PARAMS.view_timeout_ms))
    second = replica.step(TimerFired(TIMER_PROGRESS))
    assert "Send:ViewChange" in kinds(second)
    assert kinds(second).index("Persist") < kinds(second).index("Send:ViewChange")
    assert replica.status is Status.VIEW_CHANGE and replica.view == 1


def test_joins_view_change_on_f_plus_one_and_new_primary_sends_new_view() -> None:
    new_primary = make_replica(1)
    vc2 = sign(ViewChange(1, 2, None, (), b""))
    vc3 = sign(ViewChange(1, 3, None, (), b""))
    assert kinds(deliver(new_primary, 2, vc2)) == []
    outputs = deliver(new_primary, 3, vc3)  # f+1 = 2 others: join, and with our own that is 2f+1
    assert "Send:ViewChange" in kinds(outputs) and "Send:NewView" in kinds(outputs)
    assert new_primary.status is Status.NORMAL and new_primary.view == 1


def test_view_change_reports_the_last_delivered_certificate_and_what_is_prepared_above_it() -> None:
    # pre: replica 1 prepared blocks 1 and 2 and holds 2's commit certificate, but only its own COMMIT for 1
    replica = make_replica(1)
    b1 = make_block(1, txs=(make_tx(11),))
    b2 = make_block(2, time_ms=NOW + 1)
    b2 = Block(replace(b2.header, prev_hash=b1.block_hash), b2.txs)
    for block in (b1, b2):
        deliver(replica, 0, pre_prepare(block))
        deliver(replica, 2, sign(Prepare(0, block.header.height, block.block_hash, 2, b"")))
    for sender in (0, 2):
        deliver(replica, sender, sign(Commit(0, 2, b2.block_hash, sender, b"")))
    assert replica.delivered_height == 0
    # event: two progress timeouts (a probe, then the view change)
    for step in (1, 2):
        replica.step(Tick(NOW + step * SIM_PARAMS.view_timeout_ms))
        outputs = replica.step(TimerFired(TIMER_PROGRESS))
    # post: the VIEW-CHANGE claims only what this replica can serve (genesis) and reports both prepared
    # blocks, so a NEW-VIEW can propose 1 again instead of starting above 2 (docs: "View change")
    sent = [o.message for o in outputs if isinstance(o, Send) and isinstance(o.message, ViewChange)]
    assert len(sent) == 1 and sent[0].stable is None
    assert [cert.block_hash for cert in sent[0].prepared] == [b1.block_hash, b2.block_hash]


def certify(block: Block, view: int = 0) -> CommitCertificate:
    """A commit certificate from validators 0, 2 and 3 (a quorum of four)."""
    height = block.header.height
    digest = compute_commit_digest(CHAIN_ID, view, height, block.block_hash)
    return CommitCertificate(
        view, height, block.block_hash, tuple((i, KEYS[i].sign(digest)) for i in (0, 2, 3))
    )


def test_checkpoint_divergence_halts_with_a_diagnosis() -> None:
    # pre: a replica that state-transferred and executed blocks up to a checkpoint height
    replica = make_replica(1)
    roots = [GENESIS_ROOT]
    prev_hash = GENESIS_HASH
    for height in range(1, SIM_PARAMS.checkpoint_interval + 1):
        state_height = max(0, height - SIM_PARAMS.pipeline_depth)
        header = replace(
            make_block(height, time_ms=NOW + height).header,
            prev_hash=prev_hash,
            state_height=state_height,
            state_root=roots[state_height],
        )
        block = Block(header, ())
        outputs = replica.step(BlocksFetched(0, ((block, certify(block)),)))
        assert [o.block for o in outputs if isinstance(o, ExecuteBlock)] == [block]
        roots.append(tagged_hash(Domain.STATE_NODE, roots[-1] + block.block_hash))
        replica.step(BlockExecuted(height, roots[-1], EMPTY_ROOT))
        prev_hash = block.block_hash
    # event: a quorum of others signs another state root for the checkpoint height
    height = SIM_PARAMS.checkpoint_interval
    theirs = b"\x09" * 32
    outputs: list[Output] = []
    for sender in (0, 2, 3):
        outputs += deliver(replica, sender, sign(Checkpoint(height, prev_hash, theirs, sender, b"")))
    # post: one Halt naming the height and both roots; every later input is ignored
    halts = [o for o in outputs if isinstance(o, Halt)]
    assert len(halts) == 1
    assert (
        str(height) in halts[0].reason
        and roots[-1].hex() in halts[0].reason
        and theirs.hex() in halts[0].reason
    )
    assert replica.status is Status.HALTED
    assert replica.step(Tick(NOW + 10**6)) == []


def test_state_root_mismatch_in_pre_prepare_is_refused_without_an_accusation() -> None:
    # the roots may differ because of our own state: we do not vote, and we do not accuse the primary
    replica = make_replica(1)
    block = make_block()
    bad = Block(replace(block.header, state_root=b"\x05" * 32), ())
    assert deliver(replica, 0, pre_prepare(bad)) == []


def test_a_stale_primary_is_not_accused_and_our_own_proposals_are_never_reported() -> None:
    # a primary still in an older view proposes on a chain that moved on: not a fault (it was 545
    # warnings in one real run)
    replica = make_replica(1)
    stale = Block(replace(make_block().header, prev_hash=b"\x07" * 32), ())
    assert deliver(replica, 0, pre_prepare(stale)) == []


@pytest.mark.parametrize(
    "shift_ms", [SIM_PARAMS.clock_drift_max_ms + 1, -(SIM_PARAMS.clock_drift_max_ms + 1)]
)
def test_block_time_outside_clock_drift_is_refused_without_an_accusation(shift_ms: int) -> None:
    # a replica resumed after SIGSTOP reads messages that waited in its socket: the clock check refuses
    # them, but the primary did nothing wrong
    replica = make_replica(1)
    block = make_block(time_ms=max(GENESIS_TIME_MS + 1, NOW + shift_ms))
    assert deliver(replica, 0, pre_prepare(block)) == []


def test_pool_refusals_are_outputs_and_a_pending_transaction_is_no_refusal() -> None:
    config = ReplicaConfig(CHAIN_ID, GENESIS_HASH, GENESIS_TIME_MS, PUBLIC, SIM_PARAMS, 1)
    one = make_tx(10)
    limits = PoolLimits(txs_max=1, bytes_max=len(one.raw))
    replica = Replica(config, KEYS[1], RecoveredState.genesis(GENESIS_ROOT), pool_limits=limits)
    replica.start(NOW)
    outputs = replica.step(TxReceived((one,)))  # the progress timer starts for it, nothing is refused
    assert replica.get_pending(one.tx_id) == one and not [o for o in outputs if isinstance(o, TxRefused)]
    assert replica.step(TxReceived((one,))) == []  # already pending: nothing to refuse
    assert replica.step(TxReceived((make_tx(11),))) == [TxRefused(make_tx(11).tx_id, REFUSED_FULL)]
    expired = make_tx(12, valid_until=0)
    assert replica.step(TxReceived((expired,))) == [TxRefused(expired.tx_id, REFUSED_EXPIRED)]
    assert replica.pending_tx_count == 1 and replica.pending_bytes == len(one.raw)


def test_pool_limits_are_defined_once_from_the_block_size_and_the_operator() -> None:
    assert PoolLimits.for_chain(2000) == PoolLimits(20_000, 64 * 1024 * 1024)
    assert PoolLimits.for_chain(4) == PoolLimits(1000, 64 * 1024 * 1024)  # never fewer than 1000 slots
    assert PoolLimits.for_chain(2000, txs_max=8000, bytes_max=1 << 20) == PoolLimits(8000, 1 << 20)
    assert PoolLimits.for_chain(10, txs_max=50_000).txs_max == 1000  # the operator cannot raise it


def test_a_replica_catching_up_by_state_transfer_does_not_depose_the_primary() -> None:
    # A validator restarted (or resumed) behind the others fetches the blocks committed meanwhile; the
    # transactions gossiped to it since then are in blocks it has not fetched yet, so its censorship
    # deadline passes twice while it advances. It must go on fetching, not ask for a view change alone: it
    # sat in that view change without voting while the others went on in their view (chaos cycles).
    replica = make_replica(1)
    timeout = SIM_PARAMS.view_timeout_ms
    replica.step(TxReceived((make_tx(10),)))  # arrived at NOW, to be proposed at a height not fetched yet
    far = 40  # f+1 validators signed for a height far ahead: the network committed up to 39
    for sender in (0, 2):
        deliver(replica, sender, sign(Prepare(0, far, b"\x05" * 32, sender, b"")))
    roots, prev_hash, sent = [GENESIS_ROOT], GENESIS_HASH, []
    for height in range(1, 9):  # one fetched block every half timeout: 4 view timeouts of catching up
        now = NOW + height * timeout // 2
        replica.step(Tick(now))
        state_height = max(0, height - SIM_PARAMS.pipeline_depth)
        header = replace(
            make_block(height, time_ms=NOW - 10_000 + height).header,
            prev_hash=prev_hash,
            state_height=state_height,
            state_root=roots[state_height],
        )
        block = Block(header, ())
        replica.step(BlocksFetched(0, ((block, certify(block)),)))
        roots.append(tagged_hash(Domain.STATE_NODE, roots[-1] + block.block_hash))
        replica.step(BlockExecuted(height, roots[-1], EMPTY_ROOT))
        prev_hash = block.block_hash
        sent += kinds(replica.step(TimerFired(TIMER_PROGRESS)))
    assert replica.delivered_height == 8 and replica.is_catching_up
    assert "Send:ViewChange" not in sent and replica.status is Status.NORMAL
    # once it stops advancing, the deadline judges the primary again
    for step in (1, 2, 3):
        replica.step(Tick(NOW + 4 * timeout + step * timeout))
        sent += kinds(replica.step(TimerFired(TIMER_PROGRESS)))
    assert "Send:ViewChange" in sent and replica.status is Status.VIEW_CHANGE
