"""ValidatorShell, the replica's Effects in a node: a real LevelDB store and the real chaincode behind it, a
fake peer layer in front (the real one is covered by tests/integration). Persist is durable in the
consensus log before a vote leaves, an executed block is committed and streamed to observers, admission
learns the replica's refusals, and bad consensus frames are refused before they reach the replica."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chaincode import build_registry
from consensus import log as clog
from consensus.events import (
    BROADCAST,
    REFUSED_FULL,
    ExecuteBlock,
    FetchTxs,
    Persist,
    ReportMisbehaviour,
    Send,
)
from consensus.messages import (
    Prepare,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    compute_message_bytes_max,
    compute_signing_digest,
    decode_message,
    encode_message,
)
from consensus.pool import PoolLimits
from core import codec
from core.block import encode_certified_block
from core.devkeys import dev_node_key
from core.errors import ConfigError, InvalidInput
from core.genesis import Genesis
from core.tx import SignedTx, decode_transaction
from core.validators import ValidatorSet, compute_activation_height
from core.votes import compute_node_key_proof_digest
from node.applier import BlockApplier
from node.byzantine import BYZANTINE_ENV
from node.events import EventHub
from node.evidence import EvidenceReporter
from node.metrics import NodeMetrics
from node.roster import Roster, read_validator_history
from node.sync import GetBlocks, GetTxs, decode_sync
from node.validator import ValidatorShell
from node.verified import VerifiedCache
from p2p import PeerId
from storage import Store
from tests.node.nodekit import GENESIS, FakeNetwork, ReferenceChain, open_store

V0, V2, V3 = PeerId.validator(0), PeerId.validator(2), PeerId.validator(3)


class BroadcastNetwork(FakeNetwork):
    def __init__(self, connected: tuple[PeerId, ...] = ()) -> None:
        super().__init__(connected)
        self.broadcasts: list[tuple[str, bytes, str]] = []

    def broadcast(self, channel: str, payload: bytes, *, to: str) -> None:
        self.broadcasts.append((channel, payload, to))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    own = open_store(tmp_path / "v1")
    yield own
    own.close()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ReferenceChain]:
    reference = ReferenceChain(tmp_path / "reference")
    yield reference
    reference.store.close()


def make_shell(
    store: Store,
    network: BroadcastNetwork,
    limits: PoolLimits | None = None,
    *,
    index: int = 1,
    before_proposal: Callable[[], None] = lambda: None,
    evidence: EvidenceReporter | None = None,
    genesis: Genesis = GENESIS,
) -> ValidatorShell:
    applier = BlockApplier(store, build_registry(), EventHub(queue_max=10), NodeMetrics())
    committed: list[int] = []
    shell = ValidatorShell(
        genesis,
        dev_node_key("validator", index),
        store,
        network,  # type: ignore[arg-type]
        applier,
        VerifiedCache(),
        lambda block: committed.append(block.header.height),
        limits or PoolLimits.for_chain(GENESIS.consensus.block_txs_max),
        Roster(GENESIS, executed_height=store.last_height, history=read_validator_history(store)),
        before_proposal=before_proposal,
        evidence=evidence,
    )
    return shell


def test_persist_is_a_synced_write_of_the_consensus_log(store: Store) -> None:
    shell = make_shell(store, BroadcastNetwork())
    record = clog.record_view(0, 3, False)
    shell.persist(Persist((record, clog.LogRecord(b"c1/gone", None))))
    assert dict(store.consensus_log.iterate()) == {record.key: record.value}


def test_the_consensus_log_takes_a_view_change_with_full_blocks(store: Store) -> None:
    # compliance year: a VIEW-CHANGE holding two prepared blocks of 2,000 registrations (> 1 MiB) failed
    # to persist, and the view change with it
    shell = make_shell(store, BroadcastNetwork())
    largest = compute_message_bytes_max(GENESIS.consensus)
    assert largest > 1024 * 1024
    record = clog.LogRecord(b"vc", bytes(largest))
    shell.persist(Persist((record,)))
    assert store.consensus_log.get(b"vc") == record.value


def test_send_encodes_for_every_validator_or_one(store: Store) -> None:
    network = BroadcastNetwork(connected=(V2,))
    shell = make_shell(store, network)
    vote = Prepare(0, 1, b"\x01" * 32, 1, b"\x02" * 64)
    shell.send(Send(-1, vote))
    shell.send(Send(2, vote))
    assert network.broadcasts == [("consensus", encode_message(vote), "validators")]
    assert network.sent == [(V2, "consensus", encode_message(vote))]


async def test_execute_commits_the_block_streams_it_to_observers_and_answers_its_roots(
    store: Store, chain: ReferenceChain
) -> None:
    network = BroadcastNetwork()
    shell = make_shell(store, network)
    failing = chain.call("ent-a", "transfer_allowances", {"to": "ent-a", "amount_t": 1})  # self_transfer
    certified = chain.extend((chain.deposit(), failing))
    executed = shell.execute(ExecuteBlock(certified.block, certified.certificate))
    assert store.last_height == 1 and (executed.state_root, executed.results_root) == chain.store.get_roots(1)
    [(channel, payload, to)] = network.broadcasts
    assert (channel, to) == ("blocks", "observers")
    assert payload == encode_certified_block(certified)  # the wire format, to the byte


async def test_a_proposal_leaves_after_the_gossip_queued_in_the_step_that_made_it(
    store: Store, chain: ReferenceChain
) -> None:
    """A PRE-PREPARE names its transactions by id: the node queues the gossip of transactions it admits
    only after offer() returns, so the proposal must leave after that gossip (same links, in order) or the
    other validators fetch what they would have had."""
    network = BroadcastNetwork()
    proposals_sent_at_flush: list[int] = []
    flushed = asyncio.Event()

    def flush_gossip() -> None:
        proposals_sent_at_flush.append(len(proposals_in(network)))
        flushed.set()

    shell = make_shell(store, network, index=0, before_proposal=flush_gossip)  # the primary of view 0
    shell.start()
    try:
        assert shell.offer([chain.deposit()]) == [None]
        await asyncio.wait_for(flushed.wait(), timeout=10)
        await asyncio.sleep(0)  # the turn that sends what was proposed with it (an empty certifying block)
        proposals = proposals_in(network)
        assert proposals_sent_at_flush == list(range(len(proposals)))  # each proposal after a flush
        assert len(proposals[0].tx_ids) == 1
    finally:
        shell.stop()


def proposals_in(network: BroadcastNetwork) -> list[PrePrepare]:
    messages = [
        decode_message(payload, params=GENESIS.consensus, validator_count=len(GENESIS.validators))
        for channel, payload, _ in network.broadcasts
        if channel == "consensus"
    ]
    return [message for message in messages if isinstance(message, PrePrepare)]


async def test_an_approved_validator_change_reaches_the_replica_and_survives_a_restart(
    tmp_path: Path, chain: ReferenceChain
) -> None:
    """BlockExecuted carries the set the block approved; a restarted shell rebuilds the sets from state."""
    store = open_store(tmp_path / "own")
    shell = make_shell(store, BroadcastNetwork())
    new_key = dev_node_key("validator", 4)
    proof = new_key.sign(compute_node_key_proof_digest(GENESIS.chain_id, "mee", new_key.public_key, None))
    add = {"org": "mee", "node_key": new_key.public_key.hex(), "peer_address": "127.0.0.1:7999",
           "api_address": "127.0.0.1:8999", "proof": proof.hex()}  # fmt: skip
    blocks = [
        (chain.call("mee", "propose", {"action": "add_validator", "args": add, "expires_height": 50}),),
        (chain.call("bank", "approve", {"proposal": 1}),),
        (chain.call("verifier-a", "approve", {"proposal": 1}),),  # 3 of the 4 members: approved at 3
        (chain.deposit(),),
    ]
    executed = [shell.execute(ExecuteBlock(c.block, c.certificate)) for c in map(chain.extend, blocks)]
    five = ValidatorSet((*GENESIS.validator_set.members, (4, new_key.public_key)))
    assert [e.validators for e in executed] == [None, None, five, None]
    store.close()
    restarted = make_shell(reopened := Store.open(tmp_path / "own"), BroadcastNetwork())
    try:
        consensus = GENESIS.consensus
        last = compute_activation_height(3, checkpoint_interval=consensus.checkpoint_interval,
                                         pipeline_depth=consensus.pipeline_depth)  # fmt: skip
        epochs = restarted.replica.membership.epochs()
        assert [(e.number, e.first_height, e.validators) for e in epochs] == [
            (0, 1, GENESIS.validator_set), (1, last + 1, five)]  # fmt: skip
    finally:
        reopened.close()


async def test_offer_answers_the_replicas_refusal(store: Store, chain: ReferenceChain) -> None:
    first, second = chain.deposit(), chain.deposit()
    shell = make_shell(store, BroadcastNetwork(), PoolLimits(txs_max=1, bytes_max=1 << 20))
    shell.start()
    try:
        assert shell.offer([first]) == [None] and shell.replica.get_pending(first.tx_id) == first
        assert shell.offer([second]) == [REFUSED_FULL]
        assert shell.replica.get_pending(second.tx_id) is None
    finally:
        shell.stop()


def test_consensus_frames_are_checked_before_the_replica_sees_them(
    store: Store, chain: ReferenceChain
) -> None:
    shell = make_shell(store, BroadcastNetwork())
    with pytest.raises(InvalidInput, match="observers"):
        shell.on_consensus_frame(PeerId.observer(0), b"")
    with pytest.raises(InvalidInput, match="undecodable"):
        shell.on_consensus_frame(V0, b"\xc1")
    # a VIEW-CHANGE carrying a prepared block with a transaction whose signature does not verify: the
    # sender is at fault (a proposal names its transactions by id; those are checked when fetched)
    certified = chain.extend((chain.deposit(),))
    tx = certified.block.txs[0]
    forged = decode_transaction(codec.encode({"body": tx.body_bytes, "signature": bytes(64)}))
    block = replace(certified.block, txs=(forged,))
    prepared = PreparedCertificate(0, block.header, ((0, bytes(64)), (1, bytes(64)), (2, bytes(64))))
    vc = ViewChange(1, 0, None, (prepared,), bytes(64), (block,))
    with pytest.raises(InvalidInput, match="invalid transaction signature"):
        shell.on_consensus_frame(V0, encode_message(vc))


async def test_fetched_transactions_are_verified_and_only_answers_we_asked_for_count(
    store: Store, chain: ReferenceChain
) -> None:
    network = BroadcastNetwork(connected=(V0, V2))
    shell = make_shell(store, network)
    tx = chain.deposit()
    forged = decode_transaction(codec.encode({"body": tx.body_bytes, "signature": bytes(64)}))
    shell.fetch_txs(FetchTxs(2, (tx.tx_id,)))
    [(peer, channel, payload)] = network.sent
    request = decode_sync(payload)
    assert (peer, channel) == (V2, "sync") and isinstance(request, GetTxs) and request.tx_ids == (tx.tx_id,)
    shell.on_txs_answer(V0, request.request_id, (forged,))  # not asked of V0: ignored, not even checked
    with pytest.raises(InvalidInput, match="signature does not verify"):
        shell.on_txs_answer(V2, request.request_id, (forged,))


class SignallingNetwork(BroadcastNetwork):
    def __init__(self, connected: tuple[PeerId, ...] = ()) -> None:
        super().__init__(connected)
        self.sent_more = asyncio.Event()

    def send(self, peer: PeerId, channel: str, payload: bytes) -> bool:
        self.sent_more.set()
        return super().send(peer, channel, payload)

    async def wait_block_requests(self, timeout_s: float) -> list[tuple[PeerId, GetBlocks]]:
        async with asyncio.timeout(timeout_s):
            while not self.block_requests():
                self.sent_more.clear()
                await self.sent_more.wait()
        return self.block_requests()


async def test_a_restarted_node_asks_a_linked_peer_for_blocks_at_once(store: Store) -> None:
    """Just restarted, before most peers redial us, the replica's first choice (validator 2 here) has no
    link: the request goes to a linked validator at once, not a fetch timeout (a view timeout) later, by
    when a restarted validator of a crash-cycle run had started a view change alone. A peer whose link
    comes up is asked in turn."""
    network = SignallingNetwork(connected=(V3,))
    shell = make_shell(store, network)
    shell.start()
    try:
        [(peer, request)] = await network.wait_block_requests(GENESIS.consensus.view_timeout_ms / 4000)
        assert peer == V3 and request.from_height == 1
        shell.on_blocks_answer(V3, request.request_id, ())  # nothing after ours
        network.connected.add(V0)
        shell.on_peer_connected(V0)
        [_, (again, _)] = network.block_requests()
        assert again == V0
    finally:
        shell.stop()


class FullQueueNetwork(SignallingNetwork):
    """Linked to every peer given, but the send queue to `full` has no room."""

    def __init__(self, connected: tuple[PeerId, ...], full: PeerId) -> None:
        super().__init__(connected)
        self.full = full

    def send(self, peer: PeerId, channel: str, payload: bytes) -> bool:
        return peer != self.full and super().send(peer, channel, payload)


async def test_a_linked_peer_with_a_full_send_queue_is_not_taken_for_unlinked(store: Store) -> None:
    """A request that found the send queue full was not sent, but the link is up: no PeerConnected would
    ever put that peer back in the rotation, so it is not reported as unlinked; the fetch timeout asks
    again, as for any request that goes unanswered."""
    network = FullQueueNetwork(connected=(V2, V3), full=V2)  # validator 2 is the first choice
    shell = make_shell(store, network)
    shell.start()
    try:
        for _ in range(3):  # the turns a PeerDisconnected would take to be drained and re-asked
            await asyncio.sleep(0)
        assert network.block_requests() == []
        network.full = V0  # room again: the retry at the fetch timeout may go to either validator
        [(peer, _)] = await network.wait_block_requests(2 * GENESIS.consensus.view_timeout_ms / 1000)
        assert peer in (V2, V3)
    finally:
        shell.stop()


async def test_a_block_request_never_answered_does_not_leave_the_node_catching_up(store: Store) -> None:
    """A peer killed (or whose link broke) between our request and its answer never answers; the replica
    gives up on it at its fetch timeout and asks another. catching_up (/readyz, /v1/status) follows the
    replica: it stayed true for good, at the network's head, after a chaos run killed a validator."""
    network = SignallingNetwork(connected=(V0, V2, V3))
    shell = make_shell(store, network)
    shell.start()  # just restarted: the replica asks one peer for blocks after ours
    try:
        [(first, _)] = network.block_requests()
        assert shell.catching_up
        network.connected.discard(first)  # ... and that peer dies before it answers
        network.sent_more.clear()
        # no answer within the fetch timeout (a view timeout): the replica asks another validator
        await asyncio.wait_for(network.sent_more.wait(), timeout=3 * GENESIS.consensus.view_timeout_ms / 1000)
        [_, (second, retry)] = network.block_requests()
        assert second != first and shell.catching_up
        shell.on_blocks_answer(second, retry.request_id, ())  # nothing after ours: we are not behind
        assert not shell.catching_up
    finally:
        shell.stop()


