"""SIGKILL a committing process at random moments; after each kill the store must reopen whole and true.

Each run starts tests/storage/crash_writer.py on the same data dir, waits until it has opened the store, kills
it after a random (seeded) delay, and checks: every block the child reported committed survived; the last
block is complete (results, tx index, roots); the state root equals a from-scratch recomputation; the stored
trie nodes are exactly those of a from-scratch build; history agrees with the state. Two lanes (separate data
dirs) run in parallel. STORAGE_CRASH_KILLS sets the total number of kills (default 120; soak: 5000).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from crash_writer import KEYS

from storage import schema
from storage.store import Store
from storage.trie import build_trie, compute_state_root, encode_stored

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = int(os.environ.get("STORAGE_CRASH_KILLS", "120"))
LANES = 2
SEED = int(os.environ.get("STORAGE_CRASH_SEED", "1729"))
KILL_DELAY_MAX_S = 0.06


def run_lane(data_dir: Path, lane: int, kills: int) -> int:
    rng = random.Random(SEED * 100 + lane)
    last_reported = -1
    for run in range(kills):
        child = subprocess.Popen(
            [sys.executable, str(WRITER), str(data_dir), f"{SEED}-{lane}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            ready = child.stdout.readline()
            assert ready.startswith("ready"), (
                f"lane {lane} run {run}: {ready!r} {child.stderr.read() if child.stderr else ''}"
            )
            time.sleep(rng.uniform(0, KILL_DELAY_MAX_S))  # the random moment is the point of the test
            child.send_signal(signal.SIGKILL)
            output, errors = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL, f"writer exited by itself: {errors}"
        for line in output.splitlines():
            if line.startswith("committed "):
                last_reported = int(line.split()[1])
        check_store(data_dir, last_reported, f"lane {lane} run {run}")
    return last_reported


def check_store(data_dir: Path, reported: int, where: str) -> None:
    with Store.open(data_dir) as store:
        height = store.last_height
        assert height >= max(reported, 0), f"{where}: reported block {reported} lost (head {height})"
        state = dict(store.iterate(b""))
        root = compute_state_root(state.items())
        assert store.get_roots(height) is not None
        assert store.get_roots(height)[0] == root == store.get_state_root(), where  # type: ignore[index]
        nodes: dict[bytes, bytes | None] = {}
        build_trie(state.items(), nodes)
        with store.snapshot() as snap:
            stored_nodes = {
                key[len(schema.TRIE_PREFIX) :]: value
                for key, value in snap._source.iterator(prefix=schema.TRIE_PREFIX)
            }
        built = {node_id: encode_stored(node_id, record) for node_id, record in nodes.items() if record}
        assert stored_nodes == built, f"{where}: trie nodes differ from a from-scratch build"
        if height >= 1:
            stored = store.get_block(height)
            assert stored is not None, where
            assert stored.block.block_hash == store.last_block_hash
            assert len(stored.results) == len(stored.block.txs) == stored.block.header.tx_count
            for index, tx in enumerate(stored.block.txs):
                location = store.get_tx_location(tx.tx_id)
                assert location is not None and (location.height, location.index) == (height, index), where
            assert store.get_block(height + 1) is None
            assert (stored.certificate is not None) == (height % 2 == 0), where
        for i in range(KEYS):
            key = b"k/%d" % i
            versions = store.get_history(key, limit=1000) if height < 900 else []
            assert store.get_at(key, height) == state.get(key), f"{where}: history of {key!r} disagrees"
            if versions:
                assert versions[-1].value == state.get(key), where
                assert versions[-1].height <= height


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    per_lane = [KILLS // LANES + (1 if lane < KILLS % LANES else 0) for lane in range(LANES)]
    with ThreadPoolExecutor(LANES) as pool:
        futures = [
            pool.submit(run_lane, tmp_path / f"lane{lane}", lane, per_lane[lane]) for lane in range(LANES)
        ]
        heights = [future.result() for future in futures]
    assert all(height > 0 for height in heights)  # the writers made progress between kills
