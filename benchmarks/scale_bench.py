"""Scale curve: executing and committing blocks of transfers as the state grows to a million keys.

A real LevelDB store starts from the chaincode benchmark's funded consortium (20 enterprises, a period, a
bank). Filler keys grow the state to each size in turn. At each size, blocks of BLOCK_TXS
`transfer_allowances` go through the node's own apply path: `execute_block` against the store, then
`Store.commit_block`, which makes one synced write batch with the new state root. The script reports the
block time and the tx/s of that pipeline, as the median of --runs blocks after a warm-up block.
Signatures are not part of this path (a node checks them at admission), and neither are consensus or
the network. `carbonchain bench` measures those, and they do not depend on the state's size.

    .venv/bin/python benchmarks/scale_bench.py [--sizes 10000,100000,1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "storage"))

from chaincode_bench import CHAIN_ID, ENTERPRISES, Bench
from storagekit import make_block, make_results, make_tx

from chaincode import execute_block
from core.tx import SignedTx
from storage.store import Store

BLOCK_TXS = 1000
FILL_TXS_PER_BLOCK = 100
FILL_KEYS_PER_TX = 1000
FILL_PREFIX = b"fill/"  # keys no chaincode function reads: they only make the state (and its tree) big


def apply(bench: Bench, store: Store, txs: list[SignedTx]) -> float:
    """Execute and commit one block the way node/applier.py does; returns its wall time in seconds."""
    block = make_block(store, txs, chain_id=CHAIN_ID)
    start = time.perf_counter()
    execution = execute_block(
        store, block, bench.registry, is_committed=lambda tx_id: store.get_tx_location(tx_id) is not None
    )
    store.commit_block(block, execution.results, execution.tx_writes, None, end_writes=execution.end_writes)
    elapsed = time.perf_counter() - start
    failed = [result for result in execution.results if not result.is_ok]
    assert not failed, failed[:3]
    return elapsed


def fill(store: Store, keys: int, next_key: int) -> int:
    """Grow the state with filler keys in big synthetic blocks; returns the next unused key number."""
    while next_key < keys:
        tx_writes: list[dict[bytes, bytes | None]] = []
        while next_key < keys and len(tx_writes) < FILL_TXS_PER_BLOCK:
            end = min(keys, next_key + FILL_KEYS_PER_TX)
            tx_writes.append({FILL_PREFIX + b"%09d" % n: b"x%d" % n for n in range(next_key, end)})
            next_key = end
        txs = [make_tx(10**9 + next_key + i) for i in range(len(tx_writes))]
        store.commit_block(make_block(store, txs), make_results(tx_writes), tx_writes, None)
    return next_key


def transfers(bench: Bench, store: Store) -> list[SignedTx]:
    bench.height = store.last_height  # the transactions' validity window starts here
    return [
        bench.tx(ENTERPRISES[i % 20], "transfer_allowances", {"to": ENTERPRISES[(i + 1) % 20], "amount_t": 5})
        for i in range(BLOCK_TXS)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="state sizes in keys, ascending")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    bench = Bench()
    bench.setup()
    with tempfile.TemporaryDirectory() as directory, Store.open(Path(directory)) as store:
        store.initialise_genesis(b"\x11" * 32, dict(bench.state.items()))
        base = len(dict(bench.state.items()))
        filled = 0
        print(f"{'state keys':>12}  {'block ms':>9}  {'tx/s':>7}  runs (ms)")
        for size in sizes:
            filled = fill(store, max(0, size - base), filled)
            store._db.compact_range()  # as storage_bench: timed blocks do not pay for the bulk load
            apply(bench, store, transfers(bench, store))  # warm-up
            times = [apply(bench, store, transfers(bench, store)) for _ in range(args.runs)]
            median = statistics.median(times)
            runs = ", ".join(f"{t * 1e3:.0f}" for t in times)
            print(
                f"{base + filled:>12,}  {median * 1e3:>9.1f}  {BLOCK_TXS / median:>7,.0f}  {runs}", flush=True
            )


if __name__ == "__main__":
    main()
