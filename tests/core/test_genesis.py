"""The genesis document (core.genesis): validation with named fields, consistency rules, the genesis hash."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from core import codec
from core.devkeys import dev_node_key
from core.errors import GenesisError
from core.genesis import (
    POLICY_NAMES,
    Genesis,
    Role,
    compute_genesis_document,
    genesis_to_json,
    load_genesis,
    parse_genesis,
)
from core.hashing import Domain, tagged_hash
from core.keys import SigningKey

REPO_GENESIS = Path(__file__).resolve().parents[2] / "genesis.json"


@pytest.fixture
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(REPO_GENESIS.read_text())
    return copy.deepcopy(loaded)


def _error(document: Any) -> str:
    with pytest.raises(GenesisError) as caught:
        parse_genesis(document)
    return str(caught.value)


def _fresh_key() -> str:
    return SigningKey.generate().public_key.hex()


def _secure(document: dict[str, Any], chain_id: str = "carbon-main") -> dict[str, Any]:
    """The document with every key replaced by a fresh random one, on a non-devnet chain id."""
    document["chain_id"] = chain_id
    for node in document["validators"] + document["observers"]:
        node["node_key"] = _fresh_key()
    for org in document["organisations"]:
        org["admin_keys"] = [_fresh_key()]
    return document


def test_repository_genesis_loads(document: dict[str, Any]) -> None:
    genesis = load_genesis(REPO_GENESIS)
    assert genesis.chain_id == "carbon-devnet"
    assert len(genesis.validators) == 4 and genesis.max_faulty == 1
    assert genesis.validator_keys == tuple(bytes.fromhex(v["node_key"]) for v in document["validators"])
    assert genesis.validator_keys[0] == dev_node_key("validator", 0).public_key
    assert genesis.organisation("mee") is not None and genesis.organisation("mee").role is Role.REGULATOR  # type: ignore[union-attr]
    assert genesis.organisation("nobody") is None
    assert genesis.genesis_time_ms == 1_767_225_600_000


def test_json_round_trip(document: dict[str, Any], tmp_path: Path) -> None:
    genesis = parse_genesis(document)
    path = tmp_path / "genesis.json"
    path.write_text(genesis_to_json(genesis))
    assert load_genesis(path).genesis_hash == genesis.genesis_hash


def test_genesis_hash_definition(document: dict[str, Any]) -> None:
    genesis = parse_genesis(document)
    dumped = genesis.model_dump(mode="json")
    # governance is hashed with its defaults filled in: the members and all four policies
    policies = {name: genesis.policy(name).model_dump() for name in POLICY_NAMES}
    dumped["governance"] = {"members": ["mee", "bank", "verifier-a", "ent-a"], "policies": policies}
    expected = tagged_hash(Domain.GENESIS, codec.encode(dumped))
    assert genesis.genesis_hash == expected
    # Defaults are part of the hashed document: spelling them out or omitting them gives the same hash.
    without_consensus = {k: v for k, v in document.items() if k != "consensus"}
    defaults = parse_genesis(without_consensus).model_dump(mode="json")["consensus"]
    assert (
        parse_genesis({**document, "consensus": defaults}).genesis_hash
        == parse_genesis(without_consensus).genesis_hash
    )


def test_genesis_hash_is_stable_and_sensitive(document: dict[str, Any]) -> None:
    base = parse_genesis(document).genesis_hash
    assert parse_genesis(copy.deepcopy(document)).genesis_hash == base
    reordered = dict(reversed(list(document.items())))
    assert parse_genesis(reordered).genesis_hash == base
    changes = [
        ("chain_id", lambda d: d.update(chain_id="other-devnet")),
        ("genesis_time", lambda d: d.update(genesis_time="2026-01-01T00:00:01Z")),
        ("consensus", lambda d: d["consensus"].update(view_timeout_ms=2001)),
        ("validator order", lambda d: d["validators"].reverse()),
        ("validator address", lambda d: d["validators"][0].update(api_address="127.0.0.1:9999")),
        ("observer", lambda d: d["observers"].clear()),
        ("org name", lambda d: d["organisations"][0].update(name="MEE")),
        ("org role", lambda d: d["organisations"][1].update(role="enterprise")),
        ("admin key", lambda d: d["organisations"][2]["admin_keys"].append(_fresh_key())),
        ("chaincode", lambda d: d["chaincode"]["carbon"].update(period=2026)),
        ("members", lambda d: d.update(governance={"members": ["mee", "bank"]})),
        ("policy", lambda d: d.update(governance={"policies": {"parameters": {"threshold_num": 1}}})),
    ]
    for name, change in changes:
        changed = copy.deepcopy(document)
        change(changed)
        assert parse_genesis(changed).genesis_hash != base, name


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda d: d["validators"][0].update(node_key="zz"), ["validators.0.node_key", "pattern"]),
        (lambda d: d["validators"][0].update(node_key="AB" * 32), ["validators.0.node_key"]),
        (lambda d: d["consensus"].update(view_timeout_ms=10), ["consensus.view_timeout_ms", "greater than"]),
        (lambda d: d["consensus"].update(view_timeout_ms="2000"), ["consensus.view_timeout_ms", "integer"]),
        (lambda d: d["consensus"].update(view_timeout_ms=True), ["consensus.view_timeout_ms", "integer"]),
        (lambda d: d["consensus"].update(view_timeout_ms=2000.0), ["consensus.view_timeout_ms", "integer"]),
        (lambda d: d["consensus"].update(tx_bytes_max=1.5), ["consensus.tx_bytes_max", "integer"]),
        (
            lambda d: d["organisations"][1].update(role="king"),
            ["organisations.1.role", "unknown role 'king'"],
        ),
        (lambda d: d["organisations"][1].update(role=3), ["organisations.1.role"]),
        (lambda d: d["organisations"][1].update(id="Bank!"), ["organisations.1.id", "pattern"]),
        (lambda d: d["organisations"][1].update(name=""), ["organisations.1.name"]),
        (lambda d: d["organisations"][1].update(admin_keys=[]), ["organisations.1.admin_keys"]),
        (lambda d: d["validators"][1].update(peer_address="nowhere"), ["validators.1.peer_address"]),
        (lambda d: d["validators"][1].pop("api_address"), ["validators.1.api_address", "required"]),
        (lambda d: d.update(chain_id="Carbon"), ["chain_id", "pattern"]),
        (lambda d: d.update(chain_id="carbon-devnet\n"), ["chain_id", "pattern"]),
        (
            lambda d: d["validators"][0].update(node_key=d["validators"][0]["node_key"] + "\n"),
            ["validators.0.node_key"],
        ),
        (lambda d: d.update(genesis_time="2026-02-30T00:00:00Z"), ["genesis_time"]),
        (lambda d: d.update(genesis_time="2026-01-01 00:00:00"), ["genesis_time", "pattern"]),
        (lambda d: d.update(validators=[]), ["validators", "at least 1"]),
        (
            lambda d: d["consensus"].update(tx_bytes_max=8192, block_bytes_max=4096),
            ["tx_bytes_max must not exceed"],
        ),
        (lambda d: d["chaincode"]["carbon"].update(price=1.5), ["chaincode", "float"]),
        (lambda d: d["chaincode"]["carbon"].update(cap=2**64), ["chaincode", "outside"]),
        (lambda d: d["chaincode"].update(carbon=[1]), ["chaincode.carbon"]),
        (
            lambda d: d.update(governance={"policies": {"tax": {}}}),
            ["governance.policies", "unknown policies"],
        ),
        (
            lambda d: d.update(governance={"policies": {"parameters": {"approvers": "everyone"}}}),
            ["governance.policies.parameters.approvers", "unknown electorate"],
        ),
        (
            lambda d: d.update(
                governance={"policies": {"policies": {"threshold_num": 4, "threshold_den": 3}}}
            ),
            ["threshold_num must not exceed threshold_den"],
        ),
        (
            lambda d: d.update(governance={"policies": {"validators": {"threshold_min": 0}}}),
            ["governance.policies.validators.threshold_min"],
        ),
        (lambda d: d.update(governance={"members": []}), ["governance.members"]),
        (
            lambda d: d.update(governance={"members": ["mee", "ghost"]}),
            ["'ghost', which is not an organisation"],
        ),
        (lambda d: d.update(governance={"members": ["mee", "mee"]}), ["governance.members must be distinct"]),
        (
            lambda d: d["organisations"][1]["admin_keys"].append(d["validators"][0]["node_key"]),
            ["validators[0].node_key is also an organisation's admin key"],
        ),
        (lambda d: d["validators"][0].update(peer_address="127.0.0.1:0"), ["port 0"]),
        (lambda d: d["validators"][0].update(peer_address="127.0.0.1:70000"), ["port 70000"]),
    ],
)
def test_errors_name_field_and_reason(document: dict[str, Any], change: Any, fragments: list[str]) -> None:
    change(document)
    message = _error(document)
    for fragment in fragments:
        assert fragment in message, message


def test_several_errors_reported_together(document: dict[str, Any]) -> None:
    document["validators"][0]["node_key"] = "zz"
    document["consensus"]["view_timeout_ms"] = 2000.0
    message = _error(document)
    assert "validators.0.node_key" in message and "consensus.view_timeout_ms" in message


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (lambda d: d, "extra"),
        (lambda d: d["consensus"], "consensus.extra"),
        (lambda d: d["validators"][0], "validators.0.extra"),
        (lambda d: d["observers"][0], "observers.0.extra"),
        (lambda d: d["organisations"][2], "organisations.2.extra"),
    ],
)
def test_extra_fields_rejected(document: dict[str, Any], where: Any, expected: str) -> None:
    where(document)["extra"] = 1
    message = _error(document)
    assert f"{expected}: Extra inputs are not permitted" in message


def test_governance_defaults(document: dict[str, Any]) -> None:
    genesis = parse_genesis(document)
    assert genesis.members == ("mee", "bank", "verifier-a", "ent-a")  # the validators' organisations
    assert (genesis.policy("parameters").threshold_num, genesis.policy("parameters").threshold_den) == (2, 3)
    document["governance"] = {
        "members": ["ent-b"],
        "policies": {"policies": {"threshold_num": 3, "threshold_den": 4}},
    }
    genesis = parse_genesis(document)
    assert genesis.members == ("ent-b",)
    assert genesis.policy("policies").threshold_num == 3 and genesis.policy("membership").threshold_num == 2
    hashed = compute_genesis_document(genesis)["governance"]
    assert hashed["members"] == ["ent-b"] and sorted(hashed["policies"]) == sorted(POLICY_NAMES)


def test_duplicate_org_ids(document: dict[str, Any]) -> None:
    document["organisations"][1]["id"] = "mee"
    assert "organisation ids must be unique" in _error(document)


def test_duplicate_node_keys(document: dict[str, Any]) -> None:
    document["validators"][1]["node_key"] = document["validators"][0]["node_key"]
    assert "node keys must be unique" in _error(document)
    document["validators"][1]["node_key"] = document["observers"][0]["node_key"]
    assert "node keys must be unique" in _error(document)


def test_duplicate_addresses(document: dict[str, Any]) -> None:
    document["validators"][1]["peer_address"] = document["validators"][0]["peer_address"]
    assert "addresses must all be distinct" in _error(document)


def test_peer_address_equal_to_api_address(document: dict[str, Any]) -> None:
    document["validators"][1]["api_address"] = document["validators"][0]["peer_address"]
    assert "addresses must all be distinct" in _error(document)


def test_no_regulator(document: dict[str, Any]) -> None:
    document["organisations"][0]["role"] = "auditor"
    assert "at least one organisation must have role 'regulator'" in _error(document)


def test_unknown_org(document: dict[str, Any]) -> None:
    document["validators"][2]["org"] = "nobody"
    assert "validators[2].org 'nobody' is not an organisation" in _error(document)
    document["validators"][2]["org"] = "mee"
    document["observers"][0]["org"] = "ghost"
    assert "observers[0].org 'ghost' is not an organisation" in _error(document)


def test_dev_keys_only_on_devnet(document: dict[str, Any]) -> None:
    assert parse_genesis({**document, "chain_id": "x-devnet"}).chain_id == "x-devnet"
    for chain_id in ("carbon-main", "devnetx", "carbon-devnets"):
        assert "insecure development key" in _error({**document, "chain_id": chain_id}), chain_id
    secure = _secure(copy.deepcopy(document))
    assert parse_genesis(secure).chain_id == "carbon-main"
    # One dev key anywhere is enough to refuse: a node key, an observer key, an admin key.
    for place in (
        lambda d: d["validators"][3].update(node_key=dev_node_key("validator", 3).public_key.hex()),
        lambda d: d["observers"][0].update(node_key=dev_node_key("observer", 40).public_key.hex()),
        lambda d: d["organisations"][4]["admin_keys"].append(document["organisations"][4]["admin_keys"][0]),
    ):
        attempt = copy.deepcopy(secure)
        place(attempt)
        assert "insecure development key" in _error(attempt)


def test_not_a_document() -> None:
    assert "(document)" in _error([1, 2])


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="not found"):
        load_genesis(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(GenesisError, match="not valid JSON"):
        load_genesis(broken)


def test_model_is_frozen(document: dict[str, Any]) -> None:
    genesis: Genesis = parse_genesis(document)
    with pytest.raises(ValueError):
        genesis.chain_id = "x"  # type: ignore[misc]


def test_hashed_document_names_every_field_of_the_model(document: dict[str, Any]) -> None:
    """docs/protocol/core.md section 8 lists the hashed fields one by one: a new genesis field must be added there too."""
    genesis = parse_genesis(document)
    dumped = genesis.model_dump(mode="json")
    assert dumped["governance"]["members"] is None  # omitted: filled in for the hash, as the table says
    dumped["governance"] = {
        "members": list(genesis.members),
        "policies": {name: genesis.policy(name).model_dump() for name in POLICY_NAMES},
    }
    assert compute_genesis_document(genesis) == dumped
    assert json.loads(genesis_to_json(genesis)) == compute_genesis_document(genesis)


def test_repeated_json_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text('{"chain_id": "a-devnet", "chain_id": "b-devnet"}')
    with pytest.raises(GenesisError, match="repeats the field chain_id"):
        load_genesis(path)


def test_admin_keys_are_distinct(document: dict[str, Any]) -> None:
    document["organisations"][0]["admin_keys"] *= 2
    with pytest.raises(GenesisError, match="admin keys of an organisation must be distinct"):
        parse_genesis(document)
