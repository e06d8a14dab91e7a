"""The validator's consensus shell: the world the PBFT replica's outputs act on.

The replica (consensus/) is pure and consensus.driver.Driver is the loop that feeds it, the same loop the
seeded simulation runs. This shell is the driver's Effects: Persist is a synced LevelDB write (done before
any later Send of the same step leaves: double-sign protection), Send goes through the peer layer,
ExecuteBlock runs the chaincode and commits the block (its BlockExecuted is queued, never fed
re-entrantly), timers are asyncio timer handles, FetchBlocks is a sync-channel request.

ValidatorRole is what the rest of the node sees of a validator (node.roles.Role): the shell, the
transaction gossip it receives, and the quorum of validator links it waits for at start.

ReportMisbehaviour that carries evidence (two conflicting messages signed by one validator) goes to the
node's EvidenceReporter (node/evidence.py), which puts it on chain. On devnet chains a test can make the
validator Byzantine (CARBONCHAIN_TEST_BYZANTINE, node/byzantine.py): then what Send hands over is first
rewritten, peer by peer, by that behaviour; unset, the send path is the honest one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from consensus.driver import Driver
from consensus.events import (
    BROADCAST,
    BlockExecuted,
    BlocksFetched,
    CancelTimer,
    ExecuteBlock,
    FetchBlocks,
    FetchTxs,
    Halt,
    Input,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    Persist,
    ReportMisbehaviour,
    Send,
    SetTimer,
    TimerFired,
    TxReceived,
    TxRefused,
    TxsFetched,
)
from consensus.messages import (
    Message,
    PrePrepare,
    ViewChange,
    compute_message_bytes_max,
    decode_message,
    encode_message,
)
from consensus.pool import PoolLimits
from consensus.replica import ExecutionRoots, RecoveredState, Replica, ReplicaConfig
from core.block import Block, CertifiedBlock
from core.errors import CodecError, InvalidInput
from core.genesis import Genesis
from core.keys import SigningKey
from core.tx import SignedTx
from node.applier import BlockApplier
from node.byzantine import ByzantineBehaviour
from node.channels import CHANNEL_BLOCKS, CHANNEL_CONSENSUS, CHANNEL_TX
from node.checkpoints import CheckpointStatus, CheckpointWatch
from node.clock import wall_clock_ms
from node.evidence import EvidenceReporter, Vote
from node.roster import Roster
from node.sync import BlockRequests
from node.verified import VerifiedCache
from p2p import FrameHandler, PeerId, PeerNetwork
from storage import Store

log = logging.getLogger(__name__)

STARTUP_LINK_WAIT_S = 5.0  # at start, wait this long at most for a quorum of validator links
RECOVERY_BLOCKS_MAX = 1000  # recent blocks handed to the replica at start (replay window), at most
REFUSALS_KEPT = 10_000  # more than one request can offer (node/api.py TXS_PER_REQUEST_MAX)
PRESTART_INPUTS_MAX = 10_000  # inputs queued while peers connect before start(); later ones are dropped


def now_ms() -> int:
    return wall_clock_ms()


class ValidatorShell:
    """The replica's Effects (consensus.driver): LevelDB, the peer layer, the chaincode, asyncio timers."""

    def __init__(
        self,
        genesis: Genesis,
        key: SigningKey,
        store: Store,
        network: PeerNetwork,
        applier: BlockApplier,
        verified: VerifiedCache,
        on_committed: Callable[[Block], None],
        pool_limits: PoolLimits,
        roster: Roster,
        number: int | None = None,
        before_proposal: Callable[[], None] = lambda: None,
        evidence: EvidenceReporter | None = None,
    ) -> None:
        self.genesis = genesis
        self.store = store
        # a VIEW-CHANGE with two blocks of 2,000 transactions is past the log's default limit of 1 MiB
        store.consensus_log.value_bytes_max = max(
            store.consensus_log.value_bytes_max, compute_message_bytes_max(genesis.consensus)
        )
        self.network = network
        self.applier = applier
        self.verified = verified
        self.on_committed = on_committed
        self.roster = roster
        self.before_proposal = before_proposal
        config = ReplicaConfig.from_genesis(genesis, key.public_key, number=number)
        recovered = self._recover()
        self.replica = Replica(config, key, recovered, pool_limits=pool_limits)
        self.checkpoints = CheckpointWatch(recovered.log, self.replica.stable_checkpoint)
        # group commit: the votes of every batch of inputs share one synced write (docs/PERFORMANCE.md)
        self.driver = Driver(self.replica, self, prestart_inputs_max=PRESTART_INPUTS_MAX, group_commit=True)
        self._drain_handle: asyncio.Handle | None = None  # a drain of queued peer frames is due
        self.paused_reason: str | None = None  # set by pause(): inputs are held, the replica not stepped
        self._held: deque[Input] = deque()  # inputs that arrived while paused, in order
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._fetches = BlockRequests(network)  # block ranges asked of validators (state transfer)
        self._tx_fetches = BlockRequests(network)  # transactions of proposals we assemble
        self._loop: asyncio.AbstractEventLoop | None = None
        # tx id -> why the replica did not take it, until offer() reads it
        self._refusals: dict[bytes, str] = {}
        self._last_view = self.replica.view
        applier.metrics.view.set(self.replica.view)
        self._evidence = evidence
        self._byzantine = ByzantineBehaviour.from_environment(genesis, key)  # None but in a test

    # --- recovery -----------------------------------------------------------------------------------------

    def _recover(self) -> RecoveredState:
        """The replica's durable view: executed height, recent roots and blocks, and its own log."""
        executed = self.store.last_height
        depth = self.genesis.consensus.pipeline_depth
        roots = {}
        for height in range(max(0, executed - depth + 1), executed + 1):
            pair = self.store.get_roots(height)
            if pair is not None:
                roots[height] = ExecutionRoots(*pair)
        window = min(self.genesis.consensus.tx_validity_blocks_max, RECOVERY_BLOCKS_MAX)
        recent = []
        if executed > 0:
            first = max(1, executed - window + 1)
            for height in range(first, executed + 1):
                stored = self.store.get_block(height)
                if stored is not None and stored.certificate is not None:
                    recent.append((stored.block, stored.certificate))
        records = dict(self.store.consensus_log.iterate())
        log.info(
            "recovered at height %d with %d log records", executed, len(records), extra={"height": executed}
        )
        changes = [(change.approved_height, change.validators) for change in self.roster.history]
        return RecoveredState(executed, roots, recent, records, changes)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.driver.start()
        self._note_progress()

    def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None

    @property
    def halted_reason(self) -> str | None:
        return self.driver.halted_reason

    # --- inputs -------------------------------------------------------------------------------------------

    def submit(self, event: Input) -> None:
        """Hand an input to the driver; before start() (peers connect and send while the node waits for a
        quorum of links) inputs only queue in the driver. While paused they are held here instead, up to
        PRESTART_INPUTS_MAX (dropping a consensus message is safe: votes and view changes are resent), except
        timer events, which are always kept (at most one per timer): a lost one would leave the replica
        waiting for a timeout that already happened."""
        if self.paused_reason is not None:
            self._hold(event)
            return
        self.driver.submit(event)
        self._note_progress()

    def pause(self, reason: str) -> None:
        """Stop stepping the replica (so nothing is persisted, executed or sent) until resume()."""
        self.paused_reason = reason

    def resume(self) -> None:
        """Step the replica again, through everything held meanwhile (in arrival order), in one drain."""
        self.paused_reason = None
        held, self._held = self._held, deque()
        for event in held:
            self.driver.enqueue(event)
        self._drain()

    def _hold(self, event: Input) -> None:
        if len(self._held) < PRESTART_INPUTS_MAX or isinstance(event, TimerFired):
            self._held.append(event)

    def offer(self, txs: Sequence[SignedTx]) -> list[str | None]:
        """Hand admitted transactions to the replica's pool, in one drain; per transaction the refusal code
        if it did not take it (consensus.events.REFUSED_*), None if it is pending (or queued before
        start)."""
        self.driver.submit(TxReceived(tuple(txs)))
        self._note_progress()
        return [self._refusals.pop(tx.tx_id, None) for tx in txs]

    def on_consensus_frame(self, peer: PeerId, payload: bytes) -> None:
        """A consensus message from a validator; InvalidInput makes the peer layer drop and ban the peer."""
        if peer.role.value != "validator":
            raise InvalidInput("observers do not take part in consensus")
        try:
            # any validator number (governance adds numbers; who is a member of which height's set is
            # the replica's check, consensus.membership)
            message = decode_message(payload, params=self.genesis.consensus)
        except CodecError as exc:
            raise InvalidInput(f"undecodable consensus message: {exc}") from None
        for block in _blocks_in(message):
            bad = self._first_unverifiable(block)
            if bad is not None:
                raise InvalidInput(f"block proposed with an invalid transaction signature: {bad.tx_id.hex()}")
        # peer frames that arrive in one turn of the event loop are drained together: one batch, one write
        self._submit_soon(MessageReceived(peer.index, message))

    def _submit_soon(self, event: Input) -> None:
        """Queue an input for a drain in this turn of the event loop (or the current one, when called while
        outputs are performed: an input must not be stepped between two outputs of one batch)."""
        if self.paused_reason is not None:
            self._hold(event)
            return
        self.driver.enqueue(event)
        if self._loop is not None and self._drain_handle is None:
            self._drain_handle = self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_handle = None
        if self.paused_reason is not None:  # paused after the drain was scheduled: resume() drains
            return
        self.driver.drain()
        self._note_progress()

    def on_blocks_answer(self, peer: PeerId, request_id: int, blocks: tuple[CertifiedBlock, ...]) -> None:
        if not self._fetches.accept_answer(peer, request_id):
            return  # an answer we did not ask for (late, or for the observer follower)
        self.submit(BlocksFetched(peer.index, tuple((b.block, b.certificate) for b in blocks)))

    def on_txs_answer(self, peer: PeerId, request_id: int, txs: tuple[SignedTx, ...]) -> None:
        """Transactions of a proposal we assemble; a bad signature is the server's fault (InvalidInput)."""
        if not self._tx_fetches.accept_answer(peer, request_id):
            return
        log.debug("%s served %d transactions", peer, len(txs))
        for tx in txs:
            if not self.verified.check(tx):
                raise InvalidInput(f"served a transaction whose signature does not verify: {tx.tx_id.hex()}")
        self.submit(TxsFetched(peer.index, txs))

    def _first_unverifiable(self, block: Block) -> SignedTx | None:
        for tx in block.txs:
            if not self.verified.check(tx):
                return tx
        return None

    def _note_progress(self) -> None:
        """After the driver ran inputs: tell the log and the metrics of a new view or stable checkpoint."""
        self._note_view()
        pruned = self.checkpoints.on_stable(self.replica.stable_checkpoint)
        if pruned is not None:
            self.applier.metrics.consensus_log_pruned.inc(pruned)

    def _note_view(self) -> None:
        if self.replica.view == self._last_view:
            return
        self._last_view = self.replica.view
        metrics = self.applier.metrics
        metrics.view.set(self.replica.view)
        metrics.view_changes.inc()
        log.warning(
            "entered view %d, primary is validator-%d",
            self.replica.view,
            self.replica.primary,
            extra={"height": self.store.last_height, "view": self.replica.view},
        )

    # --- Effects ------------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return now_ms()

    def persist(self, output: Persist) -> None:
        self.store.consensus_log.put_many(((r.key, r.value) for r in output.records), sync=True)
        self.checkpoints.on_persisted(output.records)

    def refuse_tx(self, output: TxRefused) -> None:
        self._refusals[output.tx_id] = output.reason
        while len(self._refusals) > REFUSALS_KEPT:  # refusals of queued inputs nobody asks for
            self._refusals.pop(next(iter(self._refusals)))

    def report(self, output: ReportMisbehaviour) -> None:
        log.warning("validator %d misbehaved: %s", output.peer, output.reason, extra={"peer": output.peer})
        self.applier.metrics.misbehaviour.labels(kind="consensus").inc()
        if output.evidence and self._evidence is not None:
            self._evidence.report(output, self._signer_key)  # on chain, through our admission (once a pair)

    def _signer_key(self, message: Message) -> bytes | None:
        """The sender's key in the set in force at the message's height (which changes by governance)."""
        if not isinstance(message, Vote) or not self.replica.membership.is_known(message.height):
            return None
        return self.replica.membership.at(message.height).key_of(message.sender)

    def halt(self, output: Halt) -> None:
        self.stop()
        log.critical("CONSENSUS HALTED: %s", output.reason, extra={"height": self.store.last_height})

    def send(self, output: Send) -> None:
        if self._byzantine is None:
            frames = [(output.to, encode_message(output.message))]
        else:
            frames = self._tampered(output)
        if isinstance(output.message, PrePrepare) and self._loop is not None:
            # A proposal names its transactions by id. The ones admitted in the step that proposed them are
            # queued for gossip only after the step returns: send the proposal after them, on the same
            # links, so the other validators hold them when it arrives instead of fetching them.
            self._loop.call_soon(self._send_proposal, frames)
            return
        for to, payload in frames:
            self._send(to, payload)

    def _tampered(self, output: Send) -> list[tuple[int, bytes]]:
        """TEST ONLY: what the Byzantine behaviour sends instead, to each validator a broadcast reaches."""
        assert self._byzantine is not None
        if output.to == BROADCAST:
            peers = [peer.index for peer in self.network.connected_peers() if peer.is_validator]
        else:
            peers = [output.to]
        return [
            (to, encode_message(message)) for to, message in self._byzantine.tamper(output.message, peers)
        ]

    def _send_proposal(self, frames: list[tuple[int, bytes]]) -> None:
        self.before_proposal()
        for to, payload in frames:
            self._send(to, payload)

    def _send(self, to: int, payload: bytes) -> None:
        if to == BROADCAST:
            self.network.broadcast(CHANNEL_CONSENSUS, payload, to="validators")
        else:
            self.network.send(PeerId.validator(to), CHANNEL_CONSENSUS, payload)

    def execute(self, output: ExecuteBlock) -> BlockExecuted:
        applied = self.applier.apply(output.block, output.certificate)
        self.on_committed(output.block)
        height = output.block.header.height
        # encode_certified_block(CertifiedBlock(block, certificate, results)), spliced from what the
        # store now holds instead of encoding the whole block again
        (certified,) = self.store.get_certified_block_encodings(height, height)
        self.network.broadcast(CHANNEL_BLOCKS, certified, to="observers")
        validators = self.roster.note_block(height, applied.writes)
        return BlockExecuted(height, applied.outcome.state_root, applied.outcome.results_root, validators)

    def set_timer(self, output: SetTimer) -> None:
        previous = self._timers.pop(output.timer_id, None)
        if previous is not None:
            previous.cancel()
        assert self._loop is not None
        delay_s = max(0, output.delay_ms) / 1000
        self._timers[output.timer_id] = self._loop.call_later(delay_s, self._timer_fired, output.timer_id)

    def cancel_timer(self, output: CancelTimer) -> None:
        handle = self._timers.pop(output.timer_id, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, timer_id: str) -> None:
        self._timers.pop(timer_id, None)
        self.submit(TimerFired(timer_id))

    def fetch(self, output: FetchBlocks) -> None:
        peer = PeerId.validator(output.peer)
        if self._fetches.request(peer, output.from_height, output.to_height):
            return
        # Not sent. With no link (typically just after a restart, before peers redial us) the replica asks a
        # linked validator instead, and this one when it connects (PeerConnected probes it); an empty answer
        # instead would claim that the peer has no blocks after ours. A live link with a full send queue
        # is not reported: no PeerConnected would ever bring it back, and the fetch timeout asks another.
        if not self.network.is_connected(peer):
            self._submit_soon(PeerDisconnected(output.peer))

    def fetch_txs(self, output: FetchTxs) -> None:
        # not connected: the replica asks the next validator when this request's deadline passes
        sent = self._tx_fetches.request_txs(PeerId.validator(output.peer), output.tx_ids)
        log.debug("asked validator-%d for %d transactions (sent: %s)", output.peer, len(output.tx_ids), sent)

    def on_peer_connected(self, peer: PeerId) -> None:
        if peer.role.value == "validator":
            self.submit(PeerConnected(peer.index))

    def on_peer_disconnected(self, peer: PeerId) -> None:
        if peer.role.value == "validator":
            self.submit(PeerDisconnected(peer.index))

    # --- status -----------------------------------------------------------------------------------------------

    @property
    def catching_up(self) -> bool:
        """True while the replica fetches blocks from peers (state transfer). The replica's view, not the
        requests we sent: an answer that never comes (its peer died) is given up by the replica at its
        fetch timeout, while the request would be remembered until OUTSTANDING_MAX newer ones."""
        return self.replica.is_catching_up

    @property
    def view(self) -> int:
        return self.replica.view

    @property
    def primary(self) -> int:
        return self.replica.primary

    def get_checkpoint(self) -> CheckpointStatus:
        height = self.checkpoints.stable_height
        roots = self.store.get_roots(height) if height > 0 else None
        return CheckpointStatus(
            stable_height=height,
            stable_state_root=None if roots is None else roots[0],
            interval=self.genesis.consensus.checkpoint_interval,
            log_records=self.checkpoints.log_records,
            pruned_records=self.checkpoints.pruned_records,
        )


