"""Unit tests of the replica's parts, each on its own: its state, its invariants, its outputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pbft_sim import CHAIN_ID, GENESIS_HASH, GENESIS_ROOT, GENESIS_TIME_MS, make_tx

from consensus import log as clog
from consensus.chain import Candidates, ChainWindow
from consensus.config import ExecutionRoots
from consensus.events import TIMER_PROGRESS, CancelTimer, Halt, ReportMisbehaviour, SetTimer
from consensus.membership import Membership, ValidatorSet
from consensus.messages import Commit, Prepare, PrePrepare, compute_signing_digest
from consensus.outbox import Clock, EvidenceLog, Outbox, Signer, Timers
from consensus.pool import CommittedWindow, PendingPool, PoolLimits
from consensus.progress import ProgressTimer
from consensus.safety import SafetyLog
from consensus.transfer import FetchTracker
from consensus.view_state import Status, ViewState
from consensus.votes import VoteBook
from core.block import EMPTY_ROOT, Block, BlockHeader, CommitCertificate, compute_tx_root
from core.devkeys import dev_node_key
from core.errors import InvariantBroken

KEYS = [dev_node_key("validator", i) for i in range(7)]
H1 = b"\x01" * 32
H2 = b"\x02" * 32


def block_at(height: int, prev_hash: bytes = GENESIS_HASH, time_ms: int = GENESIS_TIME_MS + 1) -> Block:
    header = BlockHeader(
        CHAIN_ID, height, prev_hash, time_ms, 0, 0, compute_tx_root(()), 0, GENESIS_ROOT, EMPTY_ROOT, H1, H1
    )
    return Block(header, ())


def cert_for(block: Block) -> CommitCertificate:
    return CommitCertificate(0, block.header.height, block.block_hash, ())


# --- membership -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "f", "quorum", "weak"), [(1, 0, 1, 1), (4, 1, 3, 2), (5, 1, 4, 2), (7, 2, 5, 3)]
)
def test_validator_set_arithmetic(n: int, f: int, quorum: int, weak: int) -> None:
    validators = ValidatorSet.of_keys(k.public_key for k in KEYS[:n])
    assert (validators.n, validators.f, validators.quorum, validators.weak_quorum) == (n, f, quorum, weak)
    assert [validators.primary(view) for view in range(n + 1)] == [*range(n), 0]
    assert validators.contains(n - 1) and not validators.contains(n) and not validators.contains(-1)


def test_a_set_names_validators_by_permanent_number() -> None:
    # validator 1 removed, 7 added: the primary rotates over the members in number order
    validators = ValidatorSet(((0, KEYS[0].public_key), (2, KEYS[2].public_key), (7, KEYS[1].public_key)))
    assert [validators.primary(view) for view in range(4)] == [0, 2, 7, 0]
    assert validators.key(7) == KEYS[1].public_key and validators.key_of(1) is None
    assert validators.set_hash != ValidatorSet.of_keys(k.public_key for k in KEYS[:3]).set_hash
    with pytest.raises(ValueError):
        ValidatorSet(((2, KEYS[2].public_key), (0, KEYS[0].public_key)))  # not in number order


def make_membership(executed: int = 0) -> Membership:
    genesis = ValidatorSet.of_keys(k.public_key for k in KEYS[:4])
    return Membership(genesis, checkpoint_interval=10, pipeline_depth=2, executed_height=executed)


def test_membership_is_the_genesis_set_until_a_change_takes_effect_at_the_next_boundary() -> None:
    membership = make_membership()
    genesis = membership.at(1)
    grown = ValidatorSet.of_keys(k.public_key for k in KEYS[:5])
    # approved while executing 13: margin 2*2+2 = 6, so the old set certifies up to 20 (>= 19, a multiple of 10)
    membership.note_executed(13, grown)
    assert membership.last_height(0) == 20 and membership.at(20) is genesis
    assert membership.known_through == 13 + 6 + 1  # a change executed at 14 could still start at 21
    membership.note_executed(14, None)
    assert membership.at(21) is grown and [e.number for e in membership.epochs()] == [0, 1]


def test_membership_is_certain_only_up_to_the_executed_height_plus_the_margin() -> None:
    membership = make_membership(executed=4)
    assert membership.is_known(11) and not membership.is_known(12)
    with pytest.raises(InvariantBroken):
        membership.at(12)
    membership.note_executed(5, ValidatorSet.of_keys(k.public_key for k in KEYS[:5]))
    with pytest.raises(InvariantBroken):  # a second change may not start before the pending one
        membership.note_executed(6, ValidatorSet.of_keys(k.public_key for k in KEYS[:6]))


# --- vote book --------------------------------------------------------------------------------------------


def test_vote_book_keeps_one_vote_per_sender_and_names_the_conflicting_one() -> None:
    votes = VoteBook()
    first = Prepare(0, 1, H1, 2, b"a")
    assert votes.prepares.add(first) == (True, None)
    assert votes.prepares.add(first) == (False, None)  # a duplicate is no evidence
    assert votes.prepares.add(Prepare(0, 1, H2, 2, b"b")) == (False, first)  # a second digest is
    assert votes.prepares.has_voted(0, 1, 2) and not votes.prepares.has_voted(1, 1, 2)
    assert votes.prepares.signatures_for(0, 1, H1, excluding=0) == [(2, b"a")]
    assert votes.prepares.signatures_for(0, 1, H1, excluding=2) == []


def test_vote_book_groups_commits_by_block_in_hash_order() -> None:
    votes = VoteBook()
    for sender, digest in ((3, H2), (1, H1), (0, H2)):
        votes.commits.add(Commit(0, 5, digest, sender, bytes([sender])))
    assert votes.commits.by_block(0, 5) == [(H1, [(1, b"\x01")]), (H2, [(3, b"\x03"), (0, b"\x00")])]
    assert votes.commits.by_block(1, 5) == []


def test_vote_book_prunes_delivered_heights_and_old_views() -> None:
    votes = VoteBook()
    pp_low = PrePrepare.of_block(0, block_at(1), 0)
    pp_high = PrePrepare.of_block(5, block_at(2), 1)
    votes.put_pre_prepare(pp_low, received_ms=10)
    votes.put_pre_prepare(pp_high, received_ms=20)
    votes.reject(0, 1)
    votes.prepares.add(Prepare(0, 2, H1, 3, b""))
    votes.prune(low_height=1, min_view=1)
    assert votes.pre_prepare(0, 1) is None and not votes.is_rejected(0, 1)
    assert votes.pre_prepare(5, 2) is pp_high and votes.received_ms(5, 2, default=0) == 20
    assert not votes.prepares.has_voted(0, 2, 3)  # view 0 is older than min_view
    assert votes.block_hashes() == {pp_high.block_hash}


# --- chain window and candidates ---------------------------------------------------------------------------


def make_chain(executed: int = 0, blocks: tuple[Block, ...] = ()) -> ChainWindow:
    roots = {h: ExecutionRoots(GENESIS_ROOT, EMPTY_ROOT) for h in range(executed + 1)}
    return ChainWindow(
        genesis_hash=GENESIS_HASH,
        genesis_time_ms=GENESIS_TIME_MS,
        executed_height=executed,
        roots=roots,
        recent_blocks=[(b, cert_for(b)) for b in blocks],
        tx_validity_blocks_max=10,
    )


def test_chain_window_delivers_in_order_and_links_to_genesis() -> None:
    chain = make_chain()
    assert chain.prev_header(1) == (GENESIS_HASH, GENESIS_TIME_MS)
    first = block_at(1)
    chain.append(first, cert_for(first))
    assert chain.delivered_height == 1 and chain.prev_header_hash(2) == first.block_hash
    with pytest.raises(InvariantBroken):
        chain.append(block_at(3), cert_for(block_at(3)))  # a gap
    with pytest.raises(InvariantBroken):
        chain.record_execution(2, ExecutionRoots(GENESIS_ROOT, EMPTY_ROOT))  # not delivered yet
    chain.record_execution(1, ExecutionRoots(H1, H2))
    assert chain.executed_height == 1 and chain.roots(1) == ExecutionRoots(H1, H2)


def test_chain_window_refuses_a_recovery_without_the_last_block() -> None:
    with pytest.raises(InvariantBroken):
        make_chain(executed=1)


def test_candidates_pair_a_certificate_with_a_block_that_arrives_later() -> None:
    candidates = Candidates()
    block = block_at(1)
    candidates.note_certificate(cert_for(block), delivered_height=0)
    assert candidates.has_unmatched() and not candidates.match_certificates(delivered_height=0)
    candidates.add(block)
    assert candidates.match_certificates(delivered_height=0)
    assert candidates.pop_certified(1) == (block, cert_for(block)) and not candidates.has_unmatched()


def test_candidates_prune_keeps_only_live_blocks_and_near_certificates() -> None:
    candidates = Candidates()
    kept, dropped, certified = block_at(2), block_at(3), block_at(4)
    for block in (kept, dropped, certified):
        candidates.add(block)
    candidates.certify(certified, cert_for(certified))
    candidates.note_certificate(cert_for(block_at(50)), delivered_height=1)
    candidates.prune(low_height=1, unmatched_window=20, live={kept.block_hash})
    assert candidates.get(kept.block_hash) is kept and candidates.get(certified.block_hash) is certified
    assert candidates.get(dropped.block_hash) is None and not candidates.has_unmatched()


# --- safety log ---------------------------------------------------------------------------------------------


def test_safety_log_never_signs_two_digests_in_one_view_nor_an_older_view() -> None:
    safety = SafetyLog({}, {})
    assert safety.may_vote(1, 5, H1)
    record = safety.log_vote(1, 5, H1, clog.PHASE_PREPARE)
    assert record.key == clog.height_key(b"c1/vote/", 5) and record.value is not None
    assert safety.may_vote(1, 5, H1) and not safety.may_vote(1, 5, H2)
    assert not safety.may_vote(0, 5, H1)  # older view
    assert safety.may_vote(2, 5, H2)  # a later view may prepare another block
    assert safety.has_voted(1, 5, clog.PHASE_PREPARE) and not safety.has_voted(1, 5, clog.PHASE_COMMIT)
    assert safety.last_vote_view(5) == 1 and safety.last_vote_view(6) == -1


def test_safety_log_prunes_through_a_stable_checkpoint_with_deletions_to_persist() -> None:
    safety = SafetyLog({}, {})
    for height in (3, 4, 9):
        safety.log_vote(0, height, H1, clog.PHASE_COMMIT)
    deletions = safety.prune_through(4)
    assert [r.key for r in deletions if r.key.startswith(b"c1/vote/")] == [
        clog.height_key(b"c1/vote/", 3),
        clog.height_key(b"c1/vote/", 4),
    ]
    assert all(r.value is None for r in deletions)
    assert [h for h, _ in safety.commit_votes_above(0)] == [9]


# --- view state -----------------------------------------------------------------------------------------------


def test_view_state_moves_only_along_its_transitions() -> None:
    outbox = Outbox()
    views = ViewState(outbox, 0, Status.NORMAL)
    views.become_view_change(1)
    assert (views.view, views.status) == (1, Status.VIEW_CHANGE)
    views.become_normal(1, low_height=7)
    assert (views.view, views.low_height, views.is_normal) == (1, 7, True)
    views.halt("diverged")
    assert views.is_halted and outbox.take() == [Halt("diverged")]
    with pytest.raises(InvariantBroken):
        views.become_normal(2, 0)


# --- timers and progress --------------------------------------------------------------------------------------


def test_timers_ignore_cancelled_and_stale_fires() -> None:
    clock, outbox = Clock(), Outbox()
    timers = Timers(clock, outbox, slack_ms=50)
    clock.advance(1000)
    timers.set("t", 200)
    assert outbox.take() == [SetTimer("t", 200)]
    clock.advance(1100)
    assert not timers.take_fired("t")  # too early: a fire of an earlier arming
    clock.advance(1150)
    assert timers.take_fired("t") and "t" not in timers
    timers.set("t", 10)
    timers.cancel("t")
    assert outbox.take()[-1] == CancelTimer("t") and not timers.take_fired("t")


def test_progress_timer_deadline_and_backoff() -> None:
    clock, outbox = Clock(), Outbox()
    timers = Timers(clock, outbox, slack_ms=0)
    progress = ProgressTimer(clock, timers, view_timeout_ms=100)
    clock.advance(1000)
    progress.restart()
    progress.refresh(running=True, has_work=True, oldest_tx_ms=None)
    assert timers.deadline(TIMER_PROGRESS) == 1100
    progress.on_view_change()
    progress.on_view_change()
    assert progress.timeout_ms() == 400
    progress.on_delivered(in_normal_case=True, served_backlog=True)
    assert progress.timeout_ms() == 100
    progress.refresh(running=False, has_work=True, oldest_tx_ms=None)
    assert TIMER_PROGRESS not in timers


def expire(clock: Clock, timers: Timers, progress: ProgressTimer) -> str:
    """Run the progress timer to its deadline: 'probe' or 'view change', as the view changer decides."""
    deadline = timers.deadline(TIMER_PROGRESS)
    assert deadline is not None
    clock.advance(deadline)
    if progress.is_second_expiry():
        return "view change"
    progress.on_probe()
    return "probe"


@pytest.mark.parametrize("served", [True, False])
def test_a_backlog_older_than_the_timeout_changes_view_only_if_blocks_stop_serving_it(served: bool) -> None:
    # Under load the oldest pending transaction here is always older than the timeout, and blocks come
    # every 0.75 timeout. Blocks that take it restart its deadline; blocks that skip it do not.
    clock, outbox = Clock(), Outbox()
    timers = Timers(clock, outbox, slack_ms=0)
    progress = ProgressTimer(clock, timers, view_timeout_ms=100)
    clock.advance(1000)
    progress.restart()
    outcomes = []
    for block in range(1, 9):
        oldest_ms = clock.now_ms - 150  # the backlog
        progress.refresh(running=True, has_work=True, oldest_tx_ms=oldest_ms)
        while (deadline := timers.deadline(TIMER_PROGRESS)) is not None and deadline <= 1000 + 75 * block:
            outcomes.append(expire(clock, timers, progress))
            if outcomes[-1] == "view change":
                break
            progress.refresh(running=True, has_work=True, oldest_tx_ms=oldest_ms)
        if "view change" in outcomes:
            break
        clock.advance(1000 + 75 * block)
        progress.on_delivered(in_normal_case=True, served_backlog=served)
    if served:
        assert "view change" not in outcomes
    else:
        assert outcomes[-2:] == ["probe", "view change"]


def test_executing_a_long_block_here_does_not_count_against_the_primary() -> None:
    # A block that takes three timeouts to execute here (a large block on a loaded host): the deadlines
    # count from the end of its execution, so the next block, 0.8 timeout later, is in time.
    clock, outbox = Clock(), Outbox()
    timers = Timers(clock, outbox, slack_ms=0)
    progress = ProgressTimer(clock, timers, view_timeout_ms=100)
    clock.advance(1000)
    progress.restart()
    progress.note_served_backlog(5)
    progress.on_delivered(in_normal_case=True, served_backlog=True)
    clock.advance(1300)  # executing: no input reaches the replica meanwhile
    progress.on_executed(5)
    progress.refresh(running=True, has_work=True, oldest_tx_ms=900)
    assert timers.deadline(TIMER_PROGRESS) == 1400
    clock.advance(1380)
    progress.on_delivered(in_normal_case=True, served_backlog=True)
    progress.refresh(running=True, has_work=True, oldest_tx_ms=950)
    assert timers.deadline(TIMER_PROGRESS) == 1480


def test_pool_drops_expired_transactions_and_only_those() -> None:
    pool = PendingPool(PoolLimits(txs_max=10_000, bytes_max=1 << 30))
    txs = [make_tx(n, valid_until=5 + n % 3) for n in range(3000)]  # valid until 5, 6 or 7
    for tx in txs:
        pool.add(tx, now_ms=0)
    for tx in txs[:1500]:
        pool.remove(tx.tx_id)  # committed
    pool.remove_expired(next_height=7)
    assert [p.tx for p in pool.items()] == [tx for tx in txs[1500:] if tx.body.valid_until >= 7]
    assert pool.size_bytes == sum(len(p.tx.raw) for p in pool.items())
    for tx in txs[:1500]:
        pool.add(tx, now_ms=1)  # re-added: the pool alone does not check replay
    pool.remove_expired(next_height=8)
    assert len(pool) == 0 and pool.size_bytes == 0


def test_committed_window_is_complete_only_once_it_spans_the_validity_window() -> None:
    def block(height: int) -> Block:
        header = BlockHeader(
            CHAIN_ID,
            height,
            GENESIS_HASH,
            0,
            0,
            1,
            EMPTY_ROOT,
            0,
            EMPTY_ROOT,
            EMPTY_ROOT,
            EMPTY_ROOT,
            EMPTY_ROOT,
        )
        return Block(header, (make_tx(height),))

    from_genesis = CommittedWindow(3)
    assert from_genesis.is_complete
    for height in range(1, 6):
        from_genesis.add_block(block(height))
    assert from_genesis.is_complete and not from_genesis.contains(make_tx(2).tx_id)  # out of the window
    recovered = CommittedWindow(3)  # after a restart, handed blocks 4 and 5 only
    recovered.add_block(block(4))
    recovered.add_block(block(5))
    assert not recovered.is_complete  # height 3 is in the window and unknown here
    recovered.add_block(block(6))
    assert recovered.is_complete and recovered.contains(make_tx(4).tx_id)


def test_peers_without_a_link_are_not_asked_until_they_are_back() -> None:
    fetch = FetchTracker(0)
    fetch.note_target(10, [1])
    fetch.unlinked |= {1, 2}
    assert {fetch.choose_peer(0, [0, 1, 2, 3]) for _ in range(4)} == {3}  # the hinted peer has no link
    fetch.unlinked = {1, 2, 3}
    assert fetch.choose_peer(0, [0, 1, 2, 3]) is None  # nobody to ask: wait for a link
    fetch.unlinked.discard(1)
    assert fetch.choose_peer(0, [0, 1, 2, 3]) == 1


def test_far_claims_need_f_plus_one_senders() -> None:
    fetch = FetchTracker(0)
    fetch.note_far(1, 50, delivered_height=0, max_faulty=1)
    assert fetch.target_height == 0  # one sender may lie
    fetch.note_far(2, 40, delivered_height=0, max_faulty=1)
    assert fetch.target_height == 39 and sorted(fetch.hint_peers) == [1, 2]


# --- signing and evidence -------------------------------------------------------------------------------------


def test_signer_and_evidence_log() -> None:
    signer = Signer(CHAIN_ID, KEYS[2])
    vote = signer.sign(Prepare(0, 1, H1, 2, b""))
    assert KEYS[2].public_key and vote.signature == KEYS[2].sign(compute_signing_digest(CHAIN_ID, vote))
    outbox = Outbox()
    evidence = EvidenceLog(outbox, limit=1)
    other = signer.sign(replace(vote, block_hash=H2, signature=b""))
    evidence.record(vote, other)
    evidence.record(other, vote)
    assert len(evidence.items()) == 1 and evidence.items()[0].first == other
    reports = outbox.take()
    assert all(isinstance(r, ReportMisbehaviour) and r.peer == 2 for r in reports) and len(reports) == 2