def test_evidence_in_a_report_goes_on_chain_once_signed_by_the_node_key(store: Store) -> None:
    submitted: list[SignedTx] = []
    reporter = EvidenceReporter(
        GENESIS, dev_node_key("validator", 1), lambda: "bank", submitted.append, lambda: 5
    )
    shell = make_shell(store, BroadcastNetwork(), evidence=reporter)
    key = dev_node_key("validator", 2)
    first = Prepare(0, 3, b"\x01" * 32, 2, b"")
    second = Prepare(0, 3, b"\x02" * 32, 2, b"")
    first, second = (
        replace(m, signature=key.sign(compute_signing_digest(GENESIS.chain_id, m))) for m in (first, second)
    )
    shell.report(ReportMisbehaviour(2, "conflicting Prepare messages", (first, second)))
    shell.report(
        ReportMisbehaviour(2, "conflicting Prepare messages", (first, second))
    )  # the same pair again
    shell.report(ReportMisbehaviour(2, "bad signature"))  # no evidence: only logged
    [tx] = submitted
    body = tx.body
    assert (body.function, body.sender_org, body.sender_key) == ("report_evidence", "bank", reporter_key())
    assert body.args["validator"] == key.public_key.hex() and body.args["view"] == 0
    assert body.valid_until == 5 + 100


def reporter_key() -> bytes:
    return dev_node_key("validator", 1).public_key


def test_a_byzantine_test_validator_sends_peer_by_peer_and_only_on_a_devnet(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BYZANTINE_ENV, "double_vote@2")
    network = BroadcastNetwork(connected=(V0, V2, PeerId.observer(0)))
    shell = make_shell(store, network)
    early, vote = Prepare(0, 1, b"\x01" * 32, 1, b"\x02" * 64), Prepare(0, 2, b"\x01" * 32, 1, b"\x02" * 64)
    shell.send(Send(BROADCAST, early))
    shell.send(Send(BROADCAST, vote))
    assert not network.broadcasts  # sent peer by peer, to each validator linked (never an observer)
    sends = [(peer, decode_message(payload, params=GENESIS.consensus)) for peer, _, payload in network.sent]
    assert sends[:2] == [(V0, early), (V2, early)]  # below its first height it is honest
    assert [(peer, m.block_hash == vote.block_hash) for peer, m in sends[2:]] == [
        (V0, True), (V2, True), (V2, False)]  # fmt: skip
    main = GENESIS.model_copy(update={"chain_id": "carbon-main"})
    with pytest.raises(ConfigError, match="test hook"):
        make_shell(store, network, genesis=main)
