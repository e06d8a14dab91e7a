"""A deterministic simulation that drives the real consensus.Replica through faults.

Everything random comes from one seeded random.Random; time is virtual (an event queue), so a seed replays
exactly. The harness is a second shell for the replica: it keeps a durable store per node (consensus log,
blocks with certificates, execution roots) that survives crashes, a fake deterministic executor
(state_root = H(prev_root || block_hash), results_root = merkle root of the tx ids), and a network that
delays, drops, duplicates, reorders and partitions. Every message crosses the network as bytes through
consensus.messages.encode_message/decode_message. Byzantine nodes run the real replica and tamper with what
it sends. Signature verification is cached per run (key, digest, signature) -> bool: the replica still
verifies every signature through its injected `verify`, the cache only avoids recomputing one verification
the other n-2 receivers of a broadcast would repeat.

Reproduce one seed: SIM_SEED=1234 .venv/bin/pytest tests/consensus/test_sim.py -k seeds
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

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
    Persist,
    ReportMisbehaviour,
    Send,
    SetTimer,
    TimerFired,
    TxReceived,
    TxRefused,
    TxsFetched,
)
from consensus.membership import Membership
from consensus.messages import (
    Commit,
    Message,
    Prepare,
    PrePrepare,
    ViewChange,
    compute_signing_digest,
    decode_message,
    encode_message,
)
from consensus.replica import ExecutionRoots, RecoveredState, Replica, ReplicaConfig
from consensus.transfer import FETCH_CHUNK
from core.block import (
    EMPTY_ROOT,
    Block,
    BlockHeader,
    CertificateError,
    CommitCertificate,
    verify_commit_certificate,
)
from core.devkeys import dev_node_key
from core.errors import CodecError
from core.genesis import ConsensusParams
from core.hashing import Domain, merkle_root, tagged_hash
from core.keys import SigningKey, is_valid_signature
from core.tx import SignedTx, TxBody, sign_transaction
from core.validators import ValidatorSet, compute_activation_height

CHAIN_ID = "sim-devnet"
GENESIS_HASH = tagged_hash(Domain.GENESIS, b"simulation")
GENESIS_TIME_MS = 1_700_000_000_000
GENESIS_ROOT = tagged_hash(Domain.STATE_BUCKET, b"")
CLIENT_KEY = SigningKey.from_insecure_label("sim-client")

SIM_PARAMS = ConsensusParams(
    block_txs_max=4,
    block_bytes_max=64 * 1024,
    tx_bytes_max=4096,
    batch_wait_ms=5,
    view_timeout_ms=200,
    checkpoint_interval=4,
    pipeline_depth=2,
    tx_validity_blocks_max=1000,
    clock_drift_max_ms=5000,
)

_NODE_KEYS = [dev_node_key("validator", i) for i in range(16)]
_TX_CACHE: dict[int, SignedTx] = {}


def make_tx(number: int, valid_until: int = 1000) -> SignedTx:
    """Transaction `number` of the simulated client (cached: signing is the expensive part)."""
    key = number * 100_000 + valid_until
    if key not in _TX_CACHE:
        body = TxBody(
            CHAIN_ID, "carbon", "noop", {"n": number}, "sim", CLIENT_KEY.public_key, number, valid_until
        )
        _TX_CACHE[key] = sign_transaction(body, CLIENT_KEY)
    return _TX_CACHE[key]


_CHANGE_CACHE: dict[tuple[int, tuple[tuple[int, bytes], ...], int], SignedTx] = {}


def make_change_tx(number: int, members: list[tuple[int, bytes]], valid_until: int = 1000) -> SignedTx:
    """The simulated governance: a transaction that, once committed, approves this validator set."""
    key = (number, tuple(members), valid_until)
    if key not in _CHANGE_CACHE:
        args = {"members": [[n, k.hex()] for n, k in members], "n": number}
        body = TxBody(
            CHAIN_ID,
            "carbon",
            "set_validators",
            args,
            "sim",
            CLIENT_KEY.public_key,
            10**9 + number,
            valid_until,
        )
        _CHANGE_CACHE[key] = sign_transaction(body, CLIENT_KEY)
    return _CHANGE_CACHE[key]


def compute_next_root(prev_root: bytes, block: Block) -> bytes:
    return tagged_hash(Domain.STATE_NODE, prev_root + block.block_hash)


@dataclass
class Durable:
    """What survives a crash: the consensus log, committed blocks, execution roots and the validator-set
    changes execution approved (the chain state a real node reads them from)."""

    log: dict[bytes, bytes] = field(default_factory=dict)
    blocks: dict[int, tuple[Block, CommitCertificate]] = field(default_factory=dict)
    roots: dict[int, ExecutionRoots] = field(
        default_factory=lambda: {0: ExecutionRoots(GENESIS_ROOT, EMPTY_ROOT)}
    )
    changes: list[tuple[int, ValidatorSet]] = field(default_factory=list)  # (approved at, new set)

    @property
    def height(self) -> int:
        return len(self.blocks)

    def execute(self, height: int, params: ConsensusParams, *, skew: bool = False) -> ValidatorSet | None:
        """Execute a stored block: its roots, and the validator set it approves, if any. A change is
        approved only while none is pending (the rule the chaincode enforces), the first in its block."""
        block = self.blocks[height][0]
        self.roots[height] = compute_roots(self.roots[height - 1].state_root, block, skew)
        if self.changes:
            approved_at = self.changes[-1][0]
            last = compute_activation_height(
                approved_at,
                checkpoint_interval=params.checkpoint_interval,
                pipeline_depth=params.pipeline_depth,
            )
            if height <= last:
                return None
        for tx in block.txs:
            if tx.body.function == "set_validators":
                change = ValidatorSet(tuple((n, bytes.fromhex(k)) for n, k in tx.body.args["members"]))
                self.changes.append((height, change))
                return change
        return None

    def execute_stored(self, params: ConsensusParams, *, skew: bool = False) -> None:
        """Execute every stored block not yet executed (what a restarting shell does first)."""
        for height in range(len(self.roots), len(self.blocks) + 1):
            self.execute(height, params, skew=skew)

    def membership(self, genesis: ValidatorSet, params: ConsensusParams) -> Membership:
        return Membership(
            genesis,
            checkpoint_interval=params.checkpoint_interval,
            pipeline_depth=params.pipeline_depth,
            executed_height=len(self.roots) - 1,
            approvals=self.changes,
        )


def compute_roots(prev_root: bytes, block: Block, skew: bool) -> ExecutionRoots:
    state_root = compute_next_root(prev_root, block)
    if skew:  # a non-deterministic executor: diverges from the others
        state_root = tagged_hash(Domain.STATE_BUCKET, state_root)
    return ExecutionRoots(state_root, merkle_root([tx.tx_id for tx in block.txs]))


@dataclass
class Node:
    index: int
    key: SigningKey
    durable: Durable = field(default_factory=Durable)
    replica: Replica | None = None
    driver: Driver | None = None  # the production driver loop, over SimEffects
    drain_scheduled: bool = False  # inputs are queued and a "drain" event is due
    up: bool = True
    paused_until: int = 0
    incarnation: int = 0  # bumps at each crash; events of an older incarnation are dropped
    timer_gen: dict[str, int] = field(default_factory=dict)
    byzantine: str | None = None  # None | "equivocate" | "double_vote" | "garbage" | "silent" | "bad_server"
    # | "withhold" (proposes by ids, serves no transaction)
    skewed: bool = False  # non-deterministic executor
    halted: str | None = None
    exec_ready_ms: int = 0  # keeps executions of one node in order


@dataclass
class Violation:
    kind: str
    detail: str


class SimEffects:
    """The simulation's side of the driver: a virtual clock, a durable store per node, a lossy network."""

    def __init__(self, sim: Simulation, node: Node) -> None:
        self.sim = sim
        self.node = node

    def now_ms(self) -> int:
        return self.sim.now

    def persist(self, output: Persist) -> None:
        log = self.node.durable.log
        for record in output.records:
            if record.value is None:
                log.pop(record.key, None)
            else:
                log[record.key] = record.value

    def send(self, output: Send) -> None:
        self.sim.send_from(self.node, output)

    def execute(self, output: ExecuteBlock) -> None:
        self.sim.store_block(self.node, output)  # executes later, as an "exec" event

    def set_timer(self, output: SetTimer) -> None:
        node = self.node
        gen = node.timer_gen.get(output.timer_id, 0) + 1
        node.timer_gen[output.timer_id] = gen
        self.sim.schedule(
            self.sim.now + output.delay_ms, "timer", node.index, node.incarnation, output.timer_id, gen
        )

    def cancel_timer(self, output: CancelTimer) -> None:
        self.node.timer_gen[output.timer_id] = self.node.timer_gen.get(output.timer_id, 0) + 1

    def fetch(self, output: FetchBlocks) -> None:
        self.sim.transmit(self.node.index, output.peer, "fetch_req", (output.from_height, output.to_height))

    def fetch_txs(self, output: FetchTxs) -> None:
        self.sim.transmit(self.node.index, output.peer, "txs_req", output.tx_ids)

    def report(self, output: ReportMisbehaviour) -> None:
        self.sim.reports.append((self.node.index, output))

    def refuse_tx(self, output: TxRefused) -> None:
        pass  # the simulated client resubmits until every honest node committed

    def halt(self, output: Halt) -> None:
        self.node.halted = output.reason


