"""Crash, pause and restart cycles against a real network under load, timed to the next commit (issue 17).

The fault schedule is a pure function of a seed (`plan_faults`): every round of len(FaultKind) cycles runs
each kind once, in a seeded order, with a seeded down time. `ChaosRun` performs it on a running Cluster
while `Load` submits deposits through the client library and records every transaction acknowledged as
committed, and `CommitWatcher` follows the block events of every node. Fault tolerance is respected: at most
one of the four validators is down or paused at a time, except in a full restart, and a cycle starts only
once the previous one has settled: the validators it hit are back (below), and all validators report one
view. A validator can be left in a view of its own: a replica whose progress deadline passed while the
primary was briefly away asks for the next view alone, and PBFT never takes a replica back to a lower
view, so it waits there, not voting, until the others change view too. A run waits SPLIT_VIEW_WAIT view
timeouts for the views to meet, then records the split (`CycleResult.views`) and goes on: the next fault
then costs a view change, which the timings show.

What is timed, precisely:
- **next commit**: from the fault (the signal sent; for a full restart: the validators started again) to
  the first block *proposed after that moment* (header time_ms greater than the wall clock then) whose
  block event reaches the test from any node. Blocks already in flight at the fault (or re-proposed from
  an earlier view) do not count, so after a crash of the primary this is the time until the new primary's
  own first block commits.
- **answering**: from the undo (start or SIGCONT) until the fault's validators answer /v1/status: for a
  restart that is the process start, recovery from LevelDB and the first links (a validator opens its API
  once linked to a quorum, or after 5 s), most of it Python starting up on a loaded machine.
- **back**: from the undo until the fault's validators are ready (/readyz: linked, not catching up) and at
  least at the height the network had at the undo.
Both are polled every 50 ms: /v1/status and /readyz are the only events a separate process offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from client import ApiError, CarbonClient, CommitTimeout, TxStatus
from tests.integration.cluster import (
    Cluster,
    bank_signer,
    deposit,
    get_status,
    wait_for_agreement,
    wait_until,
)

WATCH_ORG = "chaos.blocks-only"  # an organisation no transaction names: its event stream carries only blocks
RECONNECT_S = 0.2  # a watcher or load worker tries a node that did not answer again after this
SETTLE_POLL_S = 0.05
NEXT_COMMIT_TIMEOUT_S = 60.0  # beyond this a fault left the network stuck: the run fails with the statuses
SETTLE_TIMEOUT_S = 60.0  # beyond this a validator that should be back is stuck: the run fails
SPLIT_VIEW_WAIT = 5  # view timeouts to wait, once back, for every validator to report one view


class FaultKind(enum.StrEnum):
    KILL_REPLICA = "kill -9 replica"  # a validator that is not the primary: SIGKILL, later started again
    KILL_PRIMARY = "kill -9 primary"  # the primary of the current view (from /v1/status)
    PAUSE_REPLICA = "pause replica"  # SIGSTOP, later SIGCONT
    PAUSE_PRIMARY = "pause primary"
    RESTART = "SIGTERM restart"  # any validator, graceful: it must exit 0; started again after the down time
    FULL_RESTART = "full restart"  # kill -9 of every validator at once, then all started again


@dataclass(frozen=True)
class PlannedFault:
    number: int  # 0-based cycle number
    kind: FaultKind
    pick: int  # which validator: an index into the candidates the kind allows, modulo their number
    down_ms: int  # how long the validator (or all of them) stays down or paused


def plan_faults(seed: int, cycles: int, view_timeout_ms: int) -> list[PlannedFault]:
    """The schedule of a run: each round of len(FaultKind) cycles covers every kind once, in seeded order;
    down times are uniform in [view_timeout / 2, 3 view timeouts] (some outlast a view change, some not)."""
    rng = random.Random(f"chaos/{seed}")
    kinds = list(FaultKind)
    faults: list[PlannedFault] = []
    order: list[FaultKind] = []
    for number in range(cycles):
        if number % len(kinds) == 0:
            order = rng.sample(kinds, len(kinds))
        kind = order[number % len(kinds)]
        down_ms = rng.randint(view_timeout_ms // 2, 3 * view_timeout_ms)
        faults.append(PlannedFault(number, kind, rng.randrange(1 << 16), down_ms))
    return faults


def choose_targets(fault: PlannedFault, validators: list[str], primary: str) -> list[str]:
    """The validators a fault hits, given who the primary is now."""
    if fault.kind is FaultKind.FULL_RESTART:
        return list(validators)
    if fault.kind in (FaultKind.KILL_PRIMARY, FaultKind.PAUSE_PRIMARY):
        return [primary]
    candidates = validators if fault.kind is FaultKind.RESTART else [v for v in validators if v != primary]
    return [candidates[fault.pick % len(candidates)]]


@dataclass(frozen=True)
class CycleResult:
    fault: PlannedFault
    targets: tuple[str, ...]
    was_primary: bool  # the (single) target was the primary when hit
    next_commit_ms: float
    answering_ms: float
    back_ms: float
    views: dict[str, int]  # each validator's view once settled (one value, unless a view was left split)

    @property
    def is_split(self) -> bool:
        return len(set(self.views.values())) > 1

    def describe(self) -> str:
        who = ",".join(self.targets) if len(self.targets) == 1 else "all validators"
        role = " (primary)" if self.was_primary and len(self.targets) == 1 else ""
        views = f"views split {self.views}" if self.is_split else f"view {max(self.views.values())}"
        return (
            f"cycle {self.fault.number}: {self.fault.kind} {who}{role}, down {self.fault.down_ms} ms: "
            f"next commit {self.next_commit_ms:.0f} ms, answering {self.answering_ms:.0f} ms, "
            f"back {self.back_ms:.0f} ms, {views}"
        )


def format_table(results: Iterable[CycleResult]) -> str:
    """Per fault kind: count, then median and worst of the time to the next commit, until answering and
    until back, in ms."""
    by_kind: dict[FaultKind, list[CycleResult]] = {}
    for result in results:
        by_kind.setdefault(result.fault.kind, []).append(result)
    columns = ("next commit ms", "answering ms", "back ms")
    lines = [
        f"{'fault':<16} {'count':>5}" + "".join(f"  {name:>17}" for name in columns),
        f"{'':<16} {'':>5}" + f"  {'median':>8} {'worst':>8}" * len(columns),
    ]
    for kind in FaultKind:
        rows = by_kind.get(kind, [])
        line = f"{kind.value:<16} {len(rows):>5}"
        for values in (
            [r.next_commit_ms for r in rows],
            [r.answering_ms for r in rows],
            [r.back_ms for r in rows],
        ):
            if values:
                line += f"  {statistics.median(values):>8.0f} {max(values):>8.0f}"
        lines.append(line)
    return "\n".join(lines)


def format_splits(results: Iterable[CycleResult]) -> str:
    """The cycles after which a validator was left in a view of its own, one line each ('' if none)."""
    return "\n".join(f"views left split after {r.describe()}" for r in results if r.is_split)


def wall_clock_ms() -> int:
    """The clock block times are taken from (node/clock.py, with no test offset): same machine, same clock."""
    return time.time_ns() // 1_000_000


# --- the asyncio shells ---------------------------------------------------------------------------------


class CommitWatcher:
    """Follows the block events of every node (reconnecting as nodes go and come back) and answers when the
    first block proposed after a given wall-clock time was seen committed, on the monotonic clock."""

    def __init__(self, cluster: Cluster, names: Iterable[str]) -> None:
        self.cluster = cluster
        self.names = list(names)
        self.highest_height = 0
        self._waiters: list[tuple[int, asyncio.Future[float]]] = []  # (wall ms, first seen after it)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow(name)) for name in self.names]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def expect_commit_after(self, wall_ms: int) -> asyncio.Future[float]:
        """A future set to the monotonic time the first block with time_ms > wall_ms is seen."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((wall_ms, future))
        return future

    def _note_block(self, event: dict[str, Any]) -> None:
        seen_s = time.monotonic()
        self.highest_height = max(self.highest_height, int(event["height"]))
        time_ms = int(event["time_ms"])
        for wall_ms, future in self._waiters:
            if time_ms > wall_ms and not future.done():
                future.set_result(seen_s)
        self._waiters = [(w, f) for w, f in self._waiters if not f.done()]

    async def _follow(self, name: str) -> None:
        while True:
            with contextlib.suppress(ApiError, aiohttp.ClientError, OSError, TimeoutError):
                async with CarbonClient(self.cluster.api_url(name), timeout_s=5) as client:
                    async for event in client.events(org=WATCH_ORG):
                        if event.get("type") == "block":
                            self._note_block(event)
            await asyncio.sleep(RECONNECT_S)  # the node is down or restarting


