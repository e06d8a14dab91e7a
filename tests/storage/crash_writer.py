"""Child process of the crash test: commits random blocks to a data dir until it is killed.

Usage: python crash_writer.py <data dir> <seed>. Prints "ready <height>" once the store is open, then
"committed <height>" after each commit returns (so the parent knows what must have survived).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from storagekit import GENESIS_HASH, commit_writes

from storage.store import Store

KEYS = 300
GENESIS_WRITES = {b"k/%d" % i: b"genesis" for i in range(0, KEYS, 3)}
BLOCKS_MAX = 100_000


def make_tx_writes(seed: str, height: int) -> list[dict[bytes, bytes | None]]:
    rng = random.Random(f"{seed}/{height}")
    tx_writes: list[dict[bytes, bytes | None]] = []
    for _ in range(rng.randrange(1, 9)):
        writes: dict[bytes, bytes | None] = {}
        for _ in range(rng.randrange(0, 6)):
            key = b"k/%d" % rng.randrange(KEYS)
            writes[key] = None if rng.random() < 0.25 else b"%d:%d" % (height, rng.randrange(10**9))
        tx_writes.append(writes)
    return tx_writes


def main() -> None:
    data_dir, seed = Path(sys.argv[1]), sys.argv[2]
    with Store.open(data_dir) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
        print(f"ready {store.last_height}", flush=True)
        for _ in range(BLOCKS_MAX):
            height = store.last_height + 1
            commit_writes(store, make_tx_writes(seed, height), certificate=height % 2 == 0)
            print(f"committed {height}", flush=True)


if __name__ == "__main__":
    main()
