"""A real network with a faulty machine under one of its validators: a skewed clock, a full disk.

The clock is shifted through the node's test clock hook (node/clock.py, CARBONCHAIN_TEST_CLOCK_OFFSET_MS).
The full disk is real: the validator's data dir lives on a small tmpfs mounted for the test and filled to the
brim by a file the test writes and then deletes. Mounting needs root (CAP_SYS_ADMIN); without it that test
is skipped and says why.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from client import CarbonClient, TxRejected
from node.clock import CLOCK_OFFSET_ENV
from node.diskguard import MIB, get_free_bytes
from tests.integration.cluster import (
    Cluster,
    assert_committed_everywhere,
    bank_signer,
    commit_waves,
    deposit,
    running_cluster,
    wait_all_live,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)
CLOCK_DRIFT_MAX_MS = 5_000  # the genesis default


async def test_a_validator_with_a_skewed_clock(tmp_path: Path) -> None:
    # Validator-0, the first primary, runs 30 s ahead: beyond clock_drift_max_ms, so the others refuse its
    # proposals and move to a new view, and it refuses theirs (it only follows). Validator-3 runs 3 s behind,
    # within the bound: that must change nothing. No block may carry validator-0's future time.
    def skew(cluster: Cluster) -> None:
        cluster.node_env["validator-0"] = {CLOCK_OFFSET_ENV: "30000"}
        cluster.node_env["validator-3"] = {CLOCK_OFFSET_ENV: "-3000"}

    started_ms = time.time_ns() // 1_000_000
    with running_cluster(tmp_path, prepare=skew) as cluster:
        await wait_all_live(cluster)
        others = ["validator-1", "validator-2", "validator-3", "observer-0"]
        committed = await commit_waves(cluster, others, seconds=4)
        async with CarbonClient(cluster.api_url("validator-1")) as client:
            status = await client.status()
            assert status["view"] >= 1 and status["primary"] != 0
            now_ms = time.time_ns() // 1_000_000
            for height in range(1, status["height"] + 1):
                block_time_ms = (await client.block(height))["header"]["time_ms"]
                assert started_ms - CLOCK_DRIFT_MAX_MS <= block_time_ms <= now_ms + CLOCK_DRIFT_MAX_MS, height
        await assert_committed_everywhere(cluster, cluster.names, committed)  # validator-0 follows, too
        assert "test clock offset in effect" in cluster.log_tail("validator-0", lines=10_000)


@contextlib.contextmanager
def small_tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave_bytes: int) -> Path:
    """Write a file until fewer than `leave_bytes` are free on the file system of `path`."""
    filler = path / "filler"
    chunk = bytes(MIB)
    with filler.open("wb") as out:
        while get_free_bytes(path) >= leave_bytes + len(chunk):
            out.write(chunk)
            out.flush()
        out.write(bytes(max(0, get_free_bytes(path) - leave_bytes)))
    return filler


async def _readiness(url: str) -> tuple[int, str | None]:
    async with aiohttp.ClientSession() as session, session.get(url + "/readyz") as response:
        return response.status, (await response.json())["reason"]


async def test_a_validator_whose_disk_fills_up_stops_ordering_and_resumes(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_tmpfs(disk, 48 * MIB):

        def on_small_disk(cluster: Cluster) -> None:
            cluster.update_config(
                "validator-3", "node", data_dir=str(disk / "data"), disk_free_bytes_min=8 * MIB
            )

        with running_cluster(tmp_path / "network", observers=0, prepare=on_small_disk) as cluster:
            url = cluster.api_url("validator-3")
            await wait_all_live(cluster)
            before = await commit_waves(cluster, ["validator-3"], seconds=0)
            filler = fill(disk, leave_bytes=4 * MIB)

            async def paused() -> str | None:
                cluster.check_alive()
                status, reason = await _readiness(url)
                return reason if status == 503 and reason and "disk nearly full" in reason else None

            await wait_until(paused, timeout_s=10, what="validator-3 to report its full disk")
            async with CarbonClient(url) as client:
                stopped_at = (await client.status())["height"]
                assert (await client.status())["paused"] is not None
            # the others go on; validator-3 writes nothing, and says why it takes no transactions
            during = await commit_waves(cluster, ["validator-0", "validator-1", "validator-2"], seconds=3)
            async with CarbonClient(url) as client:
                with pytest.raises(TxRejected) as refused:
                    await client.submit(deposit(await bank_signer(client)))
                assert (refused.value.status, refused.value.code) == (503, "not_ordering")
                assert (await client.status())["height"] == stopped_at
            cluster.check_alive()
            filler.unlink()

            async def ready() -> bool:
                cluster.check_alive()
                return (await _readiness(url))[0] == 200

            await wait_until(ready, timeout_s=30, what="validator-3 to resume")
            after = await commit_waves(cluster, ["validator-3"], seconds=0)
            await assert_committed_everywhere(cluster, cluster.names, before | during | after)
            log = cluster.log_tail("validator-3", lines=100_000)
            assert log.count("disk nearly full") == 1 and log.count("disk space is back") == 1
