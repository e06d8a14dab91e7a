"""Independent verification of what a node serves, trusting nothing but the genesis file.

The auditor's core, free of network I/O: the CLI (commands/audit.py) fetches certified blocks, proofs
and statuses and hands them here. `ChainAuditor` walks a chain from genesis, one certified block at a time:

1-3. the one rule for a certified successor (core/successor.py), in its order: height, chain id, hash
   link, strictly increasing block time, proposer number, both validator-set hashes, transaction count and
   limits, transaction root, state height, the commit certificate against the validator set in force at
   the height (a quorum of COMMIT signatures), and the roots the header certifies for `state_height`
   against the roots our own re-execution produced. The sets are the genesis set and those governance
   puts in force, as our own re-execution decides them (consensus.membership over the changes
   chaincode.get_validator_change reads from each block: docs/protocol/core.md 6.5);
4. transactions: every signature, and that honest validators could have included each one (right chain,
   not expired, not valid for too long, no duplicate in the block, not committed before);
5. execution: the block is re-executed through the chaincode over the auditor's own store (a fresh LevelDB
   from the caller), exactly as nodes do (`chaincode.execute_block`, `Store.commit_block`); sender
   authorisation (enrolled, unrevoked key; role; admin key) is decided there, and every served result must
   equal ours.

The first failed check raises `AuditFailure` naming the height, the check and what differs. Blocks past
the last executed one can still be checked as *certifying headers* (steps 1-4 without execution), which is
how the roots of the last `pipeline_depth` blocks get certified.

`verify_state_proof_document` and `verify_receipt_document` check a state proof (from GET
/v1/state/{key}/proof) against a certified header: the proof must hash to the root the header certifies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from audit.handovers import Handover, HandoverError, parse_handovers, verify_handovers
from chaincode import ChaincodeRegistry, build_registry, execute_block, genesis_writes, get_validator_change
from consensus.membership import Membership
from core import codec
from core.block import (
    Block,
    BlockHeader,
    CertificateError,
    CertifiedBlock,
    CommitCertificate,
    TxResult,
    decode_certified_block,
    verify_commit_certificate,
)
from core.errors import CodecError, InvalidInput
from core.genesis import Genesis
from core.state import StateReader
from core.successor import (
    CHECK_CERTIFICATE,
    CHECK_RESULTS_ROOT,
    CHECK_STATE_ROOT,
    ChainTip,
    SuccessorError,
    validate_certified_successor,
)
from storage.errors import ProofError
from storage.proof import StateProof, verify_state_proof

_CHECK_CONTEXT = {  # what the auditor's side of a comparison is
    CHECK_CERTIFICATE: " (checked against the validator set in force at the height)",
    CHECK_STATE_ROOT: " (ours: re-executing the chain from genesis)",
    CHECK_RESULTS_ROOT: " (ours: re-executing the chain from genesis)",
}
AUTHORISATION_CODES = ("unknown_sender", "revoked_key", "forbidden", "not_admin", "frozen")
RECEIPT_KIND = "carbonchain-retirement-receipt"
RECEIPT_VERSION = 1


class AuditFailure(InvalidInput):
    """What a node served does not verify; names the height, the check and what differs."""

    def __init__(self, height: int, check: str, detail: str) -> None:
        super().__init__(f"height {height}: {check}: {detail}")
        self.height = height
        self.check = check
        self.detail = detail


class ReplayStore(StateReader, Protocol):
    """What the auditor needs from its own store (storage.Store implements it)."""

    @property
    def last_height(self) -> int: ...

    @property
    def last_block_hash(self) -> bytes | None: ...

    def initialise_genesis(self, genesis_hash: bytes, writes: Mapping[bytes, bytes | None]) -> bytes: ...

    def get_roots(self, height: int) -> tuple[bytes, bytes] | None: ...

    def get_tx_location(self, tx_id: bytes) -> Any: ...

    def get_state_root(self) -> bytes: ...

    def commit_block(
        self,
        block: Block,
        results: Sequence[TxResult],
        tx_writes: Sequence[Mapping[bytes, bytes | None]],
        certificate: CommitCertificate | None = None,
        *,
        end_writes: Mapping[bytes, bytes | None] | None = None,
    ) -> Any: ...


@dataclass
class AuditTotals:
    blocks: int = 0  # blocks executed and fully verified
    txs: int = 0  # transactions in them
    headers: int = 0  # further blocks checked as certifying headers only
    certified_height: int = 0  # highest height whose roots a verified header certified
    codes: Counter[str] = field(default_factory=Counter)  # result codes of all transactions

    @property
    def failed_txs(self) -> int:
        return self.txs - self.codes.get("ok", 0)

    @property
    def authorisation_refusals(self) -> int:
        return sum(self.codes.get(code, 0) for code in AUTHORISATION_CODES)


class ChainAuditor:
    """Verifies a chain block by block from genesis; see the module docstring for the checks."""

    def __init__(
        self, genesis: Genesis, store: ReplayStore, registry: ChaincodeRegistry | None = None
    ) -> None:
        self.genesis = genesis
        self.store = store
        self.registry = registry or build_registry()
        self.params = genesis.consensus
        self.validator_keys = genesis.validator_keys
        self.membership = Membership(
            genesis.validator_set,
            checkpoint_interval=self.params.checkpoint_interval,
            pipeline_depth=self.params.pipeline_depth,
        )
        self.totals = AuditTotals()
        store.initialise_genesis(genesis.genesis_hash, genesis_writes(genesis, self.registry))
        if store.last_height != 0:
            raise InvalidInput("the auditor needs a fresh store (it replays from genesis)")
        self.header_height = 0  # last height whose header we verified (executed or certifying)
        self.header_hash = genesis.genesis_hash
        self.header_time_ms = genesis.genesis_time_ms

    @property
    def height(self) -> int:
        """The last height executed and verified."""
        return self.store.last_height

    @property
    def state_root(self) -> bytes:
        return self.store.get_state_root()

    # --- the walk -------------------------------------------------------------------------------------

    def verify_block(self, certified: CertifiedBlock) -> tuple[TxResult, ...]:
        """Verify and re-execute the next block; returns our results. Raises AuditFailure."""
        if self.header_height != self.height:
            raise InvalidInput("blocks after a certifying-only header cannot be executed")
        block = certified.block
        self._verify_header(certified)
        self._verify_transactions(block)
        height = block.header.height
        execution = execute_block(self.store, block, self.registry, is_committed=self._is_committed)
        for index, (served, ours) in enumerate(zip(certified.results, execution.results, strict=True)):
            # code and events are certified; the message is not (docs/protocol/core.md 6.3)
            if served.to_hashed() != ours.to_hashed():
                raise AuditFailure(
                    height,
                    "transaction result",
                    f"transaction {index} ({block.txs[index].tx_id.hex()}): the node serves "
                    f"{_describe_result(served)}, re-execution gives {_describe_result(ours)}",
                )
        self.store.commit_block(
            block,
            execution.results,
            execution.tx_writes,
            certified.certificate,
            end_writes=execution.end_writes,
        )
        change = get_validator_change(execution.writes, height)
        self.membership.note_executed(height, None if change is None else change.validator_set)
        self._advance(block.header)
        self.totals.blocks += 1
        self.totals.txs += len(block.txs)
        self.totals.codes.update(result.code for result in execution.results)
        return execution.results

    def verify_certifying_header(self, certified: CertifiedBlock) -> None:
        """Check a block after the executed ones for the roots it certifies (no execution)."""
        self._verify_header(certified)
        self._verify_transactions(certified.block, check_history=False)
        self._advance(certified.block.header)
        self.totals.headers += 1

    def verify_final_state(self, node_height: int, node_state_root_hex: str) -> bool:
        """Compare our state root with the node's status when it is at our height; False if not comparable."""
        if node_height != self.height:
            return False
        ours = self.state_root.hex()
        if node_state_root_hex != ours:
            raise AuditFailure(
                self.height,
                "final state root",
                f"the node reports {node_state_root_hex}, re-execution gives {ours}",
            )
        return True

    # --- checks ---------------------------------------------------------------------------------------

    def _verify_header(self, certified: CertifiedBlock) -> None:
        """Checks 1-3 of the module docstring: the one rule for a certified successor (core/successor.py),
        with the roots of our own re-execution."""
        header = certified.block.header
        tip = ChainTip(self.header_height, self.header_hash, self.header_time_ms)
        if not self.membership.is_known(header.height + 1):
            raise AuditFailure(
                header.height,
                "validator set",
                f"the sets of heights above {self.membership.known_through} are not decided by the "
                f"{self.height} blocks executed so far",
            )
        try:
            validate_certified_successor(
                certified.block,
                certified.certificate,
                tip,
                chain_id=self.genesis.chain_id,
                validators=self.membership.at(header.height),
                next_validators=self.membership.at(header.height + 1),
                params=self.params,
                roots=self.store.get_roots,
            )
        except SuccessorError as exc:
            raise AuditFailure(
                exc.height, exc.check, exc.detail + _CHECK_CONTEXT.get(exc.check, "")
            ) from None
        if self.store.get_roots(header.state_height) is not None:
            self.totals.certified_height = max(self.totals.certified_height, header.state_height)

    def _verify_transactions(self, block: Block, *, check_history: bool = True) -> None:
        height = block.header.height
        seen: set[bytes] = set()  # membership only
        for index, tx in enumerate(block.txs):
            body = tx.body
            where = f"transaction {index} ({tx.tx_id.hex()})"
            if not tx.is_signature_valid():
                raise AuditFailure(
                    height,
                    "transaction signature",
                    f"{where}: the signature of {body.sender_org} does not verify",
                )
            if body.chain_id != self.genesis.chain_id:
                raise AuditFailure(
                    height, "transaction admissibility", f"{where} is for chain {body.chain_id!r}"
                )
            if not height <= body.valid_until <= height + self.params.tx_validity_blocks_max:
                raise AuditFailure(
                    height,
                    "transaction admissibility",
                    f"{where} has valid_until {body.valid_until}, outside [{height}, "
                    f"{height + self.params.tx_validity_blocks_max}]",
                )
            if tx.tx_id in seen:
                raise AuditFailure(height, "transaction admissibility", f"{where} appears twice in the block")
            seen.add(tx.tx_id)
            if check_history and self._is_committed(tx.tx_id):
                raise AuditFailure(
                    height, "transaction admissibility", f"{where} was committed before (replay)"
                )

    def _is_committed(self, tx_id: bytes) -> bool:
        return self.store.get_tx_location(tx_id) is not None

    def _advance(self, header: BlockHeader) -> None:
        self.header_height = header.height
        self.header_hash = header.block_hash
        self.header_time_ms = header.time_ms


