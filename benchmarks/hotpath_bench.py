"""The validator's per-transaction hot paths, one by one, in CPU time or (under callgrind) instructions.

Cases, each on `transfer_allowances` between pseudo-random pairs of --enterprises funded enterprises (200 by
default, as in `carbonchain bench --workload transfers`: with fewer, a block's transactions share state keys
and the commit's tree update looks cheaper than it is on a live node):
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
        [--enterprises 200]
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

from chaincode_bench import CHAIN_ID, Bench, SortedState
from storagekit import make_block

from chaincode import execute_block
from core.devkeys import dev_admin_key
from core.tx import SignedTx, TxBody, decode_transaction, sign_transaction
from storage.store import Store

BLOCK_TXS = 500
SERVED_BLOCKS, SERVED_BLOCK_TXS = 40, 270
CASES = ("execute", "apply", "decode", "serve")
ENTERPRISES_DEFAULT = 200


def _enterprise_names(count: int) -> tuple[str, ...]:
    return tuple(f"ent{i}" for i in range(count))


def _transfer_pairs(enterprises: int, count: int) -> list[tuple[int, int]]:
    """(sender, receiver) indices in the order tools/bench/workloads.py's transfers workload makes them."""
    return [
        (k % enterprises, (k + 1 + (k // enterprises) % (enterprises - 1)) % enterprises)
        for k in range(count)
    ]


def _transfers(bench: Bench, count: int) -> list[SignedTx]:
    names = bench.enterprises
    return [
        bench.tx(names[sender], "transfer_allowances", {"to": names[receiver], "amount_t": 5})
        for sender, receiver in _transfer_pairs(len(names), count)
    ]


def _funded_bench(enterprises: int) -> Bench:
    """The chaincode benchmark's consortium with that many enterprises: period, allocations and cash."""
    bench = Bench(_enterprise_names(enterprises))
    bench.setup(order_book=False)
    return bench


# Each case prepares the data of REPETITIONS_MAX repetitions whatever it is asked to run, so that under
# callgrind the runs with one and with three repetitions differ by the measured work alone.
REPETITIONS_MAX = 3
Work = Callable[[int], int]  # runs that many repetitions; returns the transactions they handled


def prepare_execute(stack: ExitStack, enterprises: int) -> Work:
    bench = _funded_bench(enterprises)
    base = SortedState(bench.state.items())
    blocks = [bench.block(_transfers(bench, BLOCK_TXS)) for _ in range(REPETITIONS_MAX)]

    def work(repetitions: int) -> int:
        for block in blocks[:repetitions]:
            execution = execute_block(base, block, bench.registry, is_committed=lambda _: False)
            assert all(result.is_ok for result in execution.results), execution.results[:2]
        return BLOCK_TXS * repetitions

    return work


def prepare_apply(stack: ExitStack, enterprises: int) -> Work:
    bench = _funded_bench(enterprises)
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


def prepare_decode(stack: ExitStack, enterprises: int) -> Work:
    names = _enterprise_names(enterprises)
    keys = [dev_admin_key(org) for org in names]
    raws = []
    for n, (sender, receiver) in enumerate(_transfer_pairs(enterprises, BLOCK_TXS)):
        args = {"to": names[receiver], "amount_t": 5}
        body = TxBody(
            CHAIN_ID, "carbon", "transfer_allowances", args, names[sender], keys[sender].public_key, n, 10**6
        )
        raws.append(sign_transaction(body, keys[sender]).raw)

    def work(repetitions: int) -> int:
        for _ in range(repetitions):
            for raw in raws:
                decode_transaction(raw)
        return BLOCK_TXS * repetitions

    return work


def prepare_serve(stack: ExitStack, enterprises: int) -> Work:  # deposits: `enterprises` does not apply
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


PREPARE: dict[str, Callable[[ExitStack, int], Work]] = {
    "execute": prepare_execute,
    "apply": prepare_apply,
    "decode": prepare_decode,
    "serve": prepare_serve,
}


def measure_cpu(case: str, runs: int, enterprises: int) -> float:
    """CPU microseconds per transaction, median of `runs` (each on freshly prepared state)."""
    samples = []
    for _ in range(runs):
        with ExitStack() as stack:
            work = PREPARE[case](stack, enterprises)
            started = time.process_time()
            txs = work(1)
            samples.append((time.process_time() - started) / txs * 1e6)
    return statistics.median(samples)


def count_instructions(case: str, enterprises: int) -> float:
    """Instructions per transaction: callgrind's total with three repetitions minus with one, per tx."""
    totals, txs = [], []
    for repetitions in (1, REPETITIONS_MAX):
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
        command += [__file__, "--child", case, str(repetitions), "--enterprises", str(enterprises)]
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
    parser.add_argument(
        "--enterprises", type=int, default=ENTERPRISES_DEFAULT, help="funded enterprises (>= 2)"
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "REPETITIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.enterprises < 2:
        raise SystemExit("--enterprises must be at least 2 (a transfer needs a receiver)")
    if args.child:
        with ExitStack() as stack:
            print(PREPARE[args.child[0]](stack, args.enterprises)(int(args.child[1])))  # transactions handled
        return
    for case in args.cases.split(","):
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; cases: {', '.join(CASES)}")
        if args.instructions:
            print(
                f"{case:8s} {count_instructions(case, args.enterprises):>10,.0f} instructions/tx", flush=True
            )
        else:
            print(
                f"{case:8s} {measure_cpu(case, args.runs, args.enterprises):>10.1f} CPU us/tx (median of {args.runs})",
                flush=True,
            )


if __name__ == "__main__":
    main()
