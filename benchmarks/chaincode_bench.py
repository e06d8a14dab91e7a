"""Cost per transaction type of the carbon chaincode through execute_block (signatures excluded).

For each type, a block of BATCH typical transactions is executed against an in-memory funded state; the
mean cost per transaction is reported as the median over RUNS runs. Signatures are not verified by the
executor (the node does that before execution), so the transactions here are left unsigned.

    .venv/bin/python benchmarks/chaincode_bench.py [--batch 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import bisect
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from chaincode import build_registry, execute_block, genesis_writes
from core import codec
from core.block import EMPTY_ROOT, Block, BlockHeader
from core.devkeys import dev_admin_key, dev_node_key
from core.genesis import parse_genesis
from core.state import DictState
from core.tx import SignedTx, TxBody, compute_tx_id

CHAIN_ID = "carbon-devnet"
ENTERPRISES = tuple(f"ent{i}" for i in range(20))
ROLE_ORGS = [
    ("mee", "regulator"),
    ("bank", "settlement_bank"),
    ("ver1", "verifier"),
    ("dev1", "offset_developer"),
]
EVIDENCE = "ab" * 32


class SortedState:
    """A read-only StateReader with ordered seeks, like a LevelDB snapshot (DictState sorts on every scan)."""

    def __init__(self, entries: dict[bytes, bytes]) -> None:
        self._entries = dict(entries)
        self._keys = sorted(entries)

    def get(self, key: bytes) -> bytes | None:
        return self._entries.get(key)

    def iterate(self, prefix: bytes, *, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        index = bisect.bisect_left(self._keys, prefix)
        if start_after is not None:
            index = max(index, bisect.bisect_right(self._keys, start_after))
        while index < len(self._keys) and self._keys[index].startswith(prefix):
            yield self._keys[index], self._entries[self._keys[index]]
            index += 1


class Bench:
    def __init__(self, enterprises: Sequence[str] = ENTERPRISES) -> None:
        self.enterprises = tuple(enterprises)
        orgs = ROLE_ORGS + [(org, "enterprise") for org in self.enterprises]
        genesis = parse_genesis(
            {
                "chain_id": CHAIN_ID,
                "genesis_time": "2026-01-01T00:00:00Z",
                "validators": [
                    {
                        "org": "mee",
                        "node_key": dev_node_key("validator", 0).public_key.hex(),
                        "peer_address": "127.0.0.1:7000",
                        "api_address": "127.0.0.1:8000",
                    }
                ],
                "organisations": [
                    {
                        "id": org,
                        "name": org,
                        "role": role,
                        "admin_keys": [dev_admin_key(org).public_key.hex()],
                    }
                    for org, role in orgs
                ],
            }
        )
        self.registry = build_registry()
        self.state = DictState({k: v for k, v in genesis_writes(genesis).items() if v is not None})
        self.keys = {org: dev_admin_key(org).public_key for org, _ in orgs}
        self.height = 0
        self.time_ms = genesis.genesis_time_ms
        self.nonce = 0

    def tx(self, org: str, function: str, args: dict[str, Any]) -> SignedTx:
        self.nonce += 1
        body = TxBody(CHAIN_ID, "carbon", function, args, org, self.keys[org], self.nonce, self.height + 1000)
        body_bytes = codec.encode(body.to_wire())
        return SignedTx(body, body_bytes, bytes(64), compute_tx_id(body_bytes), b"")

    def block(self, txs: list[SignedTx]) -> Block:
        self.height += 1
        self.time_ms += 1000
        header = BlockHeader(
            CHAIN_ID,
            self.height,
            bytes(32),
            self.time_ms,
            0,
            len(txs),
            EMPTY_ROOT,
            0,
            EMPTY_ROOT,
            EMPTY_ROOT,
            EMPTY_ROOT,
            EMPTY_ROOT,
        )
        return Block(header, tuple(txs))

    def commit(self, txs: list[SignedTx]) -> None:
        execution = execute_block(self.state, self.block(txs), self.registry, is_committed=lambda _: False)
        bad = [r for r in execution.results if not r.is_ok]
        assert not bad, bad[:3]
        self.state.apply(execution.writes)

    def setup(self, *, order_book: bool = True) -> None:
        """A period, allocations, cash and an offset project; with `order_book`, a resting sell book."""
        day = 86_400_000
        self.commit(
            [
                self.tx(
                    "mee",
                    "open_period",
                    {
                        "period": "2025",
                        "reporting_deadline_ms": self.time_ms + 30 * day,
                        "surrender_deadline_ms": self.time_ms + 60 * day,
                    },
                )
            ]
        )
        txs = []
        for org in self.enterprises:
            txs.append(self.tx("mee", "allocate", {"period": "2025", "org": org, "amount_t": 10**7}))
            txs.append(
                self.tx("bank", "deposit_cash", {"org": org, "amount_fen": 10**13, "bank_ref": f"seed-{org}"})
            )
        txs.append(
            self.tx(
                "dev1",
                "register_project",
                {
                    "project": "p1",
                    "developer": "dev1",
                    "name": "Wind",
                    "methodology": "M",
                    "standard": "CCER",
                },
            )
        )
        txs.append(
            self.tx(
                "mee",
                "issue_offsets",
                {
                    "project": "p1",
                    "vintage": 2024,
                    "monitoring_start_ms": 0,
                    "monitoring_end_ms": 1,
                    "amount_t": 10**7,
                },
            )
        )
        self.commit(txs)
        if not order_book:
            return
        # a resting sell book for the matching benchmark: one order per price level per seller
        self.commit(
            [
                self.tx(
                    ENTERPRISES[i % 10],
                    "place_order",
                    {"side": "sell", "quantity_t": 10, "price_fen": 5000 + (i % 50)},
                )
                for i in range(2000)
            ]
        )


def _cases(bench: Bench, batch: int) -> dict[str, Callable[[], list[SignedTx]]]:
    def transfers() -> list[SignedTx]:
        return [
            bench.tx(
                ENTERPRISES[i % 20], "transfer_allowances", {"to": ENTERPRISES[(i + 1) % 20], "amount_t": 5}
            )
            for i in range(batch)
        ]

    def deposits() -> list[SignedTx]:
        return [
            bench.tx(
                "bank",
                "deposit_cash",
                {"org": ENTERPRISES[i % 20], "amount_fen": 100, "bank_ref": f"b{bench.nonce}-{i}"},
            )
            for i in range(batch)
        ]

    def resting_orders() -> list[SignedTx]:
        return [
            bench.tx(
                ENTERPRISES[10 + i % 10],
                "place_order",
                {"side": "buy", "quantity_t": 10, "price_fen": 4600 + i % 300},
            )
            for i in range(batch)
        ]

    def matching_orders() -> list[SignedTx]:
        return [
            bench.tx(
                ENTERPRISES[10 + i % 10], "place_order", {"side": "buy", "quantity_t": 10, "price_fen": 5100}
            )
            for i in range(batch)
        ]

    def reports() -> list[SignedTx]:
        return [
            bench.tx(
                ENTERPRISES[i % 20],
                "submit_report",
                {"period": "2025", "emissions_kg": 10**6 + i, "evidence_hash": EVIDENCE},
            )
            for i in range(batch)
        ]

    def offset_transfers() -> list[SignedTx]:
        return [
            bench.tx(
                "dev1",
                "transfer_offsets",
                {"first": 1 + 10 * i, "last": 10 + 10 * i, "to": ENTERPRISES[i % 20]},
            )
            for i in range(batch)
        ]

    return {
        "transfer_allowances": transfers,
        "deposit_cash": deposits,
        "submit_report": reports,
        "place_order (rests)": resting_orders,
        "place_order (1 match)": matching_orders,
        "transfer_offsets": offset_transfers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    bench = Bench()
    bench.setup()
    base = SortedState(bench.state.items())
    print(
        f"state entries: {len(base._keys)}; batch {options.batch} txs per block; median of {options.runs} runs"
    )
    for name, make in _cases(bench, options.batch).items():
        samples = []
        for _ in range(options.runs):
            txs = make()
            block = bench.block(txs)
            started = time.perf_counter()
            execution = execute_block(base, block, bench.registry, is_committed=lambda _: False)
            elapsed = time.perf_counter() - started
            failed = [r for r in execution.results if not r.is_ok]
            assert not failed, (name, failed[:2])
            samples.append(elapsed / len(txs) * 1e6)
        print(f"{name:24s} {statistics.median(samples):8.1f} us/tx")


if __name__ == "__main__":
    main()