def decode_served_block(height: int, raw: bytes, *, tx_bytes_max: int) -> CertifiedBlock:
    """Decode a node's /v1/blocks/{h}?format=msgpack answer; AuditFailure if it is not a certified block."""
    try:
        return decode_certified_block(raw, tx_bytes_max=tx_bytes_max)
    except (CodecError, InvalidInput) as exc:
        raise AuditFailure(
            height, "block encoding", f"the served bytes are not a certified block: {exc}"
        ) from None


def _describe_result(result: TxResult) -> str:
    if result.is_ok:
        return f"ok with {len(result.events)} events"
    return f"{result.code} ({result.message[:80]})"


# --- state proofs against certified headers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProvenValue:
    key: bytes
    value: bytes | None  # None: the key is proven absent
    state_height: int  # the height whose state the proof is about
    state_root: bytes
    certified_by: BlockHeader  # the certified header whose state_root is that root


def verify_certifying_block(
    genesis: Genesis,
    certified: CertifiedBlock,
    *,
    state_height: int,
    state_root: bytes,
    handovers: Sequence[Handover] = (),
) -> None:
    """A block proves `state_root` at `state_height` if its certificate verifies against the set in force at
    its height (the genesis set, or the one `handovers` prove: audit/handovers.py) and its header says so."""
    header = certified.block.header
    if header.chain_id != genesis.chain_id:
        raise AuditFailure(header.height, "chain id", f"block is for chain {header.chain_id!r}")
    try:
        validators = verify_handovers(genesis, [h for h in handovers if h.header.height < header.height])
    except HandoverError as exc:
        raise AuditFailure(exc.height, "validator-set handover", exc.detail) from None
    in_force = validators.at(header.height)
    if header.validators_hash != in_force.set_hash:
        raise AuditFailure(
            header.height,
            "validator sets",
            "the header names another validator set than the genesis and the handovers prove for its height "
            "(a handover is missing)",
        )
    try:
        verify_commit_certificate(certified.certificate, header, in_force)
    except CertificateError as exc:
        raise AuditFailure(header.height, "commit certificate", str(exc)) from None
    if header.state_height != state_height:
        raise AuditFailure(
            header.height,
            "state height",
            f"the header certifies height {header.state_height}, the proof is for {state_height}",
        )
    if header.state_root != state_root:
        raise AuditFailure(
            header.height,
            "state root",
            f"the certified header says {header.state_root.hex()} for height {state_height}, "
            f"the proof is against {state_root.hex()}",
        )


