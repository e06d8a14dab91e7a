"""Admission of one validator: how much CPU a transaction costs from decoding to the replica's pool.

A real node (validator-1 of a 4-validator devnet written by `init-network --insecure-dev-keys`, real LevelDB,
the consensus shell and replica started, no peers) admits pre-signed `deposit_cash` transactions of the
settlement bank through `Node.admit_transactions`, the path behind `POST /v1/txs` and gossip: signature,
validity window, sender key and replay checks, then the offer to the replica's pool. Validator-1 is not the
primary of view 0, so nothing is proposed or executed meanwhile. HTTP parsing is not included (aiohttp's
own cost per request; batching divides it by the batch size).

For each batch size and number of verification threads (`[node] verify_threads`), the script reports CPU
microseconds per transaction (process CPU time, all threads: it holds on a shared machine) and wall
microseconds per transaction (what a single node could admit per second), as medians of --runs fresh
nodes.

    .venv/bin/python benchmarks/admission_bench.py [--txs 4000] [--runs 5] [--batches 1,100] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from core.devkeys import dev_admin_key
from core.genesis import load_genesis
from core.tx import SignedTx, TxBody, sign_transaction
from node.config import load_config
from node.runtime import Node, load_identity
from tools.netinit import DEVNET_GENESIS_TIME, build_network, write_network

CHAIN_ID = "admission-devnet"


def sign_deposits(count: int, valid_until: int) -> list[SignedTx]:
    key = dev_admin_key("bank")
    txs = []
    for n in range(count):
        args = {"org": "ent-a", "amount_fen": 100, "bank_ref": f"R-{n}"}
        body = TxBody(CHAIN_ID, "carbon", "deposit_cash", args, "bank", key.public_key, n, valid_until)
        txs.append(sign_transaction(body, key))
    return txs


async def admit_all(home: Path, txs: list[SignedTx], batch: int, threads: int) -> tuple[float, float]:
    """(CPU s, wall s) a fresh node spends admitting every transaction, `batch` at a time."""
    config = load_config(home)
    config = config.model_copy(update={"node": config.node.model_copy(update={"verify_threads": threads})})
    genesis = load_genesis(home / config.node.genesis_file)
    node = Node(home, config, genesis, load_identity(home, config, genesis))
    role = node.role
    try:
        role.shell.start()  # type: ignore[attr-defined]  # the replica without waiting for peers
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, len(txs), batch):
            outcomes = node.admit_transactions(txs[start : start + batch], gossip=False)
            assert all(o is None for o in outcomes), [o for o in outcomes if o is not None][:3]
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await role.stop()
        node.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", default="1,100")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    txs = sign_deposits(args.txs, valid_until=900)
    print(f"{args.txs} deposit_cash transactions, medians of {args.runs} fresh nodes")
    print("batch  threads  cpu us/tx  wall us/tx  admitted/s (wall)")
    for batch in (int(b) for b in args.batches.split(",")):
        for threads in (int(t) for t in args.threads.split(",")):
            cpus, walls = [], []
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory(prefix="admission-bench-") as tmp:
                    plan = build_network(
                        validators=4,
                        observers=0,
                        chain_id=CHAIN_ID,
                        genesis_time=DEVNET_GENESIS_TIME,
                        insecure_dev_keys=True,
                        base_port=7900,
                    )
                    homes = write_network(plan, Path(tmp) / "net")
                    home = next(h for h in homes if h.name == "validator-1")
                    cpu, wall = asyncio.run(admit_all(home, txs, batch, threads))
                cpus.append(cpu * 1e6 / len(txs))
                walls.append(wall * 1e6 / len(txs))
            cpu_us, wall_us = statistics.median(cpus), statistics.median(walls)
            print(f"{batch:5d}  {threads:7d}  {cpu_us:9.1f}  {wall_us:10.1f}  {1e6 / wall_us:10.0f}")


if __name__ == "__main__":
    main()