@dataclass
class LoadStats:
    batches: int = 0
    failed_batches: int = 0  # a node down, paused or restarting; nothing to check about those
    rejected: int = 0  # transactions refused at admission (e.g. mempool_full, not_ordering)


class Load:
    """Background deposits through the client library, spread over the nodes that are up; records every
    transaction acknowledged as committed (tx id -> its status: height, index, result code)."""

    def __init__(
        self,
        cluster: Cluster,
        targets: Iterable[str],
        *,
        workers: int = 3,
        batch: int = 5,
        wait_s: float = 20,
    ) -> None:
        self.cluster = cluster
        self.targets = list(targets)
        self.unavailable: set[str] = set()  # down or paused: not sent to
        self.acked: dict[str, TxStatus] = {}
        self.stats = LoadStats()
        self._workers = workers
        self._batch = batch
        self._wait_s = wait_s
        self._tasks: list[asyncio.Task[None]] = []
        self._released = asyncio.Event()  # cleared by hold(): workers start no new batch
        self._released.set()
        self._in_flight = 0
        self._idle = asyncio.Event()  # set while no batch is in flight
        self._idle.set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(number)) for number in range(self._workers)]

    async def hold(self) -> None:
        """Start no new batch, and return once the batches in flight are acknowledged or given up."""
        self._released.clear()
        await self._idle.wait()

    def release(self) -> None:
        self._released.set()

    async def stop(self) -> None:
        """Stop submitting; what was in flight and not yet acknowledged is simply not counted."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def highest_acked_height(self) -> int:
        return max((status.height or 0 for status in self.acked.values()), default=0)

    async def _work(self, number: int) -> None:
        turn = number
        while True:
            await self._released.wait()
            available = [name for name in self.targets if name not in self.unavailable]
            if not available:
                await asyncio.sleep(RECONNECT_S)
                continue
            name = available[turn % len(available)]
            turn += 1
            self._in_flight += 1
            self._idle.clear()
            try:
                await self._submit_batch(name)
            except (ApiError, CommitTimeout, aiohttp.ClientError, OSError, TimeoutError):
                self.stats.failed_batches += 1
                await asyncio.sleep(RECONNECT_S)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

    async def _submit_batch(self, name: str) -> None:
        async with CarbonClient(self.cluster.api_url(name), timeout_s=5) as client:
            signer = await bank_signer(client)  # fresh: its valid_until counts from the current height
            submissions = await client.submit_many([deposit(signer) for _ in range(self._batch)])
            accepted = [s.tx_id for s in submissions if s.accepted]
            self.stats.rejected += len(submissions) - len(accepted)
            statuses = await client.wait_for_commits(accepted, timeout_s=self._wait_s)
        self.acked.update({tx_id: s for tx_id, s in statuses.items() if s.is_committed})
        self.stats.batches += 1


async def stop_process(cluster: Cluster, name: str, sig: signal.Signals, timeout_s: float = 15) -> int:
    """Signal a node and wait for it to exit without blocking the event loop (load and watchers run on it)."""
    process = cluster.processes.pop(name)
    process.send_signal(sig)
    try:
        return await asyncio.to_thread(process.wait, timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{name} did not exit within {timeout_s:.0f} s of {sig.name}") from None


async def get_ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


@dataclass
class ChaosRun:
    """Performs a fault schedule on a running cluster while `load` runs and `watcher` follows the blocks."""

    cluster: Cluster
    load: Load
    watcher: CommitWatcher
    results: list[CycleResult] = field(default_factory=list)
    _paused: set[str] = field(default_factory=set)

    @property
    def validators(self) -> list[str]:
        return self.cluster.validator_names

    async def run(self, faults: Iterable[PlannedFault], *, log: Any = print) -> None:
        try:
            await self.wait_back(self.validators, min_height=0)
            for fault in faults:
                result = await self.run_cycle(fault)
                self.results.append(result)
                log(result.describe())
        finally:
            for name in list(self._paused):  # never leave a process stopped behind a failure
                self._resume(name)

    async def run_cycle(self, fault: PlannedFault) -> CycleResult:
        primary = await self.get_primary()
        targets = choose_targets(fault, self.validators, primary)
        kind = fault.kind
        self.load.unavailable.update(targets)
        fault_s = time.monotonic()
        next_commit = self.watcher.expect_commit_after(wall_clock_ms())
        stopping: asyncio.Task[int] | None = None
        if kind is FaultKind.FULL_RESTART:
            next_commit.cancel()  # nothing can commit while every validator is down: timed from the start
            await asyncio.gather(*(stop_process(self.cluster, name, signal.SIGKILL) for name in targets))
        elif kind in (FaultKind.PAUSE_REPLICA, FaultKind.PAUSE_PRIMARY):
            self.cluster.pause(targets[0])
            self._paused.add(targets[0])
        elif kind is FaultKind.RESTART:
            stopping = asyncio.create_task(stop_process(self.cluster, targets[0], signal.SIGTERM))
        else:
            await stop_process(self.cluster, targets[0], signal.SIGKILL)
        await asyncio.sleep(fault.down_ms / 1000)  # the fault's duration, chosen by the schedule
        if stopping is not None:
            code = await stopping
            assert code == 0, (
                f"{targets[0]} exited with {code} on SIGTERM:\n{self.cluster.log_tail(targets[0])}"
            )
        undo_height = await self.get_network_height(exclude=targets)
        undo_s = time.monotonic()
        if kind is FaultKind.FULL_RESTART:
            fault_s = undo_s
            next_commit = self.watcher.expect_commit_after(wall_clock_ms())
        if targets[0] in self._paused:
            self._resume(targets[0])
        else:
            self.cluster.start(*targets)
        try:
            committed_s = await asyncio.wait_for(next_commit, NEXT_COMMIT_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(
                f"no commit within {NEXT_COMMIT_TIMEOUT_S:.0f} s of {kind} of {targets}:\n"
                + await self.describe_statuses()
            ) from None
        answering_s, back_s = await self.wait_back(targets, min_height=undo_height)
        self.load.unavailable.difference_update(targets)
        views = await self.wait_one_view()
        return CycleResult(
            fault,
            tuple(targets),
            targets == [primary],
            1000 * (committed_s - fault_s),
            1000 * (answering_s - undo_s),
            1000 * (back_s - undo_s),
            views,
        )

    def _resume(self, name: str) -> None:
        self.cluster.resume(name)
        self._paused.discard(name)

    async def _statuses(self, names: list[str]) -> list[dict[str, Any] | None]:
        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(get_status(session, self.cluster.api_url(n)) for n in names)))

    async def get_primary(self) -> str:
        """The primary the validators name in /v1/status (all of them agree once a cycle has settled)."""
        statuses = [s for s in await self._statuses(self.validators) if s is not None]
        assert statuses, "no validator answers /v1/status"
        index, _ = Counter(s["primary"] for s in statuses).most_common(1)[0]
        return f"validator-{index}"

    async def get_network_height(self, *, exclude: list[str]) -> int:
        """The highest height the nodes not in `exclude` report (a paused node would not answer)."""
        statuses = await self._statuses([name for name in self.cluster.names if name not in exclude])
        return max((s["height"] for s in statuses if s is not None), default=0)

    async def wait_back(self, targets: list[str], *, min_height: int) -> tuple[float, float]:
        """Wait until `targets` answer /v1/status, then until they are ready (/readyz) and at min_height;
        returns both times. Fails with every node's status after SETTLE_TIMEOUT_S: a node stuck."""
        answering_s: float | None = None

        async def back() -> bool:
            nonlocal answering_s
            self.cluster.check_alive()
            statuses = await self._statuses(targets)
            if any(status is None for status in statuses):
                return False
            answering_s = answering_s or time.monotonic()
            async with aiohttp.ClientSession() as session:
                ready = await asyncio.gather(*(get_ready(session, self.cluster.api_url(n)) for n in targets))
            return all(ready) and all(s is not None and s["height"] >= min_height for s in statuses)

        try:
            await wait_until(
                back, timeout_s=SETTLE_TIMEOUT_S, interval_s=SETTLE_POLL_S, what=f"{targets} back"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{await self.describe_statuses()}") from None
        assert answering_s is not None
        return answering_s, time.monotonic()

    async def wait_one_view(self) -> dict[str, int]:
        """Every validator's view, once they all report the same one, or as they stand after SPLIT_VIEW_WAIT
        view timeouts (a view left split: see the module docstring)."""
        views: dict[str, int] = {}

        async def one_view() -> bool:
            nonlocal views
            statuses = await self._statuses(self.validators)
            views = {n: s["view"] for n, s in zip(self.validators, statuses, strict=True) if s is not None}
            return len(views) == len(self.validators) and len(set(views.values())) == 1

        timeout_s = SPLIT_VIEW_WAIT * self.cluster.genesis.consensus.view_timeout_ms / 1000
        with contextlib.suppress(AssertionError):
            await wait_until(one_view, timeout_s=timeout_s, interval_s=SETTLE_POLL_S, what="one view")
        return views

    async def describe_statuses(self) -> str:
        fields = ("height", "view", "primary", "peers", "catching_up", "halted", "paused", "unlinked_peers")
        lines = []
        for name, status in zip(self.cluster.names, await self._statuses(self.cluster.names), strict=True):
            shown = "no answer" if status is None else ", ".join(f"{k}={status.get(k)}" for k in fields)
            lines.append(f"  {name}: {shown}")
        return "\n".join(lines)


# --- the end of a run: nothing lost, no divergence -----------------------------------------------------


@dataclass
class ChainRecord:
    """What one node's event replay shows of its chain up to a height."""

    blocks: list[tuple[str, str]] = field(default_factory=list)  # (hash, state_root) of heights 1, 2, ...
    txs: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # tx id -> (height, index, code)
    duplicates: list[str] = field(default_factory=list)  # tx ids committed more than once


async def read_chain(url: str, through_height: int) -> ChainRecord:
    """Replay a node's committed events from height 1 (its [api] event_replay_blocks_max must allow it)."""
    record = ChainRecord()
    if through_height == 0:
        return record
    txs_left = -1  # of the last block, once its block event was seen
    async with CarbonClient(url) as client:
        async for event in client.events(from_height=1):
            if event["type"] == "block":
                assert event["height"] == len(record.blocks) + 1, (url, event["height"], len(record.blocks))
                record.blocks.append((event["hash"], event["state_root"]))
                if event["height"] == through_height:
                    txs_left = event["tx_count"]
            elif event["type"] == "tx":
                if event["tx_id"] in record.txs:
                    record.duplicates.append(event["tx_id"])
                record.txs[event["tx_id"]] = (event["height"], event["index"], event["code"])
                txs_left -= 1 if event["height"] == through_height else 0
            else:
                raise AssertionError(f"{url}: the replay ended with {event}")
            if txs_left == 0:
                return record
    raise AssertionError(f"{url}: the event stream ended before height {through_height}")


async def assert_acked_committed_everywhere(
    cluster: Cluster, names: list[str], acked: dict[str, TxStatus]
) -> int:
    """All nodes agree on the head (hash and state root) and on every block before it, no transaction is
    committed twice, and every acknowledged transaction is on every node at its acknowledged height and
    index with its acknowledged result. Returns the agreed height."""
    highest = max((status.height or 0 for status in acked.values()), default=0)
    head = await wait_for_agreement(cluster, names, min_height=highest, timeout_s=60)
    height = int(head["height"])
    chains = {name: await read_chain(cluster.api_url(name), height) for name in names}
    reference = chains[names[0]]
    for name, chain in chains.items():
        assert not chain.duplicates, (name, chain.duplicates[:5])
        diverged = [
            h + 1 for h, (a, b) in enumerate(zip(chain.blocks, reference.blocks, strict=True)) if a != b
        ]
        assert not diverged, f"{name} and {names[0]} differ at heights {diverged[:10]}"
        wrong = {
            tx_id: chain.txs.get(tx_id)
            for tx_id, status in acked.items()
            if chain.txs.get(tx_id) != (status.height, status.index, status.code)
        }
        assert not wrong, (
            f"{name}: {len(wrong)} acknowledged transactions differ or are missing: {list(wrong.items())[:5]}"
        )
    return height