def verify_state_proof_document(key: bytes, document: Mapping[str, Any]) -> tuple[int, bytes, bytes | None]:
    """Check a GET /v1/state/{key}/proof answer on its own; returns (height, state root, value)."""
    height = int(document.get("height", -1))
    try:
        root = bytes.fromhex(str(document["state_root"]))
        proof = StateProof.decode(bytes.fromhex(str(document["proof"])))
        value = verify_state_proof(root, key, proof)
    except (KeyError, ValueError) as exc:
        raise AuditFailure(height, "state proof", f"malformed proof document: {exc}") from None
    except ProofError as exc:
        raise AuditFailure(height, "state proof", str(exc)) from None
    claimed = document.get("value_hex")
    if (None if value is None else value.hex()) != claimed:
        raise AuditFailure(
            height, "state proof", "the value the node shows is not the value the proof proves"
        )
    return height, root, value


def verify_key_proof(
    genesis: Genesis,
    key: bytes,
    document: Mapping[str, Any],
    certified: CertifiedBlock,
    handovers: Sequence[Handover] = (),
) -> ProvenValue:
    """A proof document checked against the certified block at its certified_by_height."""
    height, root, value = verify_state_proof_document(key, document)
    verify_certifying_block(genesis, certified, state_height=height, state_root=root, handovers=handovers)
    return ProvenValue(key, value, height, root, certified.block.header)


