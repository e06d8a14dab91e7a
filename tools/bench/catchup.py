"""The catch-up and audit scale benchmark: a validator stopped for many blocks, then restarted.

One run = one fresh network of small blocks (genesis `block_txs_max` and `batch_wait_ms` are lowered so a
modest transfer load yields many blocks quickly). After the untimed transfer setup, the last validator is
stopped with SIGTERM; the others commit `--blocks` more blocks under a closed-loop transfer load sent to
them only; then the stopped validator is restarted and timed until its height equals the others' (blocks/s
and tx/s of catch-up; both from the restart and from the moment its API answers). Finally `carbonchain
audit verify` is run as a separate process against the caught-up validator, trusting only the network's
genesis.json, and timed with the wall clock. The runner's usual end check (same height, block hash and
state root on every node) follows. A restarted validator on an idle chain may stop fetching (its first
probes go to peers not yet linked); after STALL_S without progress the bench submits one transfer to a live
validator so a new block tells it that it is behind, and reports how many such stalls it saw and for how long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp

from tools.bench.load import LoadJob
from tools.bench.run import Run
from tools.bench.workloads import TxFactory, transfers_load, transfers_setup

# Small blocks: many blocks per second at a modest transaction rate (overridable with --consensus).
CATCH_UP_CONSENSUS: dict[str, Any] = {
    "block_txs_max": 4,
    "batch_wait_ms": 1,
    "tx_validity_blocks_max": 200_000,
}
CATCH_UP_ENTERPRISES = 20
CATCH_UP_TIMEOUT_S = 900.0
AUDIT_TIMEOUT_S = 900.0
POLL_S = 0.2
STALL_S = 3.0  # no height progress for this long while behind = a stalled catch-up
NUDGES_MAX = 100


class CatchUpRun(Run):
    """A Run whose load phase is: stop a validator, commit many blocks, restart it, time its catch-up."""

    async def _throughput(self, factory: TxFactory, mode: str) -> dict[str, Any]:
        options = self.options
        network = self.network
        n = options.enterprise_count
        block_txs = int({**CATCH_UP_CONSENSUS, **options.consensus}["block_txs_max"])
        count = options.txs or options.blocks * block_txs
        self.progress(f"signing {count} transfers (not timed)")
        load = transfers_load(factory, n, count + NUDGES_MAX)
        load, spare = load[:count], load[count:]
        for phase in transfers_setup(factory, n):
            await self._run_phase(phase)
        names = list(network.urls)
        lagger = f"validator-{options.validators - 1}"
        live_urls = [
            url for name, url in network.urls.items() if name.startswith("validator") and name != lagger
        ]
        async with aiohttp.ClientSession() as session:
            network.stop_node(lagger)
            stopped_height = await _height(session, live_urls[0])
            self.progress(f"stopped {lagger} at height {stopped_height}; loading the others")
            job = LoadJob(
                urls=tuple(live_urls),
                bodies=tuple(tx.raw for tx in load),
                mode="closed",
                concurrency=options.concurrency,
                retry_full=True,
                events_url=live_urls[0].replace("http://", "ws://", 1) + "/v1/events?blocks=0",
                tx_ids=tuple(tx.tx_id.hex() for tx in load),
                batch_max=options.batch_max,
            )
            assert self.worker is not None and self.listener is not None
            load_started = time.monotonic()
            ticker = asyncio.create_task(self._tick(load_started, 0.0))
            try:
                result = await self.worker.run(job)
                accepted = [load[i].tx_id.hex() for i, s in enumerate(result.statuses) if s == 202]
                missing = await self.listener.wait_for(accepted, timeout_s=120.0)
            finally:
                ticker.cancel()
            load_s = time.monotonic() - load_started
            target = await _settled_height(session, live_urls)
            behind = target - stopped_height
            txs_behind = sum(b.tx_count for b in self.listener.blocks if stopped_height < b.height <= target)
            self.progress(f"\n{behind} blocks ({txs_behind} txs) in {load_s:.1f} s; restarting {lagger}")
            lagger_url = network.urls[lagger]
            restarted = time.monotonic()
            network.start_node(lagger)
            answered: float | None = None
            first_height = height = -1
            deadline = restarted + CATCH_UP_TIMEOUT_S
            last_progress, nudges, stalled_s = restarted, 0, 0.0
            while True:
                now = time.monotonic()
                with contextlib.suppress(aiohttp.ClientError, OSError, KeyError, ValueError):
                    seen = await _height(session, lagger_url)
                    if answered is None:
                        answered, first_height = now, seen
                    if seen > height:
                        height, last_progress = seen, now
                target = max(target, await _height(session, live_urls[0]))
                if height >= target:
                    break
                if answered is not None and now - last_progress > STALL_S and nudges < len(spare):
                    # the lagger stopped fetching on an idle chain: one new block makes it notice it is behind
                    stalled_s += now - last_progress
                    await _post(session, live_urls[nudges % len(live_urls)], spare[nudges].raw)
                    nudges, last_progress = nudges + 1, now
                if now > deadline or lagger in network.dead_nodes():
                    raise RuntimeError(
                        f"{lagger} stuck at height {height} of {target}; see {network.log(lagger)}"
                    )
                self.progress(f"\r{lagger} at height {height} of {target}")
                await asyncio.sleep(POLL_S)
            caught_up = time.monotonic()
        behind = target - stopped_height
        txs_behind = sum(b.tx_count for b in self.listener.blocks if stopped_height < b.height <= target)
        from_restart_s = caught_up - restarted
        assert answered is not None
        from_api_s = max(1e-9, caught_up - answered)
        api_blocks = target - first_height
        api_txs = sum(b.tx_count for b in self.listener.blocks if first_height < b.height <= target)
        self.progress(f"\n{lagger} caught up {behind} blocks in {from_restart_s:.1f} s; auditing the chain")
        audit = self._audit(lagger_url, target)
        return {
            "mode": "catch-up",
            "txs": len(accepted),
            "not_committed": len(missing),
            "load_s": load_s,
            "load_blocks_per_s": behind / load_s,
            "blocks_behind": behind,
            "txs_behind": txs_behind,
            "catch_up_s": from_restart_s,
            "catch_up_blocks_per_s": behind / from_restart_s,
            "catch_up_tx_per_s": txs_behind / from_restart_s,
            "api_ready_s": answered - restarted,
            "stalls": nudges,
            "stalled_s": stalled_s,
            "height_when_api_ready": first_height,
            "catch_up_after_api_s": from_api_s,
            "catch_up_after_api_blocks_per_s": api_blocks / from_api_s,
            "catch_up_after_api_tx_per_s": api_txs / from_api_s,
            "tx_per_s": txs_behind / from_restart_s,
            "p50_ms": float("nan"),
            "p95_ms": float("nan"),
            "p99_ms": float("nan"),
            **audit,
            "nodes": {},
            "node_names": names,
        }

    def _audit(self, url: str, target: int) -> dict[str, Any]:
        genesis_path = self.network.root / "net" / "genesis.json"
        command = [sys.executable, "-m", "cli", "audit", "verify", "--genesis", str(genesis_path)]
        command += ["--node", url, "--quiet", "--json"]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, timeout=AUDIT_TIMEOUT_S, check=False)
        wall_s = time.monotonic() - started
        try:
            verdict = json.loads(done.stdout)
        except ValueError:
            verdict = {"error": done.stderr.decode(errors="replace")[-500:]}
        heights = verdict.get("height") or verdict.get("verified_height") or target
        txs = (
            sum(b.tx_count for b in self.listener.blocks if b.height <= int(heights)) if self.listener else 0
        )
        return {
            "audit_exit_code": done.returncode,
            "audit_wall_s": wall_s,
            "audit_blocks": int(heights),
            "audit_txs": txs,
            "audit_blocks_per_s": int(heights) / wall_s,
            "audit_tx_per_s": txs / wall_s,
            "audit_verdict": verdict,
        }


async def _height(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/v1/status", timeout=aiohttp.ClientTimeout(total=2)) as response:
        return int((await response.json())["height"])


async def _post(session: aiohttp.ClientSession, url: str, raw: bytes) -> None:
    headers = {"Content-Type": "application/msgpack"}
    async with session.post(url + "/v1/txs", data=raw, headers=headers) as response:
        await response.read()


async def _settled_height(session: aiohttp.ClientSession, urls: list[str]) -> int:
    """The live validators' height once it stops moving (the idle chain's trailing empty blocks included)."""
    last = -1
    while True:
        heights = [await _height(session, url) for url in urls]
        if len(set(heights)) == 1 and heights[0] == last:
            return last
        last = max(heights)
        await asyncio.sleep(1.0)
