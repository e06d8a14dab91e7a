"""A fingerprint of the seeded simulation, to show that a restructuring of the replica changed no behaviour.

For each seed it hashes, in order, every output list the replica returns (every `start` and `step` call of
every node, Tick steps included) and the final state of every node (blocks, roots, view, reports). Two
versions of the code that print the same digests for the same seeds behave identically on them.

    .venv/bin/python tests/consensus/fingerprint.py --seeds 1000 > after.txt   # one line per seed
    diff before.txt after.txt

`--no-reasons` leaves the text of ReportMisbehaviour and Halt out of the hash (for changes that only
reword diagnostics); output types that are informational only can be left out with `--skip TYPE`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from pbft_random import run_seed
from pbft_sim import Simulation

from consensus.events import Halt, ReportMisbehaviour
from consensus.replica import Replica


class Recorder:
    def __init__(self, *, reasons: bool, skip: set[str]) -> None:
        self.reasons = reasons
        self.skip = skip
        self.digest = hashlib.sha256()

    def record(self, index: int, outputs: list[Any]) -> None:
        parts = []
        for output in outputs:
            name = type(output).__name__
            if name in self.skip:
                continue
            if not self.reasons and isinstance(output, ReportMisbehaviour):
                parts.append(f"Report({output.peer},{output.evidence!r})")
            elif not self.reasons and isinstance(output, Halt):
                parts.append("Halt")
            else:
                parts.append(repr(output))
        self.digest.update(f"{index}:{'|'.join(parts)}\n".encode())


def fingerprint_seed(seed: int, recorder: Recorder) -> str:
    original_step, original_start = Replica.step, Replica.start

    def step(self: Replica, event: Any) -> Any:
        outputs = original_step(self, event)
        recorder.record(self_index(self), list(outputs))
        return outputs

    def start(self: Replica, now_ms: int) -> Any:
        outputs = original_start(self, now_ms)
        recorder.record(self_index(self), list(outputs))
        return outputs

    simulations: list[Simulation] = []
    original_init = Simulation.__init__

    def init(self: Simulation, *args: Any, **kwargs: Any) -> None:
        simulations.append(self)
        original_init(self, *args, **kwargs)

    Replica.step, Replica.start = step, start  # type: ignore[method-assign]
    Simulation.__init__ = init  # type: ignore[method-assign]
    try:
        result = run_seed(seed)
    finally:
        Replica.step, Replica.start = original_step, original_start  # type: ignore[method-assign]
        Simulation.__init__ = original_init  # type: ignore[method-assign]
    sim = simulations[0]
    final = hashlib.sha256()
    for node in sim.nodes:
        blocks = [node.durable.blocks[h][0].block_hash.hex() for h in sorted(node.durable.blocks)]
        roots = [repr(node.durable.roots[h]) for h in sorted(node.durable.roots)]
        view = None if node.replica is None else node.replica.view
        final.update(repr((node.index, blocks, roots, view, node.halted)).encode())
    violations = ",".join(v.kind for v in result.violations) or "ok"
    return f"{seed} {final.hexdigest()[:16]} {recorder.digest.hexdigest()[:16]} {violations}"


def self_index(replica: Replica) -> int:
    return replica.cfg.index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--no-reasons", action="store_true")
    parser.add_argument("--skip", action="append", default=[])
    args = parser.parse_args()
    for seed in range(args.start, args.start + args.seeds):
        recorder = Recorder(reasons=not args.no_reasons, skip=set(args.skip))
        print(fingerprint_seed(seed, recorder), flush=True)


if __name__ == "__main__":
    main()
