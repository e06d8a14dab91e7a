"""The validator's per-transaction hot paths, one by one, in CPU time or (under callgrind) instructions.

Cases, each on `transfer_allowances` among the 20 funded enterprises of benchmarks/chaincode_bench.py:
- `execute`: execute_block of BLOCK_TXS transfers against an in-memory state (the chaincode alone);
- `apply`: execute_block and Store.commit_block against a real LevelDB store (a validator's apply path,
  without the push to observers);
- `decode`: decode_transaction of signed transfers (every admitted transaction, API or gossip);
- `serve`: a sync answer of 40 stored blocks of 270 transactions (serve_block_range + encode_blocks_answer).

On a shared machine CPU time per transaction drifts with the load by tens of percent. `--instructions`
counts instructions instead (valgrind's callgrind, apt package `valgrind`; about a minute per case): the
script runs itself under callgrind once with one repetition of the measured work and once with three, and
reports the difference per transaction, so start-up and setup cancel out. Run on two trees (checkouts),
that difference is the effect of a change, whatever else runs on the machine.

    .venv/bin/python benchmarks/hotpath_bench.py [--cases execute,apply,decode,serve] [--runs 5] [--instructions]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.node.nodekit` for the serve case
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "storage"))

from chaincode_bench import CHAIN_ID, ENTERPRISES, Bench, SortedState
from storagekit import make_block

from chaincode import execute_block
from core.devkeys import dev_admin_key
from core.tx import SignedTx, TxBody, decode_transaction, sign_transaction
from storage.store import Store

BLOCK_TXS = 500
SERVED_BLOCKS, SERVED_BLOCK_TXS = 40, 270
CASES = ("execute", "apply", "decode", "serve")


def _transfers(bench: Bench, count: int) -> list[SignedTx]:
    return [
        bench.tx(ENTERPRISES[i % 20], "transfer_allowances", {"to": ENTERPRISES[(i + 1) % 20], "amount_t": 5})
        for i in range(count)
    ]


def _funded_bench() -> Bench:
    """The chaincode benchmark's consortium: period, allocations and cash (not its resting order book)."""
    bench = Bench()
    bench.setup(order_book=False)
    return bench


# Each case prepares the data of REPETITIONS_MAX repetitions whatever it is asked to run, so that under
# callgrind the runs with one and with three repetitions differ by the measured work alone.
REPETITIONS_MAX = 3
Work = Callable[[int], int]  # runs that many repetitions; returns the transactions they handled


def prepare_execute(stack: ExitStack) -> Work:
    bench = _funded_bench()
    base = SortedState(bench.state.items())
    blocks = [bench.block(_transfers(bench, BLOCK_TXS)) for _ in range(REPETITIONS_MAX)]

    def work(repetitions: int) -> int:
        for block in blocks[:repetitions]:
            execution = execute_block(base, block, bench.registry, is_committed=lambda _: False)
            assert all(result.is_ok for result in execution.results), execution.results[:2]
        return BLOCK_TXS * repetitions

    return work


def prepare_apply(stack: ExitStack) -> Work:
    bench = _funded_bench()
    directory = stack.enter_context(tempfile.TemporaryDirectory())
    store = stack.enter_context(Store.open(Path(directory)))
    store.initialise_genesis(b"\x11" * 32, dict(bench.state.items()))
    bench.height = 0
    loads = [_transfers(bench, BLOCK_TXS) for _ in range(REPETITIONS_MAX)]

    def is_committed(tx_id: bytes) -> bool:
        return store.get_tx_location(tx_id) is not None

    def work(repetitions: int) -> int:
        for txs in loads[:repetitions]:
            block = make_block(store, txs, chain_id=CHAIN_ID)
            execution = execute_block(store, block, bench.registry, is_committed=is_committed)
            assert all(result.is_ok for result in execution.results), execution.results[:2]
            store.commit_block(block, execution.results, execution.tx_writes, end_writes=execution.end_writes)
        return BLOCK_TXS * repetitions

    return work


def prepare_decode(stack: ExitStack) -> Work:
    keys = [dev_admin_key(org) for org in ENTERPRISES]
    raws = []
    for n in range(BLOCK_TXS):
        key, org = keys[n % 20], ENTERPRISES[n % 20]
        args = {"to": ENTERPRISES[(n + 1) % 20], "amount_t": 5}
        body = TxBody(CHAIN_ID, "carbon", "transfer_allowances", args, org, key.public_key, n, 10**6)
        raws.append(sign_transaction(body, key).raw)

    def work(repetitions: int) -> int:
        for _ in range(repetitions):
            for raw in raws:
                decode_transaction(raw)
        return BLOCK_TXS * repetitions

    return work


def prepare_serve(stack: ExitStack) -> Work:
    from node.sync import GetBlocks, encode_blocks_answer, serve_block_range
    from tests.node.nodekit import ReferenceChain

    directory = stack.enter_context(tempfile.TemporaryDirectory())
    chain = ReferenceChain(Path(directory))
    stack.callback(chain.store.close)
    for _ in range(SERVED_BLOCKS):
        chain.extend(tuple(chain.deposit() for _ in range(SERVED_BLOCK_TXS)))

    def work(repetitions: int) -> int:
        for _ in range(repetitions):
            encode_blocks_answer(1, serve_block_range(chain.store, GetBlocks(1, 1, SERVED_BLOCKS)))
        return SERVED_BLOCKS * SERVED_BLOCK_TXS * repetitions

    return work


PREPARE: dict[str, Callable[[ExitStack], Work]] = {
    "execute": prepare_execute,
    "apply": prepare_apply,
    "decode": prepare_decode,
    "serve": prepare_serve,
}


def measure_cpu(case: str, runs: int) -> float:
    """CPU microseconds per transaction, median of `runs` (each on freshly prepared state)."""
    samples = []
    for _ in range(runs):
        with ExitStack() as stack:
            work = PREPARE[case](stack)
            started = time.process_time()
            txs = work(1)
            samples.append((time.process_time() - started) / txs * 1e6)
    return statistics.median(samples)


def count_instructions(case: str) -> float:
    """Instructions per transaction: callgrind's total with three repetitions minus with one, per tx."""
    totals, txs = [], []
    for repetitions in (1, REPETITIONS_MAX):
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
        command += [__file__, "--child", case, str(repetitions)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in both runs
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"the {case} case failed under callgrind:\n{done.stderr[-2000:]}")
        match = re.search(r"Collected : (\d+)", done.stderr)
        if match is None:
            raise SystemExit(f"callgrind gave no instruction count:\n{done.stderr[-2000:]}")
        totals.append(int(match.group(1)))
        txs.append(int(done.stdout.split()[-1]))
    return (totals[1] - totals[0]) / (txs[1] - txs[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "REPETITIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with ExitStack() as stack:
            print(PREPARE[args.child[0]](stack)(int(args.child[1])))  # the transactions handled
        return
    for case in args.cases.split(","):
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; cases: {', '.join(CASES)}")
        if args.instructions:
            print(f"{case:8s} {count_instructions(case):>10,.0f} instructions/tx", flush=True)
        else:
            print(
                f"{case:8s} {measure_cpu(case, args.runs):>10.1f} CPU us/tx (median of {args.runs})",
                flush=True,
            )


if __name__ == "__main__":
    main()
