"""The executor's platform checks, the overlay, key status, genesis state and loud chaincode bugs."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from chainkit import CHAIN_ID, Chain, make_genesis

from chaincode import (
    FUNCTIONS,
    QUERIES,
    ChaincodeFailure,
    ChaincodeRegistry,
    OverlayState,
    TxContext,
    genesis_writes,
    get_key_status,
)
from chaincode.context import decode_record, encode_record
from chaincode.hosting import CarbonChaincode
from chaincode.layout import KEYS_REMEMBERED_MAX, KeyTemplate
from core import codec
from core.errors import GenesisError, InvariantBroken
from core.keys import SigningKey
from core.state import DictState


def test_genesis_state_has_orgs_admin_keys_and_params() -> None:
    chain = Chain()
    assert chain.query("organisation", org="ver1")["accredited"] is True
    assert chain.query("organisation", org="ent1")["role"] == "enterprise"
    assert chain.query("params")["offset_cap_bps"] == 500
    assert get_key_status(chain.state, "ent1", chain.keys["ent1"].public_key) == "active"
    assert get_key_status(chain.state, "ent1", chain.keys["ent2"].public_key) == "unknown"
    assert get_key_status(chain.state, "nobody", chain.keys["ent2"].public_key) == "unknown"


def test_genesis_params_are_validated() -> None:
    assert Chain({"penalty_rule": "eu", "offset_cap_bps": 1000}).query("params")["penalty_rule"] == "eu"
    with pytest.raises(GenesisError, match="not a carbon parameter"):
        genesis_writes(make_genesis({"bogus": 1}))
    with pytest.raises(GenesisError, match="offset_cap_bps"):
        genesis_writes(make_genesis({"offset_cap_bps": 20_000}))


def test_unknown_sender_revoked_key_and_key_lifecycle() -> None:
    chain = Chain()
    stranger = SigningKey.from_insecure_label("stranger")
    chain.fails("unknown_sender", "ent1", "transfer_allowances", key=stranger, to="ent2", amount_t=1)
    client = chain.client_key("ent1")
    chain.ok("ent1", "enrol_key", public_key=client.public_key.hex())
    assert chain.call("ent1", "cancel_order", key=client, order=1).code == "unknown_order"  # key works
    assert get_key_status(chain.state, "ent1", client.public_key) == "active"
    chain.ok("ent1", "revoke_key", org="ent1", public_key=client.public_key.hex())
    assert get_key_status(chain.state, "ent1", client.public_key) == "revoked"
    chain.fails("revoked_key", "ent1", "cancel_order", key=client, order=1)


def test_expired_replay_and_wrong_chain() -> None:
    chain = Chain()
    tx = chain.make_tx("mee", "set_reference_price", {"price_fen": 5000}, valid_for=0)
    chain.run_block([])
    assert chain.run_block([tx])[0].code == "expired"
    tx = chain.make_tx("mee", "set_reference_price", {"price_fen": 5000})
    first, second = chain.run_block([tx, tx])
    assert (first.code, second.code) == ("ok", "replay")
    assert chain.run_block([tx])[0].code == "replay"  # already committed
    from dataclasses import replace

    from core.tx import sign_transaction

    other = sign_transaction(replace(tx.body, chain_id="other-chain"), chain.keys["mee"])
    assert chain.run_block([other])[0].code == "wrong_chain"


def test_unknown_function_and_invalid_args() -> None:
    chain = Chain()
    assert chain.call("mee", "no_such_function").code == "unknown_function"
    from dataclasses import replace

    from core.tx import sign_transaction

    tx = chain.make_tx("mee", "set_reference_price", {"price_fen": 1})
    other = sign_transaction(replace(tx.body, chaincode="nochaincode"), chain.keys["mee"])
    assert chain.run_block([other])[0].code == "unknown_function"
    result = chain.call("mee", "set_reference_price", price_fen=0)
    assert result.code == "invalid_args" and "price_fen" in result.message
    assert chain.call("mee", "set_reference_price", price_fen="5").code == "invalid_args"
    assert chain.call("mee", "set_reference_price", price_fen=True).code == "invalid_args"
    assert chain.call("mee", "set_reference_price", price_fen=5, extra=1).code == "invalid_args"
    assert chain.call("mee", "set_reference_price").code == "invalid_args"


def test_failed_transaction_writes_nothing_but_later_ones_see_earlier_ones() -> None:
    chain = Chain()
    chain.open_period()
    txs = [
        chain.make_tx("mee", "allocate", {"period": "2025", "org": "ent1", "amount_t": 100}),
        chain.make_tx("ent1", "transfer_allowances", {"to": "ent2", "amount_t": 500}),  # insufficient
        chain.make_tx("ent1", "transfer_allowances", {"to": "ent2", "amount_t": 60}),
    ]
    results = chain.run_block(txs)
    assert [r.code for r in results] == ["ok", "insufficient_balance", "ok"]
    assert results[1].events == ()
    assert (chain.allowances("ent1"), chain.allowances("ent2")) == (40, 60)


def test_block_execution_reports_per_tx_writes() -> None:
    chain = Chain()
    from chaincode import execute_block
    from core.block import EMPTY_ROOT, Block, BlockHeader

    txs = (
        chain.make_tx("mee", "set_reference_price", {"price_fen": 6000}),
        chain.make_tx("ent1", "transfer_allowances", {"to": "ent2", "amount_t": 1}),
    )
    header = BlockHeader(
        CHAIN_ID,
        1,
        bytes(32),
        chain.time_ms + 1,
        0,
        2,
        EMPTY_ROOT,
        0,
        EMPTY_ROOT,
        EMPTY_ROOT,
        EMPTY_ROOT,
        EMPTY_ROOT,
    )
    execution = execute_block(chain.state, Block(header, txs), chain.registry, is_committed=lambda _: False)
    assert execution.tx_writes[1] == {}
    assert set(execution.tx_writes[0]) == {b"market/allowance"}
    assert execution.writes == execution.tx_writes[0]


class _CountingState(DictState):
    def __init__(self, state: DictState) -> None:
        super().__init__(state.items())
        self.reads: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        self.reads.append(key)
        return super().get(key)


def test_a_block_reads_each_committed_key_once() -> None:
    # transactions of a block read the same records (sender's key and organisation, the parameters, the
    # thresholds): the committed state is read once per key (a LevelDB read in a node), and what one
    # transaction writes is still what the next one reads
    chain = Chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=100)
    counting = _CountingState(chain.state)
    chain.state = counting
    results = chain.run_block(
        [chain.make_tx("ent1", "transfer_allowances", {"to": "ent2", "amount_t": 10}) for _ in range(5)]
    )
    assert [r.code for r in results] == ["ok"] * 5
    assert len(counting.reads) == len(set(counting.reads))
    assert (chain.allowances("ent1"), chain.allowances("ent2")) == (50, 50)


class _Buggy(CarbonChaincode):
    name = "buggy"

    def apply(self, ctx: TxContext, function: str, args: dict[str, Any]) -> None:
        raise KeyError("oops")

    def genesis_writes(self, genesis: Any) -> Mapping[bytes, bytes | None]:
        return {}


def test_chaincode_bug_is_loud() -> None:
    chain = Chain()
    chain.registry = ChaincodeRegistry([CarbonChaincode(), _Buggy()])
    from dataclasses import replace

    from core.tx import sign_transaction

    tx = chain.make_tx("mee", "set_reference_price", {"price_fen": 5000})
    buggy = sign_transaction(replace(tx.body, chaincode="buggy"), chain.keys["mee"])
    with pytest.raises(InvariantBroken, match="KeyError"):
        chain.run_block([buggy])


def test_chaincode_failure_is_not_a_carbonchain_error() -> None:
    failure = ChaincodeFailure("x", "y")
    assert (failure.code, failure.message) == ("x", "y")


def test_overlay_iteration_merges_in_key_order() -> None:
    base = DictState({b"a/1": b"1", b"a/3": b"3", b"a/5": b"5", b"b/1": b"x"})
    block = OverlayState(base)
    block.put(b"a/2", b"2")
    block.put(b"a/3", None)
    tx = OverlayState(block)
    tx.put(b"a/4", b"4")
    tx.put(b"a/5", b"five")
    tx.put(b"a/0", None)
    assert list(tx.iterate(b"a/")) == [(b"a/1", b"1"), (b"a/2", b"2"), (b"a/4", b"4"), (b"a/5", b"five")]
    assert list(tx.iterate(b"a/", start_after=b"a/2")) == [(b"a/4", b"4"), (b"a/5", b"five")]
    assert list(tx.iterate(b"b/")) == [(b"b/1", b"x")]
    assert tx.get(b"a/3") is None and tx.get(b"a/1") == b"1"


def _expected_entries(
    layers: list[dict[bytes, bytes | None]], prefix: bytes, start_after: bytes | None
) -> list[tuple[bytes, bytes]]:
    merged: dict[bytes, bytes | None] = {}
    for layer in layers:  # the committed state first, then each overlay's writes
        merged.update(layer)
    return sorted(
        (key, value)
        for key, value in merged.items()
        if value is not None and key.startswith(prefix) and (start_after is None or key > start_after)
    )


@pytest.mark.parametrize("seed", range(30))
def test_overlay_iteration_matches_a_merged_dict_under_deletes_and_seeks(seed: int) -> None:
    """A block overlay (its parent fixed, so it remembers covered prefixes) under a transaction overlay,
    with the writes, deletes and seeks of matching: every iteration equals the merged state's entries."""
    rng = random.Random(seed)
    keys = [f"{p}/{n:03d}".encode() for p in ("book", "boo", "bp") for n in range(40)]
    committed = {key: b"c" + key for key in rng.sample(keys, 60)}
    block = OverlayState(DictState(committed), parent_fixed=True)
    for _ in range(8):  # transactions, each merged into the block when done
        tx = OverlayState(block)
        for _ in range(25):
            roll = rng.random()
            if roll < 0.5:
                tx.put(rng.choice(keys), None if rng.random() < 0.6 else rng.choice([b"x", b"y"]))
            else:
                prefix = rng.choice([b"book/", b"boo", b"b", b"bp/", b"book/01"])
                start_after = rng.choice([None, None, rng.choice(keys)])
                expected = _expected_entries([committed, block.writes, tx.writes], prefix, start_after)
                assert list(tx.iterate(prefix, start_after=start_after)) == expected
                first = next(iter(block.iterate(prefix, start_after=start_after)), None)  # a seek
                block_expected = _expected_entries([committed, block.writes], prefix, start_after)
                assert first == (block_expected[0] if block_expected else None)
        block.update(tx.writes)


