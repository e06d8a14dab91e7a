"""Storage benchmark: block commit time and state-root cost per changed key at 10 thousand and 1 million keys.

Builds the state through the public API (big synthetic blocks for the bulk load), then times commits of
blocks of 1,000 signed transactions that change 3 keys each (2 updates of existing keys, 1 new key).
Transactions are signed before the clock starts: signing is the client's cost, not storage's.
After each bulk load the database is compacted, so the timed blocks do not compete with the background
compaction of the bulk load (a running node spreads that over many blocks); the timed blocks' own compactions
still count. Reports the median of several runs; --profile prints cProfile's top entries for the timed blocks
at the larger size. --reopen restarts the store after each bulk load (--no-warm: without warming the writer's node cache).
Run: .venv/bin/python benchmarks/storage_bench.py [--runs 5] [--big 1000000] [--profile] [--reopen [--no-warm]]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "storage"))

from storagekit import GENESIS_HASH, make_block, make_certificate, make_results, make_tx

from storage.store import Store
from storage.trie import apply_changes, compute_changes

BLOCK_TXS = 1000
KEYS_PER_TX = 3
BULK_TXS = 100  # per bulk-load block
BULK_KEYS_PER_TX = 1000


def bulk_load(store: Store, total_keys: int, next_key: int) -> int:
    """Grow the state to `total_keys` with large blocks; returns the next unused key number."""
    nonce = 10**9 + next_key
    while next_key < total_keys:
        tx_writes: list[dict[bytes, bytes | None]] = []
        for _ in range(BULK_TXS):
            if next_key >= total_keys:
                break
            end = min(total_keys, next_key + BULK_KEYS_PER_TX)
            tx_writes.append({b"acct/%09d" % n: b"balance:%d" % (n * 7) for n in range(next_key, end)})
            next_key = end
        txs = [make_tx(nonce + i) for i in range(len(tx_writes))]
        nonce += len(tx_writes)
        store.commit_block(make_block(store, txs), make_results(tx_writes), tx_writes, None)
    return next_key


def time_blocks(
    store: Store, next_key: int, runs: int, rng: random.Random
) -> tuple[list[float], list[float], int]:
    commit_ms: list[float] = []
    root_us_per_key: list[float] = []
    for run in range(runs):
        tx_writes: list[dict[bytes, bytes | None]] = []
        for i in range(BLOCK_TXS):
            writes: dict[bytes, bytes | None] = {
                b"acct/%09d" % rng.randrange(next_key): b"v%d.%d" % (run, i),
                b"acct/%09d" % rng.randrange(next_key): b"w%d.%d" % (run, i),
                b"acct/%09d" % next_key: b"new",
            }
            next_key += 1
            tx_writes.append(writes)
        txs = [make_tx(2 * 10**9 + store.last_height * BLOCK_TXS + i) for i in range(BLOCK_TXS)]
        block = make_block(store, txs)
        certificate = make_certificate(block)
        results = make_results(tx_writes)
        # Root-update cost alone: the same trie pass the commit makes, without writing its nodes.
        net: dict[bytes, bytes | None] = {}
        for writes in tx_writes:
            net.update(writes)
        start = time.perf_counter()
        apply_changes(store._load_cached_node, compute_changes(net.items()), {})
        root_us_per_key.append((time.perf_counter() - start) * 1e6 / len(net))
        start = time.perf_counter()
        store.commit_block(block, results, tx_writes, certificate)
        commit_ms.append((time.perf_counter() - start) * 1e3)
    return commit_ms, root_us_per_key, next_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true", help="profile the timed blocks at --big keys")
    parser.add_argument(
        "--reopen", action="store_true", help="close and reopen the store after each bulk load (restart path)"
    )
    parser.add_argument("--no-warm", action="store_true", help="with --reopen: do not warm the node cache")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as directory:
        store = Store.open(Path(directory))
        store.initialise_genesis(GENESIS_HASH, {})
        next_key = 0
        for size in (args.small, args.big):
            start = time.perf_counter()
            next_key = bulk_load(store, size, next_key)
            print(f"bulk-loaded to {next_key:,} keys in {time.perf_counter() - start:.1f} s", flush=True)
            store._db.compact_range()
            if args.reopen:
                store.close()
                start = time.perf_counter()
                store = Store.open(Path(directory), warm_node_cache=not args.no_warm)
                print(
                    f"reopened in {(time.perf_counter() - start) * 1e3:.0f} ms "
                    f"(node cache {store._node_cache_bytes / 2**20:.0f} MiB, {len(store._node_cache):,} nodes)",
                    flush=True,
                )
            time_blocks(store, next_key, 1, rng)  # warm-up
            profiler = cProfile.Profile() if args.profile and size == args.big else None
            if profiler is not None:
                profiler.enable()
            commit_ms, root_us, next_key = time_blocks(store, next_key, args.runs, rng)
            if profiler is not None:
                profiler.disable()
            print(
                f"{size:>9,} keys: block of {BLOCK_TXS} txs x {KEYS_PER_TX} keys: "
                f"commit median {statistics.median(commit_ms):.1f} ms "
                f"(runs: {', '.join(f'{ms:.1f}' for ms in commit_ms)}); "
                f"root update median {statistics.median(root_us):.1f} us per changed key",
                flush=True,
            )
            if profiler is not None:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        store.close()


if __name__ == "__main__":
    main()
