"""Certified chains for the node's unit tests, built the way a quorum of honest validators commits them.

`ReferenceChain` executes each block through the real chaincode into a LevelDB store of its own, so every
header links to the previous block and certifies the real roots of height - pipeline_depth, and signs it
with a quorum of the devnet's well-known validator keys. The part under test gets its own store and must
arrive at the same roots. `FakeNetwork` stands in for the peer layer (send, connected_peers) and keeps what
was sent.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from chaincode import build_registry, execute_block
from core.block import (
    Block,
    BlockHeader,
    CertifiedBlock,
    CommitCertificate,
    compute_commit_digest,
    compute_tx_root,
)
from core.devkeys import dev_admin_key, dev_node_key
from core.genesis import Genesis, load_genesis
from core.quorum import compute_quorum
from core.tx import SignedTx, TxBody, sign_transaction
from node.sync import GetBlocks, decode_sync
from p2p import PeerId
from storage import Store

REPO = Path(__file__).resolve().parents[2]
GENESIS = load_genesis(REPO / "genesis.json")  # the devnet: 4 validators, 1 observer
BANK_KEY = dev_admin_key("bank")
VALIDATORS = len(GENESIS.validators)


def open_store(data_dir: Path, genesis: Genesis = GENESIS) -> Store:
    """A fresh LevelDB store holding the genesis state, as a node initialises it."""
    store = Store.open(data_dir)
    store.initialise_genesis(genesis.genesis_hash, build_registry().genesis_writes(genesis))
    return store


def certify(block: Block, *, signers: range | None = None, view: int = 0) -> CommitCertificate:
    """COMMIT signatures of `signers` (by default a quorum of the genesis validators) over `block`."""
    signers = signers if signers is not None else range(compute_quorum(VALIDATORS))
    header = block.header
    digest = compute_commit_digest(header.chain_id, view, header.height, block.block_hash)
    votes = tuple((i, dev_node_key("validator", i).sign(digest)) for i in signers)
    return CommitCertificate(view, header.height, block.block_hash, votes)


def recertified(certified: CertifiedBlock, **header_changes: object) -> CertifiedBlock:
    """The block with a changed header, signed again by a (colluding) quorum: its certificate verifies."""
    header = dataclasses.replace(certified.block.header, **header_changes)  # type: ignore[arg-type]
    block = Block(header, certified.block.txs)
    return CertifiedBlock(block, certify(block), certified.results)


class ReferenceChain:
    """What the validators commit; `blocks[h]` is height h as they serve it."""

    def __init__(self, data_dir: Path, genesis: Genesis = GENESIS) -> None:
        self.genesis = genesis
        self.registry = build_registry()
        self.store = open_store(data_dir, genesis)
        self.blocks: dict[int, CertifiedBlock] = {}
        self._refs = itertools.count(1)

    def deposit(self, org: str = "ent-a", amount_fen: int = 100) -> SignedTx:
        """A deposit_cash transaction of the settlement bank, unique by its bank reference."""
        n = next(self._refs)
        body = TxBody(
            chain_id=self.genesis.chain_id,
            chaincode="carbon",
            function="deposit_cash",
            args={"org": org, "amount_fen": amount_fen, "bank_ref": f"R-{n}"},
            sender_org="bank",
            sender_key=BANK_KEY.public_key,
            nonce=n,
            valid_until=self.genesis.consensus.tx_validity_blocks_max,
        )
        return sign_transaction(body, BANK_KEY)

    def call(self, org: str, function: str, args: dict[str, object]) -> SignedTx:
        """A transaction of `org`'s development admin key."""
        n = next(self._refs)
        key = dev_admin_key(org)
        body = TxBody(
            chain_id=self.genesis.chain_id,
            chaincode="carbon",
            function=function,
            args=args,
            sender_org=org,
            sender_key=key.public_key,
            nonce=n,
            valid_until=self.genesis.consensus.tx_validity_blocks_max,
        )
        return sign_transaction(body, key)

    def extend(self, txs: tuple[SignedTx, ...] = (), *, certified: bool = True) -> CertifiedBlock:
        """Propose, execute, certify and commit the next block (certified=False: commit it without its
        certificate, as a node that executed it before its COMMIT quorum arrived)."""
        store = self.store
        height = store.last_height + 1
        state_height = max(0, height - self.genesis.consensus.pipeline_depth)
        roots = store.get_roots(state_height)
        assert roots is not None and store.last_block_hash is not None
        header = BlockHeader(
            chain_id=self.genesis.chain_id,
            height=height,
            prev_hash=store.last_block_hash,
            time_ms=self.genesis.genesis_time_ms + 1000 * height,
            proposer=0,
            tx_count=len(txs),
            tx_root=compute_tx_root(txs),
            state_height=state_height,
            state_root=roots[0],
            results_root=roots[1],
            validators_hash=self.genesis.validator_set.set_hash,
            next_validators_hash=self.genesis.validator_set.set_hash,
        )
        block = Block(header, txs)
        execution = execute_block(
            store, block, self.registry, is_committed=lambda tx_id: store.get_tx_location(tx_id) is not None
        )
        certificate = certify(block)
        store.commit_block(
            block,
            execution.results,
            execution.tx_writes,
            certificate if certified else None,
            end_writes=execution.end_writes,
        )
        self.blocks[height] = CertifiedBlock(block, certificate, execution.results)
        return self.blocks[height]

    def extend_to(self, height: int) -> None:
        """Blocks up to `height`, one deposit in each."""
        while self.store.last_height < height:
            self.extend((self.deposit(),))


class FakeNetwork:
    """The peer layer as block syncing sees it: which peers are linked, and the frames sent to them."""

    def __init__(self, connected: tuple[PeerId, ...] = ()) -> None:
        self.connected = set(connected)
        self.sent: list[tuple[PeerId, str, bytes]] = []

    def connected_peers(self) -> list[PeerId]:
        return sorted(self.connected)

    def is_connected(self, peer: PeerId) -> bool:
        return peer in self.connected

    def send(self, peer: PeerId, channel: str, payload: bytes) -> bool:
        if peer not in self.connected:
            return False
        self.sent.append((peer, channel, payload))
        return True

    def block_requests(self) -> list[tuple[PeerId, GetBlocks]]:
        """The GetBlocks sent so far, in order, with the peer each went to."""
        requests = []
        for peer, channel, payload in self.sent:
            assert channel == "sync"
            message = decode_sync(payload)
            assert isinstance(message, GetBlocks)
            requests.append((peer, message))
        return requests
