"""A bounded cache of transactions whose signatures this node already verified.

Signature verification is the hottest path of the node: a transaction is verified once on admission (API
or gossip), and a proposed block's transactions hit this cache instead of being verified again. The cache
key is the id together with the signature bytes, so a different signature over the same body is checked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor

from core.tx import SignedTx

# Below this many unknown signatures a batch is verified inline: handing work to threads costs more.
PARALLEL_BATCH_MIN = 16

DEFAULT_CAPACITY = 200_000


class VerifiedCache:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self.hits = 0
        self.verifications = 0

    def add(self, tx: SignedTx) -> None:
        """Record a transaction whose signature was just verified."""
        self._seen[tx.tx_id + tx.signature] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def is_known(self, tx: SignedTx) -> bool:
        return tx.tx_id + tx.signature in self._seen

    def verify_all(self, txs: Sequence[SignedTx], executor: Executor | None = None) -> None:
        """Verify the signatures of a batch not verified yet and remember the valid ones; with an executor,
        in its threads (libsodium releases the GIL, so a node uses every core it has). Invalid ones are
        left for the caller's check to reject."""
        unknown = [tx for tx in txs if not self.is_known(tx)]
        if executor is None or len(unknown) < PARALLEL_BATCH_MIN:
            valid = [tx.is_signature_valid() for tx in unknown]
        else:
            valid = list(executor.map(_is_signature_valid, unknown, chunksize=max(1, len(unknown) // 8)))
        self.verifications += len(unknown)
        for tx, ok in zip(unknown, valid, strict=True):
            if ok:
                self.add(tx)

    def check(self, tx: SignedTx) -> bool:
        """True if the signature is valid, verifying it only when it is not cached."""
        if self.is_known(tx):
            self.hits += 1
            return True
        self.verifications += 1
        if not tx.is_signature_valid():
            return False
        self.add(tx)
        return True


def _is_signature_valid(tx: SignedTx) -> bool:
    return tx.is_signature_valid()