def _blocks_in(message: object) -> tuple[Block, ...]:
    """Blocks a message carries whose transactions have not been through consensus yet: the prepared
    blocks of a VIEW-CHANGE (a proposal names its transactions by id, fetched and checked apart)."""
    if isinstance(message, ViewChange):
        return message.blocks
    return ()


class ValidatorRole:
    """A validator: its consensus shell, the transaction gossip it receives, and a quorum of links."""

    kind = "validator"

    def __init__(
        self, shell: ValidatorShell, network: PeerNetwork, genesis: Genesis, on_gossiped_txs: FrameHandler
    ) -> None:
        self.shell = shell
        self._network = network
        self._on_gossiped_txs = on_gossiped_txs
        self._quorum_linked = asyncio.Event()

    @property
    def halted_reason(self) -> str | None:
        return self.shell.halted_reason

    @property
    def paused_reason(self) -> str | None:
        return self.shell.paused_reason

    def pause(self, reason: str) -> None:
        self.shell.pause(reason)

    def resume(self) -> None:
        self.shell.resume()

    @property
    def catching_up(self) -> bool:
        return self.shell.catching_up

    @property
    def view(self) -> int:
        return self.shell.view

    @property
    def primary(self) -> int:
        return self.shell.primary

    def get_frame_handlers(self) -> Mapping[str, FrameHandler]:
        return {CHANNEL_CONSENSUS: self.shell.on_consensus_frame, CHANNEL_TX: self._on_gossiped_txs}

    async def start(self) -> None:
        await self._wait_for_quorum_links()
        self.shell.start()

    async def stop(self) -> None:
        self.shell.stop()

    @property
    def validators_needed(self) -> int:
        """The other validators a quorum of the set in force at the next height needs besides us."""
        roster = self.shell.roster
        return roster.membership.at(roster.executed_height + 1).quorum - 1

    def is_linked(self) -> bool:
        linked = sum(1 for peer in self._network.connected_peers() if peer.is_validator)
        return linked >= self.validators_needed

    def get_checkpoint(self) -> CheckpointStatus | None:
        return self.shell.get_checkpoint()

    def on_peer_connected(self, peer: PeerId) -> None:
        self.shell.on_peer_connected(peer)
        if self.is_linked():
            self._quorum_linked.set()

    def on_peer_disconnected(self, peer: PeerId) -> None:
        self.shell.on_peer_disconnected(peer)

    def on_blocks_answer(self, peer: PeerId, request_id: int, blocks: tuple[CertifiedBlock, ...]) -> None:
        self.shell.on_blocks_answer(peer, request_id, blocks)

    def offer(self, txs: Sequence[SignedTx]) -> list[str | None]:
        return self.shell.offer(txs)

    def on_txs_answer(self, peer: PeerId, request_id: int, txs: tuple[SignedTx, ...]) -> None:
        self.shell.on_txs_answer(peer, request_id, txs)

    def get_known_txs(self, tx_ids: tuple[bytes, ...]) -> list[SignedTx]:
        return self.shell.replica.get_known_txs(tx_ids)

    def get_pending(self, tx_id: bytes) -> SignedTx | None:
        return self.shell.replica.get_pending(tx_id)

    def is_committed_recently(self, tx_id: bytes) -> bool | None:
        return self.shell.replica.is_committed_recently(tx_id)  # delivered counts: it is ordered already

    @property
    def pending_count(self) -> int:
        return self.shell.replica.pending_tx_count

    @property
    def pending_bytes(self) -> int:
        return self.shell.replica.pending_bytes

    def get_lingering(self, older_than_s: float, limit: int) -> list[SignedTx]:
        return self.shell.replica.get_pending_before(now_ms() - int(older_than_s * 1000), limit)

    def drop_expired(self, next_height: int) -> int:
        return 0  # the replica drops them as heights are delivered, the only way a transaction expires

    async def _wait_for_quorum_links(self) -> None:
        """Give peers a moment to connect, so the replica's first probe for missed blocks reaches someone."""
        if self.is_linked():
            return
        try:
            await asyncio.wait_for(self._quorum_linked.wait(), STARTUP_LINK_WAIT_S)
        except TimeoutError:
            log.warning("starting consensus before a quorum of validators is connected")
