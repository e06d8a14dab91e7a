"""One randomized simulation run per seed: a random fault mix, then heal, then the four checks.

Fault mix (drawn from the seed): cluster size (n=7 for one seed in five, else 4); at most f Byzantine nodes
(equivocating primary, double-voting replica, garbage / far-future sender, silent primary, lying block
server, a primary that withholds its proposals' transactions); message drops, duplicates and long delays;
partitions; crash/restart and pause of nodes; transactions that reach only some nodes. After
CHAOS_MS everything heals (crashed nodes restart from their durable store) and the run must commit every
submitted transaction on every honest node within LIVENESS_MS of virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbft_sim import Simulation, Violation, make_tx

from core.quorum import compute_max_faulty

CHAOS_MS = 3000
LIVENESS_MS = 60_000
BEHAVIOURS = ("equivocate", "double_vote", "garbage", "silent", "bad_server", "withhold")


@dataclass
class RunResult:
    seed: int
    n: int
    description: str
    violations: list[Violation]
    heights: list[int]


def run_seed(seed: int) -> RunResult:
    n = 7 if seed % 5 == 0 else 4
    sim = Simulation(seed, n)
    rng = sim.rng
    f = compute_max_faulty(n)
    notes: list[str] = [f"n={n}"]

    byzantine = rng.sample(range(n), rng.randint(0, f)) if rng.random() < 0.6 else []
    if byzantine and rng.random() < 0.5 and 0 not in byzantine:
        byzantine[0] = 0  # often make the primary of view 0 the faulty one
    for index in byzantine:
        behaviour = rng.choice(BEHAVIOURS)
        sim.nodes[index].byzantine = behaviour
        notes.append(f"node{index}={behaviour}")
    honest = [i for i in range(n) if i not in byzantine]

    if rng.random() < 0.5:
        sim.drop_rate = rng.choice([0.02, 0.1, 0.3])
        notes.append(f"drop={sim.drop_rate}")
    if rng.random() < 0.3:
        sim.dup_rate = 0.1
        notes.append("dup")
    if rng.random() < 0.3:
        sim.delay_ms = (1, rng.choice([50, 150, 400]))
        notes.append(f"delay<={sim.delay_ms[1]}")

    for _ in range(rng.randint(0, 3)):
        start = rng.randint(0, CHAOS_MS - 500)
        if rng.random() < 0.5:
            side = rng.sample(range(n), rng.randint(1, n // 2))
            other = [i for i in range(n) if i not in side]
            sim.at(start, lambda a=side, b=other: sim.partition(a, b))
            sim.at(start + rng.randint(100, 1500), lambda: sim.partition(list(range(n))))
            notes.append(f"partition{side}@{start}")
        else:
            victim = rng.choice(honest)
            if rng.random() < 0.6:
                sim.at(start, lambda v=victim: sim.crash(v))
                sim.at(start + rng.randint(50, 2000), lambda v=victim: sim.restart(v))
                notes.append(f"crash{victim}@{start}")
            else:
                duration = rng.randint(100, 2500)
                sim.at(start, lambda v=victim, d=duration: sim.pause(v, d))
                notes.append(f"pause{victim}@{start}")

    for index in byzantine:
        if sim.nodes[index].byzantine == "garbage":
            for k in range(30):
                sim.at(k * 100 + rng.randint(0, 99), lambda i=index: sim.garbage_burst(i))

    tx_count = 10 if n == 4 else 8
    for number in range(tx_count):
        # most transactions reach every node (as gossip does); some reach only a few, so the others must
        # fetch them when a proposal names them
        targets = None if rng.random() < 0.7 else rng.sample(range(n), rng.randint(1, n - 1))
        sim.at(rng.randint(0, CHAOS_MS), lambda k=number, t=targets: sim.submit(make_tx(seed * 1000 + k), t))

    sim.at(CHAOS_MS, sim.heal)
    for k in range(1, LIVENESS_MS // 1000):
        sim.at(CHAOS_MS + k * 1000, sim.resubmit_pending)

    sim.run_until(CHAOS_MS)
    live = sim.run_until(CHAOS_MS + LIVENESS_MS, stop=sim.all_committed_everywhere, check_every_ms=100)
    violations = sim.check_safety()
    if not live:
        missing = len(sim.submitted) - min(len(sim.committed_tx_ids(node)) for node in sim.honest_nodes())
        violations.append(
            Violation("liveness", f"{missing} transactions not committed everywhere after heal")
        )
    heights = [node.durable.height for node in sim.nodes]
    return RunResult(seed, n, " ".join(notes), violations, heights)
