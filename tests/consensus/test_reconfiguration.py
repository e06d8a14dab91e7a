"""Validator-set changes, scripted on the simulation of the real replica (docs/RELIABILITY.md).

Governance is simulated by `Simulation.request_change`: a transaction that, once executed, approves a new
set; the set takes over after the activation height (core/validators.py). Each scenario checks the four
invariants (`check_safety`, which includes "every block is certified by the set in force at its height")
and that the new set really carries the chain: after the change, one more crash leaves exactly a quorum
of the new set, so commits continue only if the changed member votes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pbft_sim import CHAIN_ID, GENESIS_TIME_MS, Simulation, make_tx
from test_scenarios import finish

from consensus.messages import Prepare, compute_signing_digest, encode_message
from core.devkeys import dev_node_key
from core.hashing import Domain, tagged_hash
from core.validators import ValidatorSet, compute_activation_height


def submit_stream(sim: Simulation, first: int, count: int, start_ms: int, every_ms: int) -> None:
    """Like test_scenarios.submit_stream, with transactions valid for the next heights whenever sent."""

    def send(number: int) -> None:
        tip = max(node.durable.height for node in sim.nodes)
        sim.submit(make_tx(number, valid_until=tip + sim.params.tx_validity_blocks_max // 2))

    for k in range(count):
        sim.at(start_ms + k * every_ms, lambda number=first + k: send(number))
    sim.expected_until_ms = max(getattr(sim, "expected_until_ms", 0), start_ms + count * every_ms)


def in_force_everywhere(sim: Simulation, target: ValidatorSet) -> Callable[[], bool]:
    """True once every running honest node has committed a block certified by `target`."""

    def check() -> bool:
        for node in sim.honest_nodes():
            if not node.up:
                continue
            membership = node.durable.membership(sim.genesis_set, sim.params)
            height = node.durable.height
            if not (membership.is_known(height) and membership.at(height) == target):
                return False
        return True

    return check


def wait_in_force(sim: Simulation, target: ValidatorSet, until_ms: int) -> None:
    assert sim.run_until(until_ms, stop=in_force_everywhere(sim, target)), "the new set never took over"
    assert sim.check_safety() == []


def elapsed(sim: Simulation) -> int:
    return sim.now - GENESIS_TIME_MS


def approved_at(sim: Simulation, target: ValidatorSet) -> int:
    return next(h for node in sim.honest_nodes() for h, s in node.durable.changes if s == target)


def signers_of(sim: Simulation, height: int) -> set[int]:
    """The validators whose COMMITs certify `height` (as the furthest node stored it)."""
    furthest = max(sim.nodes, key=lambda node: node.durable.height)
    _, cert = furthest.durable.blocks[height]
    return {number for number, _ in cert.votes}


def keep_committing(sim: Simulation, first: int, *, without: list[int], budget_ms: int = 15_000) -> None:
    """Submit a few more transactions and commit them with only the listed nodes down."""
    now = elapsed(sim)
    submit_stream(sim, first, 5, now + 10, 40)
    finish(sim, now + budget_ms, nodes=[n.index for n in sim.honest_nodes() if n.index not in without])


def test_a_validator_added_under_load_takes_part_in_the_quorum() -> None:
    sim = Simulation(41, 4, spare=1)
    submit_stream(sim, 1000, 60, 0, 30)  # load before, during and after the change
    grown = [*sim.current_members(), (4, sim.nodes[4].key.public_key)]
    targets: list[ValidatorSet] = []
    sim.at(300, lambda: targets.append(sim.request_change(grown)))
    finish(sim, 20_000)
    wait_in_force(sim, targets[0], 30_000)
    # five validators tolerate one fault: with validator 1 down, 0, 2, 3 and the newcomer are the quorum
    sim.crash(1)
    keep_committing(sim, 2000, without=[1])
    assert 4 in signers_of(sim, sim.nodes[0].durable.height)


def test_the_primary_is_removed_and_the_rest_carry_on() -> None:
    sim = Simulation(42, 5)
    submit_stream(sim, 1000, 40, 0, 40)
    assert sim.genesis_set.primary(0) == 0
    remaining = [member for member in sim.current_members() if member[0] != 0]
    targets: list[ValidatorSet] = []
    sim.at(200, lambda: targets.append(sim.request_change(remaining)))
    finish(sim, 20_000)
    wait_in_force(sim, targets[0], 30_000)
    last_old = compute_activation_height(
        approved_at(sim, targets[0]),
        checkpoint_interval=sim.params.checkpoint_interval,
        pipeline_depth=sim.params.pipeline_depth,
    )
    tip = sim.nodes[1].durable.height
    assert all(0 not in signers_of(sim, h) for h in range(last_old + 1, tip + 1))
    # the removed validator stays an honest node: it follows the chain without voting
    assert sim.run_until(elapsed(sim) + 5_000, stop=lambda: sim.nodes[0].durable.height >= tip)
    sim.crash(2)  # four validators, one down: 1, 3 and 4 are the quorum
    keep_committing(sim, 2000, without=[0, 2])


def test_the_key_of_a_crashed_validator_is_replaced_and_it_votes_with_the_new_key() -> None:
    sim = Simulation(43, 4)
    submit_stream(sim, 1000, 30, 0, 50)
    sim.at(100, lambda: sim.crash(2))  # its key leaked; the node is taken down
    new_key = dev_node_key("rotated", 2)
    rekeyed = [(number, new_key.public_key if number == 2 else key) for number, key in sim.current_members()]
    targets: list[ValidatorSet] = []
    sim.at(200, lambda: targets.append(sim.request_change(rekeyed)))
    finish(sim, 20_000, nodes=[0, 1, 3])
    wait_in_force(sim, targets[0], 30_000)
    sim.nodes[2].key = new_key
    sim.restart(2)
    sim.crash(3)  # 0, 1 and the rekeyed 2 are the quorum
    keep_committing(sim, 2000, without=[3])
    assert 2 in signers_of(sim, sim.nodes[0].durable.height)
    # whoever holds the leaked key can no longer vote as validator 2
    sim.reports.clear()
    height = sim.nodes[0].durable.height + 1
    view = sim.nodes[0].replica.view  # type: ignore[union-attr]
    forged = Prepare(view, height, tagged_hash(Domain.BLOCK_HEADER, b"x"), 2, b"")
    leaked = dev_node_key("validator", 2)
    forged = replace(forged, signature=leaked.sign(compute_signing_digest(CHAIN_ID, forged)))
    sim.transmit(2, 0, "msg", encode_message(forged))
    sim.run_until(elapsed(sim) + 100)
    assert [(at, r.peer, r.reason) for at, r in sim.reports] == [(0, 2, "prepare signature does not verify")]


def test_a_node_started_from_scratch_after_1000_blocks_catches_up_and_joins() -> None:
    sim = Simulation(44, 4, spare=1)
    sim.crash(4)  # the joining organisation has not set up its node yet: an empty store
    for k in range(1000):  # one transaction per block: blocks commit faster than they arrive
        tx = make_tx(5000 + k, valid_until=1000 + k)  # valid for the next ~1000 heights
        sim.at(k * 12, lambda t=tx: sim.submit(t, targets=[0, 1, 2, 3]))
    sim.expected_until_ms = 12_000
    finish(sim, 60_000, nodes=[0, 1, 2, 3])
    assert sim.nodes[0].durable.height >= 1000
    sim.restart(4)
    target = sim.request_change([*sim.current_members(), (4, sim.nodes[4].key.public_key)])
    submit_stream(sim, 8000, 30, elapsed(sim), 100)  # the new set takes over at the heights after L
    wait_in_force(sim, target, elapsed(sim) + 60_000)
    sim.crash(3)
    keep_committing(sim, 9000, without=[3])
    assert 4 in signers_of(sim, sim.nodes[0].durable.height)


def test_a_view_change_at_the_last_height_of_the_old_set() -> None:
    # The primary of the old set's view and of the new set's view 0 is validator 0; it crashes just
    # before the old set's last height, so that height commits after a view change in the old epoch,
    # and the new epoch starts with a crashed primary and changes view again.
    sim = Simulation(45, 4, spare=1)
    submit_stream(sim, 1000, 80, 0, 40)
    grown = [*sim.current_members(), (4, sim.nodes[4].key.public_key)]
    targets: list[ValidatorSet] = []
    sim.at(200, lambda: targets.append(sim.request_change(grown)))
    crashed_at: list[int] = []

    def crash_before_the_last_height() -> None:
        changes = sim.nodes[1].durable.changes
        if changes and not crashed_at:
            last_old = compute_activation_height(
                changes[0][0],
                checkpoint_interval=sim.params.checkpoint_interval,
                pipeline_depth=sim.params.pipeline_depth,
            )
            if sim.nodes[1].durable.height >= last_old - 1:
                crashed_at.append(sim.nodes[1].durable.height)
                sim.crash(0)
                return
        if not crashed_at:
            sim.schedule(sim.now + 1, "action", crash_before_the_last_height)

    sim.at(210, crash_before_the_last_height)
    finish(sim, 30_000, nodes=[1, 2, 3, 4])
    wait_in_force(sim, targets[0], 40_000)
    assert crashed_at
    epochs = {node.replica.epoch for node in sim.nodes[1:] if node.replica is not None}
    assert epochs == {1}
    assert all(node.replica.view >= 1 for node in sim.nodes[1:] if node.replica is not None)
    sim.restart(0)
    finish(sim, elapsed(sim) + 20_000)


def test_a_removed_validator_that_keeps_voting_is_refused_and_reported() -> None:
    sim = Simulation(46, 5)
    submit_stream(sim, 1000, 30, 0, 40)
    remaining = [member for member in sim.current_members() if member[0] != 4]
    targets: list[ValidatorSet] = []
    sim.at(200, lambda: targets.append(sim.request_change(remaining)))
    finish(sim, 20_000)
    wait_in_force(sim, targets[0], 30_000)
    sim.reports.clear()
    height = sim.nodes[1].durable.height + 1
    view = sim.nodes[1].replica.view  # type: ignore[union-attr]
    digest = tagged_hash(Domain.BLOCK_HEADER, b"whatever")
    sim.nodes[4].byzantine = "votes after removal"  # what it sends from now on is not honest
    vote = sim._sign(sim.nodes[4], Prepare(view, height, digest, 4, b""))
    for target in (0, 1, 2, 3):
        sim.transmit(4, target, "msg", encode_message(vote))
    keep_committing(sim, 2000, without=[])
    reported = {(at, report.peer) for at, report in sim.reports if "not a member" in report.reason}
    assert reported == {(0, 4), (1, 4), (2, 4), (3, 4)}
    assert all(4 not in signers_of(sim, h) for h in range(height, sim.nodes[1].durable.height + 1))
