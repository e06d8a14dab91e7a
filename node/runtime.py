"""One running node: load config, genesis and key; open storage; recover; run the peer layer, the node's
role (node.roles: a validator's consensus shell or an observer's follower), and the API under one
structured shutdown.

SIGTERM or Ctrl-C stops the API first (no new transactions), then the peer layer and timers, then closes
the database; every committed block was already durable (one synced batch per block).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from chaincode import build_registry
from consensus.events import REFUSED_EXPIRED, REFUSED_FULL, REFUSED_REPLAY, REFUSED_WRONG_CHAIN
from consensus.messages import compute_message_bytes_max
from consensus.pool import PoolLimits
from core.block import Block
from core.errors import CarbonchainError, ConfigError, InvalidInput, TransactionError
from core.genesis import ConsensusParams, Genesis, load_genesis
from core.keys import SigningKey
from core.keystore import PASSPHRASE_ENV, is_encrypted_key_file, load_key
from core.tx import SignedTx, decode_transaction, validate_transaction
from node.api import add_fallback_route, build_api
from node.applier import BlockApplier
from node.backend import NodeBackend
from node.channels import CHANNEL_SYNC
from node.clock import configure_clock_offset
from node.config import NodeConfig, load_config, resolve
from node.cpuprofile import install_from_environment as install_cpu_profile
from node.diskguard import DISK_CHECK_INTERVAL_S, MIB, DiskGuard, compute_free_bytes_min, get_free_bytes
from node.events import EventHub
from node.evidence import EvidenceReporter
from node.gossip import TxGossip, decode_tx_batch
from node.joining import ValidatorsFile, load_validators_file
from node.logs import configure_logging
from node.metrics import NodeMetrics
from node.observer import ObserverFollower
from node.roles import Role
from node.roster import Roster, read_validator_change, read_validator_history
from node.sync import (
    BlocksAnswer,
    GetTxs,
    TxsAnswer,
    decode_sync,
    encode_blocks_answer,
    encode_txs_answer,
    serve_block_range,
)
from node.validator import ValidatorRole, ValidatorShell
from node.verified import VerifiedCache
from node.web import add_dashboard
from p2p import PeerId, PeerLimits, PeerNetwork, TlsConfig
from p2p.framing import FRAME_OVERHEAD_BYTES_MAX
from p2p.identity import ValidatorEntry
from storage import Store

log = logging.getLogger(__name__)

MEMPOOL_SWEEP_S = 5.0
REGOSSIP_AFTER_S = 5.0  # pending this long: send to the validators again
REGOSSIP_TXS_MAX = 2000  # per sweep, so a backlog is not re-sent all at once
SHUTDOWN_GRACE_S = 10.0
REFUSAL_MESSAGES = {
    REFUSED_FULL: "the pending pool is full; retry later",
    REFUSED_REPLAY: "the transaction is already committed",
    REFUSED_EXPIRED: "the transaction expired (valid_until is below the next height)",
    REFUSED_WRONG_CHAIN: "the transaction is for another chain",
}
RECONNECT_MAX_MS = 3000


def compute_frame_bytes_max(configured: int, consensus: ConsensusParams) -> int:
    """The peer frame limit: the configured one, raised to what this chain's largest messages need (a
    VIEW-CHANGE or NEW-VIEW carrying pipeline_depth full blocks; a sync answer holding one full block and its
    results), so a node can always send them."""
    consensus_frame = compute_message_bytes_max(consensus) + FRAME_OVERHEAD_BYTES_MAX
    return max(configured, consensus_frame, 2 * consensus.block_bytes_max)


@dataclass(frozen=True)
class NodeIdentity:
    role: str  # "validator" or "observer"
    index: int
    peer_id: PeerId
    key: SigningKey

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"


def load_identity(home: Path, config: NodeConfig, genesis: Genesis) -> NodeIdentity:
    """The node key, checked against this node's entry in the genesis or, for a validator that joined
    later (or replaced its key), in its validators file."""
    key_path = resolve(home, config.node.key_file)
    passphrase = os.environ.get(PASSPHRASE_ENV) if is_encrypted_key_file(key_path) else None
    key = load_key(key_path, passphrase=passphrase)
    role, index = config.node.role, config.node.index
    peer_id = PeerId.validator(index) if role == "validator" else PeerId.observer(index)
    joined = load_joined(home, config, genesis)
    if joined is not None:
        entry = joined.get(index)
        if joined.number != index or entry is None or entry.node_key != key.public_key:
            raise ConfigError(f"the node key is not validator {index}'s in {config.node.validators_file}")
        return NodeIdentity(role, index, peer_id, key)
    members = genesis.validators if role == "validator" else genesis.observers
    if index >= len(members):
        raise ConfigError(f"config says {role} {index}, but genesis has {len(members)} {role}s")
    if members[index].node_key_bytes != key.public_key:
        raise ConfigError(f"the node key does not match genesis {role}s[{index}].node_key")
    return NodeIdentity(role, index, peer_id, key)


def load_joined(home: Path, config: NodeConfig, genesis: Genesis) -> ValidatorsFile | None:
    """The validators file of a validator that joined after genesis, if the config names one."""
    if not config.node.validators_file:
        return None
    if config.node.role != "validator":
        raise ConfigError("[node] validators_file is for validators only")
    return load_validators_file(resolve(home, config.node.validators_file), genesis)


class NotOrdering(TransactionError):
    """The node has stopped ordering for now (its disk is nearly full): HTTP 503, retry here later or elsewhere."""

    def __init__(self, message: str) -> None:
        super().__init__("not_ordering", message)


def _dial_addresses(config: NodeConfig, genesis: Genesis) -> dict[PeerId, str]:
    """`[peer.dial_addresses]`, checked against the genesis."""
    addresses = config.peer.dial_addresses
    return {PeerId.validator(i): address for i, address in sorted(addresses.items())}


class Node:
    def __init__(self, home: Path, config: NodeConfig, genesis: Genesis, identity: NodeIdentity) -> None:
        self.home = home
        self.config = config
        self.genesis = genesis
        self.identity = identity
        self.metrics = NodeMetrics()
        self.events = EventHub(
            queue_max=config.api.event_queue_max, on_drop=self.metrics.event_subscribers_dropped.inc
        )
        self.registry = build_registry()
        self.store = Store.open(resolve(home, config.node.data_dir))
        self._initialise_genesis()
        self.pool_limits = PoolLimits.for_chain(
            genesis.consensus.block_txs_max,
            txs_max=config.mempool.txs_max,
            bytes_max=config.mempool.bytes_max,
        )
        self.verified = VerifiedCache()
        threads = config.node.verify_threads
        self._verifier = ThreadPoolExecutor(threads, thread_name_prefix="verify") if threads > 1 else None
        self.applier = BlockApplier(self.store, self.registry, self.events, self.metrics)
        self.joined = load_joined(home, config, genesis)
        self.roster = Roster(
            genesis,
            executed_height=self.store.last_height,
            history=read_validator_history(self.store),
            read_change=read_validator_change,
        )
        self.network = PeerNetwork(
            genesis,
            identity.key,
            identity.peer_id,
            listen_host=config.peer.listen_host,
            listen_port=self._peer_port() if identity.role == "validator" else None,
            tls=self._tls(),
            limits=PeerLimits(
                frame_bytes_max=compute_frame_bytes_max(config.peer.frame_bytes_max, genesis.consensus),
                # A restarted validator waits for the lower-indexed ones to dial it: keep their backoff short.
                reconnect_max_ms=RECONNECT_MAX_MS,
                ban_duration_ms=config.peer.ban_duration_ms,
            ),
            peer_addresses=_dial_addresses(config, genesis),
            validators=self._first_validators(),
        )
        self.roster.set_listener(self.network.update_validators)
        self.gossip = TxGossip(self.network)
        self.disk_guard = DiskGuard(
            resolve(home, config.node.data_dir),
            compute_free_bytes_min(config.node.disk_free_bytes_min, genesis.consensus.block_bytes_max),
        )
        self.role = self._build_role()
        for channel, handler in self.role.get_frame_handlers().items():
            self.network.on(channel, handler)
        self.network.on(CHANNEL_SYNC, self._on_sync)
        self.network.on_connect(self.role.on_peer_connected)
        self.network.on_disconnect(self.role.on_peer_disconnected)
        self.backend = NodeBackend(
            genesis=genesis,
            node_id=identity.name,
            store=self.store,
            network=self.network,
            role=self.role,
            admit=self._admit_submitted,
            events=self.events,
            metrics=self.metrics,
            event_replay_blocks_max=config.api.event_replay_blocks_max,
        )
        self._watch_metrics()

    # --- setup ------------------------------------------------------------------------------------------

    def _initialise_genesis(self) -> None:
        if self.store.last_height < 0:
            root = self.store.initialise_genesis(
                self.genesis.genesis_hash, self.registry.genesis_writes(self.genesis)
            )
            log.info("initialised genesis state, root %s", root.hex(), extra={"height": 0})
        elif self.store.genesis_hash != self.genesis.genesis_hash:
            raise ConfigError(
                "the data dir belongs to another chain (its genesis hash differs); use another data_dir"
            )

    def _first_validators(self) -> list[ValidatorEntry]:
        """Whom to admit and dial at start: the chain's set as executed here, unless that does not list us
        yet (a validator that joined later, still behind): then its validators file."""
        admitted = self.roster.admitted()
        ours = (self.identity.index, self.identity.key.public_key)
        if self.joined is not None and ours not in [(v.number, v.node_key) for v in admitted]:
            return self.joined.entries()
        return admitted

    def _peer_port(self) -> int:
        if self.config.peer.listen_port:
            return self.config.peer.listen_port
        return int(self._own_peer_address().rsplit(":", 1)[1])

    def _own_peer_address(self) -> str:
        """Our own peer address: from the validators file for a validator that joined, else the genesis."""
        if self.joined is not None:
            entry = self.joined.get(self.identity.index)
            assert entry is not None  # load_validators_file checked it
            return entry.peer_address
        return self.genesis.validators[self.identity.index].peer_address

    def _api_port(self) -> int:
        if self.config.api.listen_port:
            return self.config.api.listen_port
        if self.joined is not None:
            raise ConfigError("a validator that joined later needs [api] listen_port (node join writes it)")
        members = self.genesis.validators if self.identity.role == "validator" else self.genesis.observers
        return int(members[self.identity.index].api_address.rsplit(":", 1)[1])

    def _build_role(self) -> Role:
        """The one place that decides what this node does besides serving the chain."""
        if self.identity.role == "observer":
            return ObserverFollower(
                self.genesis, self.store, self.network, self.applier, self.roster, self.pool_limits
            )
        evidence = EvidenceReporter(
            self.genesis,
            self.identity.key,
            lambda: self.roster.org_of(self.identity.index),
            self._submit_evidence,
            lambda: self.store.last_height + 1,
        )
        shell = ValidatorShell(
            self.genesis,
            self.identity.key,
            self.store,
            self.network,
            self.applier,
            self.verified,
            self._on_committed,
            self.pool_limits,
            self.roster,
            number=self.identity.index,
            before_proposal=self.gossip.flush,
            evidence=evidence,
        )
        return ValidatorRole(shell, self.network, self.genesis, self._on_gossiped_txs)

    def _tls(self) -> TlsConfig | None:
        peer = self.config.peer
        if not peer.tls_cert:
            return None
        return TlsConfig(
            cert_file=resolve(self.home, peer.tls_cert),
            key_file=resolve(self.home, peer.tls_key),
            ca_file=resolve(self.home, peer.tls_ca) if peer.tls_ca else None,
        )

    def _watch_metrics(self) -> None:
        """Gauges read from the part that owns the value, when /metrics is scraped."""
        metrics, role, network = self.metrics, self.role, self.network
        metrics.watch(metrics.height, lambda: self.store.last_height)
        metrics.watch(metrics.peers, lambda: len(network.connected_peers()))
        metrics.watch(metrics.catching_up, lambda: int(role.catching_up))
        metrics.watch(metrics.mempool_txs, lambda: role.pending_count)
        metrics.watch(metrics.mempool_bytes, lambda: role.pending_bytes)
        metrics.watch(metrics.ready, lambda: int(self.backend.get_unready_reason() is None))
        metrics.watch(metrics.event_subscribers, lambda: self.events.subscriber_count)

        def checkpoint_value(field: str) -> float:
            status = role.get_checkpoint()
            return 0 if status is None else getattr(status, field)

        metrics.watch(metrics.checkpoint_height, lambda: checkpoint_value("stable_height"))
        metrics.watch(metrics.consensus_log_records, lambda: checkpoint_value("log_records"))
        metrics.watch_peer_layer(network.metrics, network.handshake_failures)

    # --- transactions -----------------------------------------------------------------------------------

    def admit_transaction(self, tx: SignedTx, *, gossip: bool) -> None:
        """Validate a transaction completely and hand it to the node's one pending pool (the role's);
        raises TransactionError naming the problem. Every rejection is counted by its code."""
        [outcome] = self.admit_transactions([tx], gossip=gossip)
        if outcome is not None:
            raise outcome

    def admit_transactions(self, txs: Sequence[SignedTx], *, gossip: bool) -> list[TransactionError | None]:
        """Admit a batch: each validated, the valid ones offered to the pool in one go and gossiped in one
        frame. Per transaction, None when it is pending, else the TransactionError naming the problem."""
        if self.disk_guard.paused_reason is not None:
            return [NotOrdering(self.disk_guard.paused_reason) for _ in txs]
        outcomes: list[TransactionError | None] = [None] * len(txs)
        offered: dict[bytes, int] = {}  # tx id -> index of its first occurrence in the batch
        self.verified.verify_all(txs, self._verifier)
        for index, tx in enumerate(txs):
            pending = self.role.get_pending(tx.tx_id)
            if (pending is not None and pending.raw == tx.raw) or tx.tx_id in offered:
                continue  # the same transaction again: accepted again (idempotent)
            # The id covers the body only: the same body with another signature is checked like a new one.
            try:
                validate_transaction(tx, self.backend, signature_checked=self.verified.is_known)
            except TransactionError as exc:
                self.metrics.rejected_txs.labels(reason=exc.code).inc()
                outcomes[index] = exc
                continue
            if pending is None:  # a second valid signature of a pending body changes nothing
                self.verified.add(tx)
                offered[tx.tx_id] = index
        candidates = [txs[index] for index in offered.values()]
        accepted: list[bytes] = []
        for tx, refusal in zip(candidates, self.role.offer(candidates), strict=True):
            if refusal is None:
                accepted.append(tx.raw)
            else:
                self.metrics.rejected_txs.labels(reason=refusal).inc()
                outcomes[offered[tx.tx_id]] = TransactionError(
                    refusal, REFUSAL_MESSAGES.get(refusal, f"refused ({refusal})")
                )
        if gossip and accepted:
            self.gossip.queue(accepted)
        return outcomes

    def _submit_evidence(self, tx: SignedTx) -> None:
        """Our evidence transaction goes through our own admission, after the replica's current step (the
        report is one of its outputs: the driver is never fed re-entrantly)."""
        asyncio.get_running_loop().call_soon(self._admit_evidence, tx)

    def _admit_evidence(self, tx: SignedTx) -> None:
        try:
            self.admit_transaction(tx, gossip=True)
        except TransactionError as exc:
            log.warning("our evidence transaction was not admitted: %s", exc)

    def _admit_submitted(self, txs: Sequence[SignedTx]) -> list[TransactionError | None]:
        return self.admit_transactions(txs, gossip=True)

    def _on_gossiped_txs(self, peer: PeerId, payload: bytes) -> None:
        tx_bytes_max = self.genesis.consensus.tx_bytes_max
        txs = [decode_transaction(raw, tx_bytes_max=tx_bytes_max) for raw in decode_tx_batch(payload)]
        for outcome in self.admit_transactions(txs, gossip=False):
            if outcome is not None and outcome.code in ("bad_signature", "malformed", "wrong_chain"):
                raise InvalidInput(f"gossiped an invalid transaction: {outcome}")
            # expired, replay, full: timing differences between honest nodes, not misbehaviour

    def _on_committed(self, block: Block) -> None:
        pass  # the replica dropped the block's transactions from its pool; the metrics read it when scraped

    # --- sync -------------------------------------------------------------------------------------------

    def _on_sync(self, peer: PeerId, payload: bytes) -> None:
        consensus = self.genesis.consensus
        message = decode_sync(payload, tx_bytes_max=consensus.tx_bytes_max, txs_max=consensus.block_txs_max)
        if isinstance(message, BlocksAnswer):
            self.role.on_blocks_answer(peer, message.request_id, message.blocks)
        elif isinstance(message, TxsAnswer):
            self.role.on_txs_answer(peer, message.request_id, message.txs)
        elif isinstance(message, GetTxs):
            txs = self.role.get_known_txs(message.tx_ids)
            self.network.send(peer, CHANNEL_SYNC, encode_txs_answer(message.request_id, txs))
        else:
            blocks = serve_block_range(self.store, message)
            self.network.send(peer, CHANNEL_SYNC, encode_blocks_answer(message.request_id, blocks))

    # --- lifecycle --------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        app = build_api(self.backend, body_bytes_max=self.config.api.body_bytes_max)
        add_dashboard(app, self.backend, self.genesis)
        add_fallback_route(app)  # after every other route
        runner = web.AppRunner(app)
        await runner.setup()
        sweeper: asyncio.Task[None] | None = None
        disk_watch: asyncio.Task[None] | None = None
        try:
            await self.network.start()
            await self.role.start()
            site = web.TCPSite(runner, self.config.api.listen_host, self._api_port())
            await site.start()
            sweeper = asyncio.create_task(self._sweep_mempool(), name="mempool-sweeper")
            disk_watch = asyncio.create_task(self._watch_disk(), name="disk-guard")
            log.info(
                "%s running: api http://%s:%d, height %d",
                self.identity.name,
                self.config.api.listen_host,
                self._api_port(),
                self.store.last_height,
                extra={"height": self.store.last_height},
            )
            await stop.wait()
        finally:
            log.info("shutting down")
            if sweeper is not None:
                sweeper.cancel()
            if disk_watch is not None:
                disk_watch.cancel()
            await runner.cleanup()
            await self.role.stop()
            await asyncio.wait_for(self.network.close(), SHUTDOWN_GRACE_S)
            height = self.store.last_height
            if self._verifier is not None:
                self._verifier.shutdown(wait=True)
            self.store.close()
            log.info("stopped cleanly at height %d", height, extra={"height": height})

    async def _watch_disk(self) -> None:
        """Pause ordering while the data dir's disk is nearly full (node.diskguard), resume after."""
        guard = self.disk_guard
        while True:
            try:
                free_bytes = get_free_bytes(guard.path)
            except OSError as exc:
                log.warning("cannot read the free space of %s: %s", guard.path, exc)
                await asyncio.sleep(MEMPOOL_SWEEP_S)
                continue
            change = guard.observe(free_bytes)
            if change == "pause" and guard.paused_reason is not None:
                log.error("%s", guard.paused_reason, extra={"height": self.store.last_height})
                self.role.pause(guard.paused_reason)
            elif change == "resume":
                log.warning(
                    "disk space is back (%.1f MiB free): ordering again",
                    free_bytes / MIB,
                    extra={"height": self.store.last_height},
                )
                self.role.resume()
            await asyncio.sleep(DISK_CHECK_INTERVAL_S)

    async def _sweep_mempool(self) -> None:
        """Drop expired transactions and re-gossip lingering ones (a gossip frame may have been dropped)."""
        while True:
            await asyncio.sleep(MEMPOOL_SWEEP_S)
            expired = self.role.drop_expired(self.store.last_height + 1)
            if expired:
                log.info("dropped %d expired transactions from the pending pool", expired)
            lingering = self.role.get_lingering(REGOSSIP_AFTER_S, REGOSSIP_TXS_MAX)
            if lingering:
                self.gossip.queue(tx.raw for tx in lingering)


def run_node(home: Path, *, log_format: str | None = None) -> int:
    """Run a node until SIGTERM/SIGINT; returns the process exit code."""
    home = Path(home)
    config = load_config(home)
    configure_logging(fmt=log_format or config.log.format, level=config.log.level)
    try:
        genesis = load_genesis(resolve(home, config.node.genesis_file))
        identity = load_identity(home, config, genesis)
        configure_logging(
            fmt=log_format or config.log.format, level=config.log.level, node_name=identity.name
        )
        configure_clock_offset()
        node = Node(home, config, genesis, identity)
    except CarbonchainError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except ssl.SSLError as exc:
        log.error("cannot start: TLS configuration: %s", exc)
        return 2
    return asyncio.run(_serve(node))


async def _serve(node: Node) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    install_cpu_profile(loop, node.identity.name)  # only with CARBONCHAIN_CPU_PROFILE set (the bench)
    try:
        await node.run(stop)
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return 2
    return 0
