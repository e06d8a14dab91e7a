"""The API's view of a node: answers reads from storage and hands submitted transactions to admission.

It is given what it reads from explicitly (store, genesis, peer layer, the node's role and its pool) and the
admission callable, never the whole node (node/runtime.py builds it).

It is also the node's TxCheckContext (core.tx.validate_transaction): chain id, next height, replay and
sender-key checks against committed state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chaincode import FUNCTIONS, QUERIES, NotFound, get_key_status, run_query
from core.block import Block
from core.errors import TransactionError
from core.genesis import Genesis
from core.tx import SignedTx
from node.api import QueryNotFound
from node.checkpoints import CheckpointStatus
from node.events import EventHub, compute_block_events
from node.metrics import NodeMetrics
from node.roles import Role
from node.views import block_json, state_value_json
from p2p import PeerNetwork
from storage import Store


class NodeBackend:
    def __init__(
        self,
        *,
        genesis: Genesis,
        node_id: str,
        store: Store,
        network: PeerNetwork,
        role: Role,
        admit: Callable[[Sequence[SignedTx]], list[TransactionError | None]],
        events: EventHub,
        metrics: NodeMetrics,
        event_replay_blocks_max: int = 1000,
    ) -> None:
        self._genesis = genesis
        self._node_id = node_id
        self._store = store
        self._network = network
        self._role = role
        self._admit = admit  # validate, queue and gossip; per transaction None or its TransactionError
        self.chain_id = genesis.chain_id
        self.tx_validity_blocks_max = genesis.consensus.tx_validity_blocks_max
        self.tx_bytes_max = genesis.consensus.tx_bytes_max
        self.events = events
        self.metrics = metrics
        self.event_replay_blocks_max = event_replay_blocks_max

    # --- TxCheckContext -----------------------------------------------------------------------------------

    @property
    def next_height(self) -> int:
        return self._store.last_height + 1

    def is_committed(self, tx_id: bytes) -> bool:
        recently = self._role.is_committed_recently(tx_id)  # a validator answers from memory
        return self._store.get_tx_location(tx_id) is not None if recently is None else recently

    def sender_key_status(self, org_id: str, public_key: bytes) -> str:
        return get_key_status(self._store, org_id, public_key)

    # --- ApiBackend -------------------------------------------------------------------------------------

    def submit_transaction(self, tx: SignedTx) -> None:
        [outcome] = self._admit([tx])
        if outcome is not None:
            raise outcome

    def submit_transactions(self, txs: Sequence[SignedTx]) -> list[TransactionError | None]:
        return self._admit(txs)

    def get_transaction_status(self, tx_id: bytes) -> dict[str, Any]:
        store = self._store
        location = store.get_tx_location(tx_id)
        if location is not None:
            stored = store.get_block(location.height)
            message = stored.results[location.index].message if stored is not None else ""
            return {
                "tx_id": tx_id.hex(),
                "status": "committed",
                "height": location.height,
                "index": location.index,
                "code": location.code,
                "message": message,
            }
        status = "pending" if self._role.get_pending(tx_id) is not None else "unknown"
        return {"tx_id": tx_id.hex(), "status": status}

    def get_block_json(self, height: int | None) -> dict[str, Any] | None:
        store = self._store
        if height is None:
            height = store.last_height
        if height < 1:
            return None
        stored = store.get_block(height)
        if stored is None:
            return None
        block = stored.block
        return block_json(block.header, block.txs, stored.results, stored.certificate, stored.state_root)

    def get_block_bytes(self, height: int) -> bytes | None:
        encoded = self._store.get_certified_block_encodings(height, height)
        return encoded[0] if encoded else None

    def get_height(self) -> int:
        return self._store.last_height

    def get_block_events(self, height: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        stored = self._store.get_block(height)
        if stored is None:
            return None
        return compute_block_events(stored.block, stored.results, stored.state_root)

    def get_status(self) -> dict[str, Any]:
        store = self._store
        return {
            "chain_id": self._genesis.chain_id,
            "genesis_hash": self._genesis.genesis_hash.hex(),
            "node_id": self._node_id,
            "role": self._role.kind,
            "height": store.last_height,
            "last_block_hash": (store.last_block_hash or b"").hex(),
            "state_root": store.get_state_root().hex(),
            "peers": len(self._network.connected_peers()),
            "catching_up": self._role.catching_up,
            "mempool_txs": self._role.pending_count,
            "halted": self._role.halted_reason,
            "view": self._role.view,
            "primary": self._role.primary,
            "checkpoint": _checkpoint_json(self._role.get_checkpoint()),
            "unlinked_peers": {str(peer): why for peer, why in self._network.get_link_failures().items()},
            "paused": self._role.paused_reason,
        }

    def get_unready_reason(self) -> str | None:
        """Why the node is not ready (halted, paused, catching up, too few links with why), or None when it is."""
        role = self._role
        if role.halted_reason is not None:
            return f"halted: {role.halted_reason}"
        if role.paused_reason is not None:
            return role.paused_reason
        if role.catching_up:
            return f"catching up: fetching blocks after height {self._store.last_height} from peers"
        if not role.is_linked():
            linked = sum(1 for peer in self._network.connected_peers() if peer.is_validator)
            reason = f"linked to {linked} validators, {role.validators_needed} needed"
            failures = self._network.get_link_failures()
            if failures:
                reason += " (" + "; ".join(f"{peer}: {why}" for peer, why in failures.items()) + ")"
            else:
                reason += " (waiting for the others to connect)"
            return reason
        return None

    def run_query(self, name: str, params: dict[str, str]) -> Any:
        if name not in QUERIES:
            raise QueryNotFound(f"no query named {name!r}; see GET /v1/carbon/queries")
        try:
            return run_query(self._store, name, params)
        except NotFound as exc:
            raise QueryNotFound(str(exc)) from None

    def get_catalogue(self) -> dict[str, Any]:
        return {
            "functions": {name: spec.to_json() for name, spec in FUNCTIONS.items()},
            "queries": {name: spec.to_json() for name, spec in QUERIES.items()},
        }

    def get_key_history(self, key: bytes, start_after: int | None, limit: int) -> dict[str, Any]:
        store = self._store
        versions = store.get_history(key, start_after_height=start_after, limit=limit)
        blocks: dict[int, Block | None] = {}
        entries = []
        for version in versions:
            signer, time_ms = None, self._genesis.genesis_time_ms
            if version.height > 0:
                if version.height not in blocks:
                    stored = store.get_block(version.height)
                    blocks[version.height] = stored.block if stored is not None else None
                block = blocks[version.height]
                if block is not None:
                    time_ms = block.header.time_ms
                    if version.tx_index is not None:
                        tx = block.txs[version.tx_index]
                        signer = {
                            "org": tx.body.sender_org,
                            "key": tx.body.sender_key.hex(),
                            "function": tx.body.function,
                        }
            entries.append(
                {
                    "height": version.height,
                    "time_ms": time_ms,
                    "tx_index": version.tx_index,
                    "tx_id": None if version.tx_id is None else version.tx_id.hex(),
                    "deleted": version.value is None,
                    "value": state_value_json(version.value),
                    "signer": signer,
                }
            )
        next_cursor = entries[-1]["height"] if len(entries) == limit else None
        return {"key": _key_text(key), "versions": entries, "next_start_after": next_cursor}

    def get_key_proof(self, key: bytes) -> dict[str, Any]:
        store = self._store
        depth = self._genesis.consensus.pipeline_depth
        with store.snapshot() as view:
            height = view.last_height
            root = view.get_state_root()
            proof = view.get_proof(key)
            value = view.get(key)
            # Empty blocks leave the root unchanged: name the earliest recent height with this root, whose
            # certifying header (height + depth) usually exists already, even on an idle chain.
            while height > 0 and height > view.last_height - depth:
                earlier = view.get_roots(height - 1)
                if earlier is None or earlier[0] != root:
                    break
                height -= 1
        return {
            "key": _key_text(key),
            "height": height,
            "state_root": root.hex(),
            "value": state_value_json(value),
            "value_hex": None if value is None else value.hex(),
            "proof": proof.encode().hex(),
            "certified_by_height": height + depth,
        }


def _checkpoint_json(status: CheckpointStatus | None) -> dict[str, object] | None:
    return None if status is None else status.to_json()


def _key_text(key: bytes) -> str:
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + key.hex()
