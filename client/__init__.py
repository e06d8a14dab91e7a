"""A Python client of the node API (client.carbon_client): build, sign and submit transactions, wait for
commits, run queries. It needs nothing of the node but the shared vocabulary in core/."""

from client.carbon_client import (
    DEFAULT_VALIDITY_BLOCKS,
    ApiError,
    CarbonClient,
    CommitTimeout,
    Signer,
    Submission,
    TxRejected,
    TxStatus,
)

__all__ = [
    "DEFAULT_VALIDITY_BLOCKS",
    "ApiError",
    "CarbonClient",
    "CommitTimeout",
    "Signer",
    "Submission",
    "TxRejected",
    "TxStatus",
]
