"""Independent verification of a chain from its genesis file alone (audit.chain): certified blocks,
re-execution, state proofs and retirement receipts. Free of network I/O; `carbonchain audit` feeds it."""

from audit.chain import (
    AuditFailure,
    ChainAuditor,
    ProvenValue,
    build_receipt_document,
    decode_served_block,
    verify_key_proof,
    verify_receipt_document,
    verify_state_proof_document,
)

__all__ = [
    "AuditFailure",
    "ChainAuditor",
    "ProvenValue",
    "build_receipt_document",
    "decode_served_block",
    "verify_key_proof",
    "verify_receipt_document",
    "verify_state_proof_document",
]
