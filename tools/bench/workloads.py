"""The transactions of each benchmark workload, signed before any clock starts.

A workload is a list of phases; a phase's transactions may commit in any order, and the next phase starts
only when every transaction of the previous one has committed (a barrier), exactly as a real client waits
for allocations before trading. Enterprises are registered on chain by the regulator (so the benchmark
exercises enrolment too); every organisation signs with its insecure devnet admin key (core.devkeys).

- transfers: register N enterprises, open a period, allocate each a large amount (untimed setup); the timed
  load is `transfer_allowances` of 1 t between pseudo-random pairs.
- orders: half the enterprises hold allowances and sell, the other half hold cash and buy; sell limits sit
  just below and buy limits just above the reference price, so most placements match a resting order.
- compliance-year: a whole national compliance year (see `ComplianceYear`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from core.devkeys import dev_admin_key
from core.keys import SigningKey
from core.tx import SignedTx, TxBody, sign_transaction

REGULATOR = "mee"
BANK = "bank"
VERIFIERS = ("verifier-a", "verifier-b")
DEVELOPER = "dev-a"
PERIOD = "2025"
PROJECT = "bench-wind-1"
EVIDENCE_HASH = "ab" * 32
FAR_DEADLINE_MS = 10 * 86_400_000  # setup periods of the throughput workloads: ten days from now
REFERENCE_PRICE_FEN = 5_000  # the chaincode's default reference price (chaincode/params.py)
OFFSET_BLOCK_T = 10  # offsets each offset-holding enterprise receives and surrenders
# each enterprise's opening allowances: the four-eyes allocation threshold, so one regulator key allocates them
OPENING_BALANCE_T = 10**7
OFFSET_HOLDER_EVERY = 4  # every 4th enterprise holds offsets
ORDERS_PER_TRADER = 2


def enterprise_id(index: int) -> str:
    return f"bench-ent-{index:05d}"


@dataclass
class Phase:
    name: str
    txs: list[SignedTx] = field(default_factory=list)


class TxFactory:
    """Builds and signs transactions for any organisation with its devnet admin key."""

    def __init__(self, chain_id: str, height: int, validity_blocks: int) -> None:
        self.chain_id = chain_id
        self.valid_until = height + validity_blocks
        self._keys: dict[str, SigningKey] = {}
        self._nonces = itertools.count(1)

    def key(self, org: str) -> SigningKey:
        if org not in self._keys:
            self._keys[org] = dev_admin_key(org)
        return self._keys[org]

    def build(self, sender: str, function: str, /, **args: Any) -> SignedTx:
        key = self.key(sender)
        body = TxBody(
            chain_id=self.chain_id,
            chaincode="carbon",
            function=function,
            args=args,
            sender_org=sender,
            sender_key=key.public_key,
            nonce=next(self._nonces),
            valid_until=self.valid_until,
        )
        return sign_transaction(body, key)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def registration_phase(factory: TxFactory, enterprises: int) -> Phase:
    phase = Phase("register enterprises")
    for i in range(enterprises):
        org = enterprise_id(i)
        phase.txs.append(
            factory.build(
                REGULATOR,
                "register_organisation",
                org=org,
                name=f"Bench Enterprise {i}",
                role="enterprise",
                admin_keys=[factory.key(org).public_key.hex()],
            )
        )
    return phase


def period_tx(factory: TxFactory, deadline_ms: int, function: str = "open_period") -> SignedTx:
    """The regulator's open_period (or extend_period) of the bench's period, both deadlines at deadline_ms."""
    return factory.build(
        REGULATOR,
        function,
        period=PERIOD,
        reporting_deadline_ms=deadline_ms,
        surrender_deadline_ms=deadline_ms,
    )


# --- throughput workloads -----------------------------------------------------------------------------


def transfers_setup(factory: TxFactory, enterprises: int) -> list[Phase]:
    registration = registration_phase(factory, enterprises)
    registration.txs.append(period_tx(factory, now_ms() + FAR_DEADLINE_MS))
    allocation = Phase(
        "allocate",
        [
            factory.build(REGULATOR, "allocate", period=PERIOD, org=org, amount_t=OPENING_BALANCE_T)
            for org in map(enterprise_id, range(enterprises))
        ],
    )
    return [registration, allocation]


def transfers_load(factory: TxFactory, enterprises: int, count: int) -> list[SignedTx]:
    txs = []
    for k in range(count):
        sender = k % enterprises
        receiver = (sender + 1 + (k // enterprises) % (enterprises - 1)) % enterprises
        txs.append(
            factory.build(
                enterprise_id(sender), "transfer_allowances", to=enterprise_id(receiver), amount_t=1
            )
        )
    return txs


def orders_setup(factory: TxFactory, enterprises: int) -> list[Phase]:
    registration = registration_phase(factory, enterprises)
    registration.txs.append(period_tx(factory, now_ms() + FAR_DEADLINE_MS))
    funding = Phase("allocate and deposit")
    for i in range(enterprises):
        org = enterprise_id(i)
        if i % 2 == 0:
            funding.txs.append(
                factory.build(REGULATOR, "allocate", period=PERIOD, org=org, amount_t=OPENING_BALANCE_T)
            )
        else:
            funding.txs.append(
                factory.build(BANK, "deposit_cash", org=org, amount_fen=10**14, bank_ref=f"bench-{i}")
            )
    return [registration, funding]


def orders_load(factory: TxFactory, enterprises: int, count: int) -> list[SignedTx]:
    sellers = [enterprise_id(i) for i in range(0, enterprises, 2)]
    buyers = [enterprise_id(i) for i in range(1, enterprises, 2)]
    txs = []
    for k in range(count):
        step = k // 2
        if k % 2 == 0:
            org, side, price = sellers[step % len(sellers)], "sell", REFERENCE_PRICE_FEN - 10 - 10 * (k % 5)
        else:
            org, side, price = buyers[step % len(buyers)], "buy", REFERENCE_PRICE_FEN + 10 * (k % 5)
        txs.append(factory.build(org, "place_order", side=side, quantity_t=1 + k % 10, price_fen=price))
    return txs


# --- a national compliance year --------------------------------------------------------------------------


class ComplianceYear:
    """A compliance year for N enterprises, as phases separated by commit barriers.

    1 the regulator registers N enterprises, and the offset developer its project; 2 the regulator opens the
    period (the runner gives it a deadline for the next phase, extends it before each phase that needs
    more, and waits for it before settlement);
    3 allocation, the bank's cash deposits and one offset issuance; 4-15 twelve monthly cumulative emission
    reports per enterprise (a resubmission each month); 16 verification by two accredited verifiers and the
    developer's offset sales to every 4th enterprise; 17 trading: enterprises with a surplus offer half of it
    in two sell orders, those short bid for their gap in two buy orders (crossing prices, trades happen);
    18 surrender of allowances (and of offsets within the 5% cap); 19 after the deadline, settlement of each.
    """

    def __init__(self, factory: TxFactory, enterprises: int) -> None:
        self.factory = factory
        self.enterprises = enterprises
        self.orgs = [enterprise_id(i) for i in range(enterprises)]
        # deterministic spread: allocations 50,000..149,000 t, emissions 90%..110% of them
        self.allocated_t = [50_000 + (i % 100) * 1_000 for i in range(enterprises)]
        self.emitted_t = [a * (9_000 + (i * 37) % 2_001) // 10_000 for i, a in enumerate(self.allocated_t)]
        self.offset_holders = list(range(0, enterprises, OFFSET_HOLDER_EVERY))

    def first_phase(self) -> Phase:
        phase = registration_phase(self.factory, self.enterprises)
        phase.txs.append(
            self.factory.build(
                DEVELOPER,
                "register_project",
                project=PROJECT,
                developer=DEVELOPER,
                name="Bench wind farm",
                methodology="CM-001-V02",
                standard="CCER",
            )
        )
        return phase

    def open_phase(self, deadline_ms: int) -> Phase:
        return Phase("open period", [period_tx(self.factory, deadline_ms)])

    def extend_phase(self, deadline_ms: int) -> Phase:
        return Phase("extend the deadlines", [period_tx(self.factory, deadline_ms, "extend_period")])

    def middle_phases(self) -> list[Phase]:
        """Phases 3-18: everything between opening the period and its deadline."""
        f = self.factory
        phases = [Phase("allocate, deposit, issue offsets")]
        for i, org in enumerate(self.orgs):
            phases[0].txs.append(
                f.build(REGULATOR, "allocate", period=PERIOD, org=org, amount_t=self.allocated_t[i])
            )
            phases[0].txs.append(
                f.build(BANK, "deposit_cash", org=org, amount_fen=10**10, bank_ref=f"year-{i}")
            )
        phases[0].txs.append(
            f.build(
                REGULATOR,
                "issue_offsets",
                project=PROJECT,
                vintage=2024,
                monitoring_start_ms=0,
                monitoring_end_ms=86_400_000,
                amount_t=max(1, len(self.offset_holders)) * OFFSET_BLOCK_T,
            )
        )
        for month in range(1, 13):
            phases.append(
                Phase(
                    f"monthly reports {month:2d}/12",
                    [
                        f.build(
                            org,
                            "submit_report",
                            period=PERIOD,
                            emissions_kg=self.emitted_t[i] * 1000 * month // 12,
                            evidence_hash=EVIDENCE_HASH,
                        )
                        for i, org in enumerate(self.orgs)
                    ],
                )
            )
        verification = Phase("verify, sell offsets")
        for i, org in enumerate(self.orgs):
            verification.txs.append(
                f.build(
                    VERIFIERS[i % len(VERIFIERS)],
                    "verify_report",
                    period=PERIOD,
                    org=org,
                    verified_t=self.emitted_t[i],
                    opinion="satisfactory",
                    evidence_hash=EVIDENCE_HASH,
                )
            )
        for h, i in enumerate(self.offset_holders):
            first = 1 + h * OFFSET_BLOCK_T
            verification.txs.append(
                f.build(
                    DEVELOPER,
                    "transfer_offsets",
                    first=first,
                    last=first + OFFSET_BLOCK_T - 1,
                    to=self.orgs[i],
                )
            )
        phases.append(verification)
        trading = Phase("trading")
        for i, org in enumerate(self.orgs):
            gap = self.emitted_t[i] - self.allocated_t[i]
            quantity = (-gap // 2 if gap < 0 else gap) // ORDERS_PER_TRADER
            if quantity <= 0:
                continue
            side, price = ("sell", REFERENCE_PRICE_FEN - 50) if gap < 0 else ("buy", REFERENCE_PRICE_FEN + 50)
            for _ in range(ORDERS_PER_TRADER):
                trading.txs.append(
                    f.build(org, "place_order", side=side, quantity_t=quantity, price_fen=price)
                )
        phases.append(trading)
        surrender = Phase("surrender")
        for i, org in enumerate(self.orgs):
            amount = min(self.emitted_t[i], self.allocated_t[i])
            surrender.txs.append(f.build(org, "surrender_allowances", period=PERIOD, amount_t=amount))
        for h, i in enumerate(self.offset_holders):
            first = 1 + h * OFFSET_BLOCK_T
            surrender.txs.append(
                f.build(
                    self.orgs[i],
                    "surrender_offsets",
                    period=PERIOD,
                    first=first,
                    last=first + OFFSET_BLOCK_T - 1,
                )
            )
        phases.append(surrender)
        return phases

    def settlement_phase(self) -> Phase:
        return Phase(
            "settlement",
            [self.factory.build(REGULATOR, "settle_period", period=PERIOD, org=org) for org in self.orgs],
        )
