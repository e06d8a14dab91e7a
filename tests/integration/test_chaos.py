"""Crash, pause and restart cycles on a real network under load (issue 17), timed to the next commit.

tests/integration/chaos.py holds the harness and defines what is timed. The default run is one round: every
fault kind once. The long mode is the same test with more cycles, run by hand (docs/TESTING.md):
`CARBONCHAIN_CHAOS_CYCLES=200 CARBONCHAIN_CHAOS_SEED=<n> pytest tests/integration/test_chaos.py -s`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration.chaos import (
    ChaosRun,
    CommitWatcher,
    FaultKind,
    Load,
    assert_acked_committed_everywhere,
    choose_targets,
    format_splits,
    format_table,
    plan_faults,
)
from tests.integration.cluster import Cluster, running_cluster, wait_all_live

CYCLES = int(os.environ.get("CARBONCHAIN_CHAOS_CYCLES", str(len(FaultKind))))
SEED = int(os.environ.get("CARBONCHAIN_CHAOS_SEED", "1"))
pytestmark = pytest.mark.timeout(150 + 30 * CYCLES)


def test_the_schedule_is_a_function_of_the_seed_and_every_round_covers_every_kind() -> None:
    plan = plan_faults(5, 3 * len(FaultKind), view_timeout_ms=1000)
    assert plan == plan_faults(5, 3 * len(FaultKind), view_timeout_ms=1000)
    assert plan != plan_faults(6, 3 * len(FaultKind), view_timeout_ms=1000)
    for start in range(0, len(plan), len(FaultKind)):
        assert {fault.kind for fault in plan[start : start + len(FaultKind)]} == set(FaultKind)
    assert all(500 <= fault.down_ms <= 3000 for fault in plan)
    validators = [f"validator-{i}" for i in range(4)]
    for fault in plan:
        targets = choose_targets(fault, validators, primary="validator-2")
        if fault.kind is FaultKind.FULL_RESTART:
            assert targets == validators
        elif fault.kind in (FaultKind.KILL_PRIMARY, FaultKind.PAUSE_PRIMARY):
            assert targets == ["validator-2"]
        elif fault.kind is not FaultKind.RESTART:
            assert len(targets) == 1 and targets != ["validator-2"]


async def test_crash_pause_and_restart_cycles_under_load_lose_nothing_and_keep_committing(
    tmp_path: Path,
) -> None:
    def replay_everything(cluster: Cluster) -> None:  # the final check replays every node's chain
        for name in cluster.names:
            cluster.update_config(name, "api", event_replay_blocks_max=100_000)

    print(f"chaos seed {SEED}, {CYCLES} cycles (CARBONCHAIN_CHAOS_SEED={SEED} repeats the schedule)")
    started_s = time.monotonic()
    with running_cluster(tmp_path, prepare=replay_everything) as cluster:
        await wait_all_live(cluster)
        load = Load(cluster, cluster.names)
        watcher = CommitWatcher(cluster, cluster.names)
        run = ChaosRun(cluster, load, watcher)
        plan = plan_faults(SEED, CYCLES, cluster.genesis.consensus.view_timeout_ms)
        watcher.start()
        load.start()
        try:
            await run.run(plan)
        finally:
            await load.stop()
            await watcher.stop()
            print(format_table(run.results))
            print(format_splits(run.results) or "no view left split")
        height = await assert_acked_committed_everywhere(cluster, cluster.names, load.acked)
        cluster.check_alive()
    print(
        f"{len(run.results)} cycles in {time.monotonic() - started_s:.0f} s: {len(load.acked)} transactions "
        f"acknowledged, all committed identically on {len(cluster.names)} nodes, which agree up to height "
        f"{height}; {load.stats}"
    )
    assert len(run.results) == CYCLES
    assert [result.fault for result in run.results] == plan
    assert len(load.acked) >= 20 * CYCLES, load.stats  # the load really ran throughout