# --- retirement receipts ---------------------------------------------------------------------------------------


def build_receipt_document(
    genesis: Genesis,
    receipt: Mapping[str, Any],
    proven: ProvenValue,
    proof_hex: str,
    certified: CertifiedBlock,
    handovers: Sequence[Handover] = (),
) -> dict[str, Any]:
    """A self-contained retirement receipt a third party verifies with the genesis file alone."""
    return {
        "kind": RECEIPT_KIND,
        "version": RECEIPT_VERSION,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.genesis_hash.hex(),
        "receipt": dict(receipt),
        "state_key": proven.key.decode("utf-8", errors="replace"),
        "state_height": proven.state_height,
        "state_root": proven.state_root.hex(),
        "value_hex": None if proven.value is None else proven.value.hex(),
        "proof": proof_hex,  # hex of storage.proof.StateProof.encode()
        "certifying_header": codec.encode(certified.block.header.to_wire()).hex(),
        "certificate": codec.encode(certified.certificate.to_wire()).hex(),
        # the set changes before the certifying header, from the genesis set (audit/handovers.py)
        "validator_sets": [handover.to_json() for handover in handovers],
    }


def verify_receipt_document(genesis: Genesis, document: Mapping[str, Any]) -> dict[str, Any]:
    """Verify a receipt document offline; returns the receipt record as proven by the state. AuditFailure if not."""
    height = int(document.get("state_height", -1))
    if document.get("kind") != RECEIPT_KIND or document.get("version") != RECEIPT_VERSION:
        raise AuditFailure(height, "receipt", f"not a {RECEIPT_KIND} version {RECEIPT_VERSION} document")
    if document.get("genesis_hash") != genesis.genesis_hash.hex():
        raise AuditFailure(height, "receipt", "the receipt belongs to another chain (genesis hash differs)")
    try:
        key = str(document["state_key"]).encode("utf-8")
        header = BlockHeader.from_wire(codec.decode(bytes.fromhex(str(document["certifying_header"]))))
        certificate = CommitCertificate.from_wire(codec.decode(bytes.fromhex(str(document["certificate"]))))
        handovers = parse_handovers(document.get("validator_sets"))
    except HandoverError as exc:
        raise AuditFailure(exc.height, "validator-set handover", exc.detail) from None
    except (KeyError, ValueError, CodecError, TypeError) as exc:
        raise AuditFailure(height, "receipt", f"malformed receipt document: {exc}") from None
    proof_document = {
        "height": height,
        "state_root": document.get("state_root"),
        "proof": document.get("proof"),
        "value_hex": document.get("value_hex"),
    }
    _, root, value = verify_state_proof_document(key, proof_document)
    verify_certifying_block(
        genesis,
        CertifiedBlock(Block(header, ()), certificate, ()),
        state_height=height,
        state_root=root,
        handovers=handovers,
    )
    if value is None:
        raise AuditFailure(height, "receipt", f"the state proves that {key.decode()} does not exist")
    record = codec.decode(value)
    if type(record) is not dict:
        raise AuditFailure(height, "receipt", "the proven value is not a receipt record")
    shown = dict(document.get("receipt") or {})
    shown.pop("state_key", None)
    if shown != record:
        raise AuditFailure(height, "receipt", "the receipt shown differs from the receipt the state proves")
    return record