class Simulation:
    def __init__(
        self,
        seed: int,
        n: int = 4,
        *,
        spare: int = 0,
        params: ConsensusParams = SIM_PARAMS,
        delay_ms: tuple[int, int] = (1, 10),
        drop_rate: float = 0.0,
        dup_rate: float = 0.0,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.n = n
        self.params = params
        self.now = GENESIS_TIME_MS
        self.delay_ms = delay_ms
        self.drop_rate = drop_rate
        self.dup_rate = dup_rate
        self.blocked: set[tuple[int, int]] = set()
        self.drop_message: Callable[[int, int, Message], bool] | None = None  # (src, dst, message) -> drop?
        self._queue: list[tuple[int, int, str, tuple[Any, ...]]] = []
        self._seq = 0
        self._verify_cache: dict[tuple[bytes, bytes, bytes], bool] = {}
        self._decode_cache: dict[bytes, Message | None] = {}
        self.keys = tuple(_NODE_KEYS[i].public_key for i in range(n))
        self.genesis_set = ValidatorSet.of_keys(self.keys)
        # spare nodes (numbers n .. n+spare-1) run from genesis without being validators: governance can add
        # them (join_as_validator); until then they follow the chain as a joining validator does
        self.nodes = [Node(i, _NODE_KEYS[i]) for i in range(n + spare)]
        self.reports: list[tuple[int, ReportMisbehaviour]] = []
        self.change_requests: list[ValidatorSet] = []
        self.submitted: dict[bytes, SignedTx] = {}
        self.trace: list[str] = []
        self.tracing = False
        for node in self.nodes:
            self._boot(node)

    # --- plumbing ---------------------------------------------------------------------------------------

    def verify(self, public_key: bytes, digest: bytes, signature: bytes) -> bool:
        key = (public_key, digest, signature)
        result = self._verify_cache.get(key)
        if result is None:
            result = self._verify_cache[key] = is_valid_signature(public_key, digest, signature)
        return result

    def config(self, index: int) -> ReplicaConfig:
        return ReplicaConfig(CHAIN_ID, GENESIS_HASH, GENESIS_TIME_MS, self.keys, self.params, index)

    def schedule(self, at_ms: int, kind: str, *payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, kind, payload))

    def at(self, at_ms: int, action: Callable[[], None]) -> None:
        """Run `action` at virtual time GENESIS_TIME_MS + at_ms."""
        self.schedule(GENESIS_TIME_MS + at_ms, "action", action)

    def _boot(self, node: Node) -> None:
        durable = node.durable
        durable.execute_stored(self.params, skew=node.skewed)
        height = durable.height
        first = max(1, height - self.params.tx_validity_blocks_max + 1)
        recovered = RecoveredState(
            executed_height=height,
            roots={
                h: durable.roots[h] for h in range(max(0, height - self.params.pipeline_depth), height + 1)
            },
            recent_blocks=[durable.blocks[h] for h in range(first, height + 1)],
            log=dict(durable.log),
            validator_changes=tuple(durable.changes),
        )
        node.replica = Replica(self.config(node.index), node.key, recovered, verify=self.verify)
        node.driver = Driver(node.replica, SimEffects(self, node), group_commit=True)
        node.up = True
        node.exec_ready_ms = self.now
        node.driver.start()

    def _feed(self, node: Node, event: Input) -> None:
        """Hand an input to the node's driver. Batched like the node's shell does with peer frames: inputs
        that arrive at the same virtual time are drained together, in one group commit."""
        if not node.up or node.driver is None or node.halted:
            return
        node.driver.enqueue(event)
        if not node.drain_scheduled:
            node.drain_scheduled = True
            self.schedule(self.now, "drain", node.index, node.incarnation)

    def store_block(self, node: Node, output: ExecuteBlock) -> None:
        height = output.block.header.height
        if height != node.durable.height + 1:
            raise AssertionError(f"node {node.index}: ExecuteBlock {height} after {node.durable.height}")
        node.durable.blocks[height] = (output.block, output.certificate)
        node.exec_ready_ms = max(node.exec_ready_ms, self.now) + self.rng.randint(0, 3)
        self.schedule(node.exec_ready_ms, "exec", node.index, node.incarnation)

    # --- network ----------------------------------------------------------------------------------------

    def send_from(self, node: Node, output: Send) -> None:
        targets = (
            [i for i in range(len(self.nodes)) if i != node.index] if output.to == BROADCAST else [output.to]
        )
        behaviour = node.byzantine
        if behaviour == "silent":
            return
        honest_frame = encode_message(output.message)  # once for every target it reaches unchanged
        for position, target in enumerate(targets):
            message = output.message
            if self.drop_message is not None and self.drop_message(node.index, target, message):
                continue
            if (
                behaviour == "equivocate"
                and isinstance(message, PrePrepare)
                and position >= len(targets) // 2
            ):
                message = self._forge_block(node, message)
            if behaviour == "double_vote" and isinstance(message, Prepare | Commit) and position % 2 == 1:
                message = self._forge_vote(node, message)
            frame = honest_frame if message is output.message else encode_message(message)
            self.transmit(node.index, target, "msg", frame)
            if behaviour == "equivocate" and position == len(targets) - 1:
                self.transmit(node.index, target, "msg", honest_frame)
            if (
                behaviour == "double_vote"
                and position == len(targets) - 1
                and isinstance(message, Prepare | Commit)
            ):
                self.transmit(node.index, target, "msg", encode_message(self._forge_vote(node, message)))

    def _sign(self, node: Node, message: Any) -> Any:
        return replace(message, signature=node.key.sign(compute_signing_digest(CHAIN_ID, message)))

    def _forge_block(self, node: Node, pp: PrePrepare) -> PrePrepare:
        return self._sign(node, replace(pp, header=replace(pp.header, time_ms=pp.header.time_ms + 1)))

    def _forge_vote(self, node: Node, vote: Prepare | Commit) -> Prepare | Commit:
        return self._sign(node, replace(vote, block_hash=tagged_hash(Domain.BLOCK_HEADER, vote.block_hash)))

    def transmit(self, src: int, dst: int, kind: str, payload: Any) -> None:
        if (src, dst) in self.blocked or self.rng.random() < self.drop_rate:
            return
        copies = 2 if self.rng.random() < self.dup_rate else 1
        for _ in range(copies):
            self.schedule(self.now + self.rng.randint(*self.delay_ms), kind, src, dst, payload)

    def _decode(self, data: bytes) -> Message | None:
        if data not in self._decode_cache:
            try:
                message: Message | None = decode_message(data, params=self.params)
            except CodecError:
                message = None
            self._decode_cache[data] = message
        return self._decode_cache[data]

    # --- the event loop ---------------------------------------------------------------------------------

    def run_until(self, at_ms: int, stop: Callable[[], bool] | None = None, check_every_ms: int = 50) -> bool:
        """Process events up to GENESIS_TIME_MS + at_ms; True if `stop` became true on the way."""
        end = GENESIS_TIME_MS + at_ms
        next_check = self.now
        while self._queue and self._queue[0][0] <= end:
            when, _, kind, payload = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            self._dispatch(kind, payload)
            if stop is not None and self.now >= next_check:
                next_check = self.now + check_every_ms
                if stop():
                    return True
        self.now = max(self.now, end)
        return stop is not None and stop()

    def _dispatch(self, kind: str, payload: tuple[Any, ...]) -> None:
        if kind == "action":
            payload[0]()
            return
        if kind == "drain":
            index, incarnation = payload
            node = self.nodes[index]
            if node.incarnation == incarnation and node.driver is not None:
                node.drain_scheduled = False
                node.driver.drain()
            return
        if kind == "timer":
            index, incarnation, timer_id, gen = payload
            node = self.nodes[index]
            if node.incarnation != incarnation or node.timer_gen.get(timer_id) != gen:
                return
            if self._postpone_if_paused(node, kind, payload):
                return
            self._feed(node, TimerFired(timer_id))
            return
        if kind == "exec":
            # Each event executes the next stored block, not a given height: the executor runs blocks in
            # order (as the node's applier does), though a pause cut short by the heal can postpone the
            # event of one block past those of the next.
            index, incarnation = payload
            node = self.nodes[index]
            if node.incarnation != incarnation or not node.up:
                return
            if self._postpone_if_paused(node, kind, payload):
                return
            durable = node.durable
            height = len(durable.roots)
            if height not in durable.blocks:
                return
            change = durable.execute(height, self.params, skew=node.skewed)
            roots = durable.roots[height]
            self._feed(node, BlockExecuted(height, roots.state_root, roots.results_root, change))
            return
        src, dst, data = payload
        node = self.nodes[dst]
        if not node.up or self._postpone_if_paused(node, kind, payload):
            return
        if kind == "msg":
            message = self._decode(data)
            if message is None:
                self.reports.append((dst, ReportMisbehaviour(src, "undecodable frame")))
                return
            self._feed(node, MessageReceived(src, message))
        elif kind == "tx":
            self._feed(node, TxReceived((data,)))
        elif kind == "fetch_req":
            first, last = data
            served = self._serve(node, first, last)
            self.transmit(dst, src, "fetch_resp", served)
        elif kind == "fetch_resp":
            self._feed(node, BlocksFetched(src, data))
        elif kind == "txs_req":
            if node.replica is not None and node.byzantine not in ("silent", "withhold"):
                self.transmit(dst, src, "txs_resp", tuple(node.replica.get_known_txs(data)))
        elif kind == "txs_resp":
            self._feed(node, TxsFetched(src, data))

    def _postpone_if_paused(self, node: Node, kind: str, payload: tuple[Any, ...]) -> bool:
        if node.paused_until > self.now:
            self.schedule(node.paused_until, kind, *payload)
            return True
        return False

    def _serve(self, node: Node, first: int, last: int) -> tuple[tuple[Block, CommitCertificate], ...]:
        last = min(last, first + FETCH_CHUNK - 1, node.durable.height)
        served = tuple(node.durable.blocks[h] for h in range(first, last + 1))
        if node.byzantine == "bad_server" and served:
            block, cert = served[0]
            bad_votes = tuple((i, bytes(64)) for i, _ in cert.votes)
            served = ((block, replace(cert, votes=bad_votes)), *served[1:])
        return served

    # --- validator-set changes -------------------------------------------------------------------------

    def current_members(self) -> list[tuple[int, bytes]]:
        """The members of the newest set an honest node approved (the genesis set at first)."""
        furthest = max(self.honest_nodes(), key=lambda node: len(node.durable.changes))
        latest = furthest.durable.changes[-1][1] if furthest.durable.changes else self.genesis_set
        return list(latest.members)

    def is_approved(self, validators: ValidatorSet) -> bool:
        return any(change == validators for node in self.honest_nodes() for _, change in node.durable.changes)

    def request_change(
        self, members: list[tuple[int, bytes]], *, after: ValidatorSet | None = None, every_ms: int = 400
    ) -> ValidatorSet:
        """Governance asks for this validator set (once `after` is approved): submitted again, as a new
        transaction, every `every_ms` until an honest node approved it (while another change is pending
        a request changes nothing)."""
        target = ValidatorSet(tuple(sorted(members)))
        attempt = len(self.change_requests)
        self.change_requests.append(target)

        def again(round_: int) -> None:
            if self.is_approved(target):
                return
            if after is None or self.is_approved(after):
                tip = max(node.durable.height for node in self.nodes)
                valid_until = max(1000, tip + self.params.tx_validity_blocks_max // 2)
                self.submit(make_change_tx(attempt * 1000 + round_, list(target.members), valid_until))
            self.schedule(self.now + every_ms, "action", lambda: again(round_ + 1))

        again(0)
        return target

    def rotate_key(self, index: int, key: SigningKey) -> None:
        """The validator's node now runs with a new key (its old one leaked): crash, new key, restart."""
        self.crash(index)
        self.nodes[index].key = key
        self.restart(index)

    # --- faults -----------------------------------------------------------------------------------------

    def submit(self, tx: SignedTx, targets: list[int] | None = None) -> None:
        """The client sends a transaction to these nodes (all by default), e.g. via gossip."""
        self.submitted[tx.tx_id] = tx
        for target in range(len(self.nodes)) if targets is None else targets:
            if self.rng.random() >= self.drop_rate:
                self.schedule(self.now + self.rng.randint(*self.delay_ms), "tx", -1, target, tx)

    def resubmit_pending(self) -> None:
        """Client retransmission: resend every submitted transaction some honest node lacks."""
        for tx_id, tx in self.submitted.items():
            if any(tx_id not in self.committed_tx_ids(node) for node in self.honest_nodes()):
                self.submit(tx)

    def crash(self, index: int) -> None:
        node = self.nodes[index]
        node.up = False
        node.replica = None
        node.driver = None
        node.drain_scheduled = False
        node.incarnation += 1
        node.timer_gen = {}

    def restart(self, index: int) -> None:
        """Boot a crashed node from its durable store; its links to the others come up again."""
        node = self.nodes[index]
        if not node.up:
            self._boot(node)
            for other in self.nodes:
                if other.index != index and other.up and (index, other.index) not in self.blocked:
                    self._connect(index, other.index)

    def _connect(self, a: int, b: int) -> None:
        """A link came up: each side's shell tells its replica (PeerConnected)."""
        self._feed(self.nodes[a], PeerConnected(b))
        self._feed(self.nodes[b], PeerConnected(a))

    def pause(self, index: int, duration_ms: int) -> None:
        self.nodes[index].paused_until = self.now + duration_ms

    def partition(self, *groups: list[int]) -> None:
        """Cut every link between the groups; links that were cut before and are not now come up again."""
        was_blocked = self.blocked
        self.blocked = {
            (a, b)
            for a in range(len(self.nodes))
            for b in range(len(self.nodes))
            if not any(a in g and b in g for g in groups)
        }
        for a, b in sorted(was_blocked - self.blocked):
            if a < b:
                self._connect(a, b)

    def link_up(self, a: int, b: int) -> None:
        """Reopen the link between two nodes; each side's shell tells its replica (PeerConnected)."""
        self.blocked -= {(a, b), (b, a)}
        self._connect(a, b)

    def heal(self) -> None:
        self.partition(list(range(len(self.nodes))))
        self.drop_rate = 0.0
        for node in self.nodes:
            node.paused_until = min(node.paused_until, self.now)
            self.restart(node.index)

    def garbage_burst(self, index: int) -> None:
        """A Byzantine node sends undecodable bytes, bad signatures and far-future views and heights."""
        node = self.nodes[index]
        target = self.rng.choice([i for i in range(self.n) if i != index])
        view = 0 if node.replica is None else node.replica.view
        height = node.durable.height + 1
        digest = tagged_hash(Domain.BLOCK_HEADER, self.rng.randbytes(8))
        choice = self.rng.randrange(6)
        if choice == 0:
            self.transmit(index, target, "msg", self.rng.randbytes(self.rng.randint(1, 200)))
        elif choice == 1:
            forged = Prepare(view, height, digest, index, self.rng.randbytes(64))
            self.transmit(index, target, "msg", encode_message(forged))
        elif choice == 2:
            far_view = self._sign(node, Prepare(view + 1000, height, digest, index, b""))
            self.transmit(index, target, "msg", encode_message(far_view))
        elif choice == 3:
            far_height = self._sign(node, Commit(view, height + 10**6, digest, index, b""))
            self.transmit(index, target, "msg", encode_message(far_height))
        elif choice == 4:
            vc = self._sign(node, ViewChange(view + 100, index, None, (), b""))
            self.transmit(index, target, "msg", encode_message(vc))
        else:
            impersonated = self._sign(node, Prepare(view, height, digest, target, b""))
            self.transmit(index, target, "msg", encode_message(impersonated))

    # --- observation and checks -------------------------------------------------------------------------

    def honest_nodes(self) -> list[Node]:
        return [node for node in self.nodes if node.byzantine is None and not node.skewed]

    def committed_tx_ids(self, node: Node) -> set[bytes]:
        return {tx.tx_id for block, _ in node.durable.blocks.values() for tx in block.txs}

    def all_committed_everywhere(self) -> bool:
        wanted = set(self.submitted)
        return all(wanted <= self.committed_tx_ids(node) for node in self.honest_nodes())

    def check_safety(self) -> list[Violation]:
        violations: list[Violation] = []
        honest = self.honest_nodes()
        top = max((node.durable.height for node in honest), default=0)
        for height in range(1, top + 1):
            hashes = {
                node.durable.blocks[height][0].block_hash for node in honest if height in node.durable.blocks
            }
            if len(hashes) > 1:
                violations.append(Violation("agreement", f"height {height}: {len(hashes)} different blocks"))
            roots = {node.durable.roots[height] for node in honest if height in node.durable.roots}
            if len(roots) > 1:
                violations.append(Violation("state", f"height {height}: {len(roots)} different roots"))
        for node in honest:
            seen: set[bytes] = set()
            for height in range(1, node.durable.height + 1):
                block, cert = node.durable.blocks[height]
                prev = GENESIS_HASH if height == 1 else node.durable.blocks[height - 1][0].block_hash
                if block.header.prev_hash != prev or cert.block_hash != block.block_hash:
                    violations.append(Violation("chain", f"node {node.index} height {height} does not link"))
                for tx in block.txs:
                    if tx.tx_id not in self.submitted:
                        violations.append(Violation("validity", f"node {node.index}: unknown tx at {height}"))
                    if tx.tx_id in seen:
                        violations.append(Violation("validity", f"node {node.index}: tx twice, at {height}"))
                    seen.add(tx.tx_id)
            if node.halted:
                violations.append(Violation("halt", f"honest node {node.index} halted: {node.halted}"))
            violations += self._check_certified_by_the_set_in_force(node)
        honest_indexes = {node.index for node in honest}
        for reporter, report in self.reports:
            if reporter in honest_indexes and report.peer in honest_indexes:
                violations.append(
                    Violation(
                        "accusation", f"node {reporter} accused honest node {report.peer}: {report.reason}"
                    )
                )
        return violations

    def check_certificates(self, node: Node) -> None:
        """Verify every stored certificate of one node with the real core function (raises)."""
        membership = node.durable.membership(self.genesis_set, self.params)
        for height, (block, cert) in node.durable.blocks.items():
            if membership.is_known(height):
                verify_commit_certificate(cert, block.header, membership.at(height))

    def _check_certified_by_the_set_in_force(self, node: Node) -> list[Violation]:
        """Every stored block is certified by a quorum of the set in force at its height, which its header
        names: no height is certified by another set, and a removed validator helps certify nothing."""
        membership = node.durable.membership(self.genesis_set, self.params)
        violations = []
        for height, (block, cert) in sorted(node.durable.blocks.items()):
            if not membership.is_known(height):
                break  # stored but not executed yet: the set of the next heights may still change
            validators = membership.at(height)
            try:
                verify_commit_certificate(cert, block.header, validators)
            except CertificateError as exc:
                violations.append(Violation("certificate", f"node {node.index} height {height}: {exc}"))
            if block.header.validators_hash != validators.set_hash:
                violations.append(
                    Violation("certificate", f"node {node.index} height {height}: validators_hash")
                )
        return violations

    def header(self, index: int, height: int) -> BlockHeader:
        return self.nodes[index].durable.blocks[height][0].header