def test_specs_are_enumerable_and_json() -> None:
    import json

    assert len(FUNCTIONS) >= 25 and len(QUERIES) >= 15
    json.dumps([spec.to_json() for spec in FUNCTIONS.values()])
    json.dumps([spec.to_json() for spec in QUERIES.values()])
    assert all(spec.roles for spec in FUNCTIONS.values())


def test_state_values_are_canonical_maps() -> None:
    chain = Chain()
    for value in chain.state.items().values():
        assert type(codec.decode(value)) is dict


def test_every_decoded_record_is_the_callers_own() -> None:
    # flat records are remembered by their bytes (chaincode.context.decode_record): what one caller
    # changes must not reach the next one, whichever record it is
    flat = encode_record({"available": 5, "locked": 0, "note": None})
    nested = encode_record({"args": {"to": "ent2"}, "votes": [1, 2]})
    for raw in (flat, nested, flat, nested):
        first = decode_record(raw)
        first["available"] = first["votes"] = -1
        if "args" in first:
            first["args"]["to"] = "someone else"
        assert decode_record(raw) == codec.decode(raw)


def test_queries_parse_strings_and_report_missing_objects() -> None:
    from chaincode import InvalidArgs, NotFound, UnknownFunction, run_query

    chain = Chain()
    page = run_query(chain.state, "organisations", {"limit": "2"})
    assert [o["id"] for o in page["items"]] == ["aud", "bank"] and page["next"] == "bank"
    page = run_query(chain.state, "organisations", {"limit": "2", "start_after": page["next"]})
    assert [o["id"] for o in page["items"]] == ["dev1", "ent1"]
    with pytest.raises(NotFound):
        run_query(chain.state, "organisation", {"org": "ghost"})
    with pytest.raises(UnknownFunction):
        run_query(chain.state, "nope", {})
    with pytest.raises(InvalidArgs):
        run_query(chain.state, "trades", {"limit": "-1"})
    with pytest.raises(InvalidArgs):
        run_query(chain.state, "trades", {"bogus": "1"})


