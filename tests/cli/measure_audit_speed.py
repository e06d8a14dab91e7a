"""Measure `carbonchain audit verify` on a real chain of at least 10,000 transactions (a script, not a test).

    .venv/bin/python tests/cli/measure_audit_speed.py [--txs 10000]

Starts a four-validator network (tests/integration/cluster.py) in a temporary directory, commits --txs
transactions (bank deposits into the enterprises' cash accounts, submitted 500 at a time), then runs
`carbonchain audit verify` as a separate process against validator-0 and prints its verdict, the wall time,
blocks/s and tx/s.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from client import CarbonClient
from core.devkeys import dev_admin_key
from tests.integration.cluster import REPO, Cluster
from tools.demo import wait_until_ready

ORGS = ("ent-a", "ent-b", "ent-c")


async def fill(url: str, count: int) -> int:
    async with CarbonClient(url, timeout_s=120) as client:
        await wait_until_ready(client)
        signer = await client.signer(org="bank", key=dev_admin_key("bank"), validity_blocks=900)
        done = 0
        while done < count:
            batch = [
                signer.build(
                    "deposit_cash",
                    {"org": ORGS[i % 3], "amount_fen": 100 + i, "bank_ref": f"M-{i}"},
                )
                for i in range(done, min(count, done + 500))
            ]
            ids = await asyncio.gather(*(client.submit(tx) for tx in batch))
            statuses = await client.wait_for_commits(list(ids), timeout_s=300)
            assert all(s.is_ok for s in statuses.values())
            done += len(batch)
            print(f"committed {done}/{count}", file=sys.stderr, flush=True)
            if done % 5000 == 0:  # keep valid_until ahead of the chain
                signer = await client.signer(org="bank", key=dev_admin_key("bank"), validity_blocks=900)
        return int((await client.status())["height"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--txs", type=int, default=10_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-speed-") as tmp:
        cluster = Cluster(Path(tmp), observers=0, consensus={"block_txs_max": 500})
        try:
            cluster.start()
            url = cluster.api_url("validator-0")
            started = time.monotonic()
            height = asyncio.run(fill(url, options.txs))
            print(
                f"chain: {options.txs} transactions in {height} blocks, built in {time.monotonic() - started:.1f} s"
            )
            genesis = cluster.homes["validator-0"] / "genesis.json"
            command = [
                str(REPO / ".venv/bin/carbonchain"),
                "audit",
                "verify",
                "--node",
                url,
                "--genesis",
                str(genesis),
            ]
            print("$ " + " ".join(command))
            started = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            elapsed = time.monotonic() - started
            print(done.stdout, end="")
            print(
                f"exit status {done.returncode}; wall time {elapsed:.1f} s including process start: "
                f"{height / elapsed:.1f} blocks/s, {options.txs / elapsed:.0f} tx/s"
            )
        finally:
            cluster.close()


if __name__ == "__main__":
    main()
