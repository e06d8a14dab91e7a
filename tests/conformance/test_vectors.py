"""docs/protocol/vectors/ is what the chaincode computes today, covers every function and failure code,
and is a valid certified chain (our own auditor verifies it from the genesis file)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from audit import ChainAuditor
from chaincode.carbon import FUNCTIONS
from conformance.script import UNREACHED
from conformance.vectors import VECTORS_DIR, Height, build_chain, iter_stale, render_files
from core import codec
from core.block import decode_certified_block
from core.devkeys import dev_node_key
from core.genesis import Genesis, load_genesis
from core.validators import ValidatorSet
from storage import Store


@pytest.fixture(scope="module")
def chain() -> tuple[Genesis, list[Height]]:
    return build_chain()


def test_the_files_are_what_the_chaincode_computes(chain: tuple[Genesis, list[Height]]) -> None:
    stale = list(iter_stale(render_files(*chain)))
    assert not stale, f"out of date: {stale[:5]}; run python -m conformance.vectors --write"


def test_every_function_succeeds_and_fails_in_every_declared_way(chain: tuple[Genesis, list[Height]]) -> None:
    _, heights = chain
    seen: Counter[tuple[str, str]] = Counter()
    for height in heights:
        if height.certified is not None:
            for tx, result in zip(height.certified.block.txs, height.certified.results, strict=True):
                seen[(tx.body.function, result.code)] += 1
    for name, spec in FUNCTIONS.items():
        assert seen[(name, "ok")], f"{name} never succeeds"
        for code in spec.failures:
            if (name, code) not in UNREACHED:
                assert seen[(name, code)], f"{name} never fails with {code}"
    codes = {code for _, code in seen}
    assert {"unknown_sender", "revoked_key", "unknown_function", "invalid_args"} <= codes
    assert all(code in FUNCTIONS[name].failures for name, code in UNREACHED)


def test_the_vectors_are_a_chain_our_auditor_verifies(tmp_path: Path) -> None:
    genesis = load_genesis(VECTORS_DIR / "genesis.json")
    summary = json.loads((VECTORS_DIR / "chain.json").read_text())
    assert summary["genesis_hash"] == genesis.genesis_hash.hex()
    with Store.open(tmp_path / "audit") as store:
        auditor = ChainAuditor(genesis, store)
        blocks = sorted((VECTORS_DIR / "blocks").glob("*.msgpack"))
        for path in blocks:
            certified = decode_certified_block(path.read_bytes())
            auditor.verify_block(certified)
            roots = summary["heights"][auditor.height]
            assert (auditor.state_root.hex(), store.get_roots(auditor.height)[1].hex()) == (
                roots["state_root"],
                roots["results_root"],
            )
        assert auditor.totals.certified_height == len(blocks) - genesis.consensus.pipeline_depth


def test_the_fifth_validator_comes_into_force_after_block_13() -> None:
    """Approved at 7, L = 13 (7 + 2 * 2 + 2, a multiple of checkpoint_interval 13): block 13 is the last the
    genesis set certifies and names the new set as the next; block 14 is certified by four of the five."""
    genesis = load_genesis(VECTORS_DIR / "genesis.json")
    blocks = {
        int(path.stem): decode_certified_block(path.read_bytes())
        for path in (VECTORS_DIR / "blocks").glob("*.msgpack")
    }
    old = genesis.validator_set
    new = ValidatorSet((*old.members, (4, dev_node_key("validator", 4).public_key)))
    sets = [
        (b.block.header.validators_hash, b.block.header.next_validators_hash)
        for _, b in sorted(blocks.items())
    ]
    assert (
        sets
        == [(old.set_hash, old.set_hash)] * 12 + [(old.set_hash, new.set_hash)] + [(new.set_hash,) * 2] * 3
    )
    assert [number for number, _ in blocks[14].certificate.votes] == [0, 1, 2, 3]  # a quorum of 5 is 4
    states = {
        height: {
            key: codec.decode(bytes.fromhex(value))
            for key, value in json.loads((VECTORS_DIR / "heights" / f"{height:04d}.json").read_text())[
                "state"
            ].items()
        }
        for height in (12, 13)
    }
    assert states[12]["valset/pending"]["activation_height"] == 13
    assert states[12]["valset/current"]["epoch"] == 0
    after = states[13]
    assert "valset/pending" not in after
    assert (after["valset/current"]["epoch"], after["valset/current"]["first_height"]) == (1, 14)
    assert [v["number"] for v in after["valset/current"]["validators"]] == [0, 1, 2, 3, 4]
    assert after["valset/epoch/00000000000000000001"] == {
        k: v for k, v in after["valset/current"].items() if k != "next_number"
    }