def test_genesis_parameters_of_an_unknown_chaincode_are_refused() -> None:
    genesis = make_genesis()
    misspelt = genesis.model_copy(update={"chaincode": {"carbn": {"offset_cap_bps": 100}}})
    with pytest.raises(GenesisError, match="unknown chaincodes"):
        genesis_writes(misspelt)


def test_text_and_id_arguments_follow_the_documented_rules() -> None:
    chain = Chain()
    # ids match the whole pattern: a trailing newline is not part of an id
    assert (
        chain.call(
            "mee", "open_period", period="p1\n", reporting_deadline_ms=2**40, surrender_deadline_ms=2**40
        ).code
        == "invalid_args"
    )
    # free text: any characters but controls, whatever the interpreter's Unicode version says is printable
    assert chain.call("mee", "freeze_account", org="ent1", reason="a\tb").code == "invalid_args"
    assert chain.call("mee", "freeze_account", org="ent1", reason="\x85").code == "invalid_args"
    assert chain.call("mee", "freeze_account", org="ent1", reason="zero\u200bwidth \U000e0001").code == "ok"
    assert chain.call("mee", "unfreeze_account", org="ent1", reason="x" * 200).code == "ok"
    assert chain.call("mee", "unfreeze_account", org="ent1", reason="x" * 201).code == "invalid_args"


def test_events_are_recorded_in_canonical_key_order() -> None:
    """The results root encodes every event; a map already in sorted order is packed as it is."""
    ctx = TxContext(
        OverlayState(DictState({})),
        sender_org="ent1",
        sender_role="enterprise",
        sender_key=b"\x01" * 32,
        sender_is_admin=True,
        height=1,
        block_time_ms=0,
        tx_id=b"\x02" * 32,
    )
    ctx.emit("allowances_transferred", to="ent2", amount_t=5, unit="t")
    (event,) = ctx.events
    assert list(event) == ["amount_t", "to", "type", "unit"]
    assert codec._is_canonical(event, 0)


def test_remembered_keys_are_the_keys_formatted() -> None:
    template = KeyTemplate("x/{name:id}/{n:u20}")
    assert template.format("a", 1) == b"x/a/00000000000000000001"
    assert template.format("a", 1) == b"x/a/00000000000000000001"  # the remembered key
    text_template = KeyTemplate("y/{name:id}")
    assert text_template.format(1) == b"y/1"
    assert text_template.format(True) == b"y/True"  # True == 1 as a dict key, but not as text
    for n in range(KEYS_REMEMBERED_MAX + 10):
        template.format("b", n)
        assert len(template._keys) <= KEYS_REMEMBERED_MAX
