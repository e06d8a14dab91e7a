"""One randomized simulation run per seed: a random fault mix, then heal, then the four checks.

Fault mix (drawn from the seed): cluster size (n=7 for one seed in five, else 4); at most f Byzantine nodes
(equivocating primary, double-voting replica, garbage / far-future sender, silent primary, lying block
server, a primary that withholds its proposals' transactions); message drops, duplicates and long delays;
partitions; crash/restart and pause of nodes; transactions that reach only some nodes. After
CHAOS_MS everything heals (crashed nodes restart from their durable store) and the run must commit every
submitted transaction on every honest node within LIVENESS_MS of virtual time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pbft_sim import Simulation, Violation, make_tx

from core.devkeys import dev_node_key
from core.keys import SigningKey
from core.quorum import compute_max_faulty

CHAOS_MS = 3000
LIVENESS_MS = 60_000
BEHAVIOURS = ("equivocate", "double_vote", "garbage", "silent", "bad_server", "withhold")
RECONFIGURATIONS = ("grow", "shrink", "remove_primary", "replace_key", "swap")
RECONFIGURATION_SHARE = 0.35  # of the seeds change their validator set


@dataclass
class RunResult:
    seed: int
    n: int
    description: str
    violations: list[Violation]
    heights: list[int]


def run_seed(seed: int) -> RunResult:
    n = 7 if seed % 5 == 0 else 4
    # the reconfiguration plan draws from its own stream, so the rest of a seed's fault mix is the same
    plan_rng = random.Random(seed * 7919 + 1)
    reconfiguration = plan_rng.choice(RECONFIGURATIONS) if plan_rng.random() < RECONFIGURATION_SHARE else None
    spare = {"grow": 3 if n == 4 else 1, "swap": 1, "shrink": 1 if n == 4 else 0}.get(
        reconfiguration or "", 0
    )
    if reconfiguration == "remove_primary" and n == 4:
        spare = 1  # a 4-validator set first grows: it may not shrink below 4
    sim = Simulation(seed, n, spare=spare)
    rng = sim.rng
    f = compute_max_faulty(n)
    notes: list[str] = [f"n={n}"]

    byzantine = rng.sample(range(n), rng.randint(0, f)) if rng.random() < 0.6 else []
    if byzantine and rng.random() < 0.5 and 0 not in byzantine:
        byzantine[0] = 0  # often make the primary of view 0 the faulty one
    if reconfiguration is not None:
        byzantine = byzantine[:1]  # every set it passes through has f >= 1
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
            everyone = list(range(len(sim.nodes)))  # spare nodes too, or a late partition end isolates them
            other = [i for i in everyone if i not in side]
            sim.at(start, lambda a=side, b=other: sim.partition(a, b))
            sim.at(start + rng.randint(100, 1500), lambda e=everyone: sim.partition(e))
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

    if reconfiguration is not None:
        notes.append(
            plan_reconfiguration(
                sim, plan_rng, reconfiguration, n, [i for i in range(n) if i not in byzantine]
            )
        )

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


def plan_reconfiguration(sim: Simulation, rng: random.Random, kind: str, n: int, honest: list[int]) -> str:
    """Governance changes the validator set during the chaos, one change after the other; returns a note."""
    members = {number: key for number, key in sim.genesis_set.members}
    keys = {node.index: node.key.public_key for node in sim.nodes}
    steps: list[dict[int, bytes]] = []
    if kind == "grow":  # 4 -> 7 (or 7 -> 8), one validator at a time
        for number in range(n, len(sim.nodes)):
            members = {**members, number: keys[number]}
            steps.append(members)
    elif kind == "shrink" and n > 4:  # 7 -> 4
        for number in rng.sample(sorted(members), n - 4):
            members = {k: v for k, v in members.items() if k != number}
            steps.append(members)
    elif kind == "remove_primary":  # view 0's primary leaves (a 4-set first takes in a spare)
        if n == 4:
            members = {**members, n: keys[n]}
            steps.append(members)
        members = {k: v for k, v in members.items() if k != 0}
        steps.append(members)
    elif kind == "replace_key":  # a validator's key leaked: it crashes, comes back, and once the new key
        # is in force it is rekeyed (it may not stay down: with a faulty member as well, a 4-set needs it)
        victim = rng.choice(honest)
        new_key = dev_node_key("rotated", victim)
        members = {**members, victim: new_key.public_key}
        steps.append(members)
        down_at = rng.randint(0, CHAOS_MS // 2)
        sim.at(down_at, lambda: sim.crash(victim))
        sim.at(down_at + rng.randint(100, CHAOS_MS), lambda: sim.restart(victim))
        sim.at(down_at + 100, lambda: _rekey_when_in_force(sim, victim, new_key))
    else:  # swap (or shrink of a 4-set): a spare comes in, one member leaves
        leaving = rng.choice(sorted(members))
        members = {**members, n: keys[n]}
        steps.append(members)
        members = {k: v for k, v in members.items() if k != leaving}
        steps.append(members)
    start = rng.randint(0, CHAOS_MS // 2)

    def request_all() -> None:
        previous = None
        for step in steps:
            previous = sim.request_change(sorted(step.items()), after=previous)

    sim.at(start, request_all)
    return f"{kind}@{start}:{[sorted(step) for step in steps]}"


def _rekey_when_in_force(sim: Simulation, index: int, key: SigningKey) -> None:
    """Restart the validator with its new key once an honest node has reached the heights it certifies."""
    for node in sim.honest_nodes():
        if node.index == index or node.replica is None:
            continue
        membership = node.durable.membership(sim.genesis_set, sim.params)
        height = node.durable.height + 1
        if membership.is_known(height) and membership.at(height).key_of(index) == key.public_key:
            sim.rotate_key(index, key)
            return
    sim.schedule(sim.now + 300, "action", lambda: _rekey_when_in_force(sim, index, key))
