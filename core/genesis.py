"""The genesis document: a strict pydantic model of genesis.json, and the genesis hash.

The genesis hash is H(genesis, canonical encoding of `compute_genesis_document`: every field, defaults
filled in) and is part of the chain's identity: peers bind their handshake to it and block 1 links to it.
Validation errors name the field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core import codec
from core.devkeys import is_devnet_chain_id, known_dev_public_keys
from core.errors import CodecError, GenesisError
from core.hashing import Domain, hash_value
from core.quorum import compute_max_faulty
from core.tx import CHAIN_ID_PATTERN, ORG_ID_PATTERN
from core.validators import ValidatorSet

MAX_GENESIS_BYTES = 4 * 1024 * 1024
_HEX_KEY = re.compile(r"^[0-9a-f]{64}$")
ADDRESS_PATTERN = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,253}:(\d{1,5})$")  # host:port (port 1..65535)
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class Role(StrEnum):
    """An organisation's one role (docs/DOMAIN.md, "Who takes part")."""

    REGULATOR = "regulator"
    ENTERPRISE = "enterprise"
    VERIFIER = "verifier"
    OFFSET_DEVELOPER = "offset_developer"
    SETTLEMENT_BANK = "settlement_bank"
    AUDITOR = "auditor"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


PublicKeyHex = Annotated[
    str, Field(pattern=_HEX_KEY.pattern, description="32-byte Ed25519 key, lowercase hex")
]
Address = Annotated[str, Field(pattern=ADDRESS_PATTERN.pattern, description="host:port")]


class ConsensusParams(_Strict):
    block_txs_max: int = Field(2000, ge=1, le=100_000)
    block_bytes_max: int = Field(8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    tx_bytes_max: int = Field(64 * 1024, ge=256, le=1024 * 1024)
    batch_wait_ms: int = Field(20, ge=0, le=10_000)
    view_timeout_ms: int = Field(2000, ge=50, le=600_000)
    checkpoint_interval: int = Field(100, ge=1, le=100_000)
    pipeline_depth: int = Field(2, ge=1, le=16)
    tx_validity_blocks_max: int = Field(1000, ge=1, le=1_000_000)
    clock_drift_max_ms: int = Field(5000, ge=0, le=3_600_000)

    @model_validator(mode="after")
    def _tx_fits_block(self) -> ConsensusParams:
        if self.tx_bytes_max > self.block_bytes_max:
            raise ValueError("tx_bytes_max must not exceed block_bytes_max")
        return self


class Validator(_Strict):
    org: str  # organisation running this validator
    node_key: PublicKeyHex  # signs consensus messages and authenticates the peer connection
    peer_address: Address  # where other nodes connect (WebSocket peer layer)
    api_address: Address  # the client HTTP API

    @cached_property
    def node_key_bytes(self) -> bytes:
        return bytes.fromhex(self.node_key)


class Observer(_Strict):
    org: str
    node_key: PublicKeyHex
    api_address: Address

    @cached_property
    def node_key_bytes(self) -> bytes:
        return bytes.fromhex(self.node_key)


class Organisation(_Strict):
    id: str = Field(pattern=ORG_ID_PATTERN.pattern)
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")  # no controls
    role: Role
    admin_keys: list[PublicKeyHex] = Field(min_length=1, max_length=16)

    @field_validator("admin_keys")
    @classmethod
    def _keys_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("admin keys of an organisation must be distinct")
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _role_from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in Role._value2member_map_:
                raise ValueError(f"unknown role {value!r}; one of {', '.join(r.value for r in Role)}")
            return Role(value)
        return value


# Governance (docs/CHAINCODE.md, "Governance"): which decisions need whose approval. A policy names who may
# propose, the electorate whose approval counts (one organisation, one vote) and the threshold: at least
# max(threshold_min, ceil(n * threshold_num / threshold_den)) of the n organisations of the electorate.
POLICY_NAMES = ("membership", "parameters", "validators", "policies")
ELECTORATE_MEMBERS = "members"  # the consortium's member organisations (governance.members)
ELECTORATE_VALIDATORS = "validators"  # the organisations operating a validator
ELECTORATES = (ELECTORATE_MEMBERS, ELECTORATE_VALIDATORS, *(role.value for role in Role))


class Policy(_Strict):
    proposers: str = ELECTORATE_MEMBERS  # an electorate: its organisations' admin keys may propose
    approvers: str = ELECTORATE_MEMBERS  # the electorate whose approvals count
    threshold_num: int = Field(2, ge=0, le=1000)  # the share of the electorate that must approve ...
    threshold_den: int = Field(3, ge=1, le=1000)
    threshold_min: int = Field(1, ge=1, le=10_000)  # ... and at least this many organisations

    @field_validator("proposers", "approvers")
    @classmethod
    def _known_electorate(cls, value: str) -> str:
        if value not in ELECTORATES:
            raise ValueError(f"unknown electorate {value!r}; one of {', '.join(ELECTORATES)}")
        return value

    @model_validator(mode="after")
    def _fraction(self) -> Policy:
        if self.threshold_num > self.threshold_den:
            raise ValueError("threshold_num must not exceed threshold_den")
        return self


class Governance(_Strict):
    # the member organisations; omitted: the organisations operating the genesis validators, in order
    members: list[str] | None = Field(None, min_length=1, max_length=10_000)
    # policy name -> policy; a policy not named takes the defaults (2/3 of the members)
    policies: dict[str, Policy] = Field(default_factory=dict)

    @field_validator("policies")
    @classmethod
    def _known_policies(cls, value: dict[str, Policy]) -> dict[str, Policy]:
        unknown = sorted(set(value) - set(POLICY_NAMES))
        if unknown:
            raise ValueError(f"unknown policies {unknown}; the policies are {', '.join(POLICY_NAMES)}")
        return value


class Genesis(_Strict):
    chain_id: str = Field(pattern=CHAIN_ID_PATTERN.pattern)
    genesis_time: str = Field(pattern=_TIME.pattern, description="UTC, RFC 3339, e.g. 2026-01-01T00:00:00Z")
    consensus: ConsensusParams = ConsensusParams()
    validators: list[Validator] = Field(min_length=1, max_length=64)
    observers: list[Observer] = Field(default_factory=list, max_length=64)
    organisations: list[Organisation] = Field(min_length=1, max_length=10_000)
    chaincode: dict[str, dict[str, Any]] = Field(default_factory=dict)
    governance: Governance = Governance()

    @field_validator("genesis_time")
    @classmethod
    def _time_is_real(cls, value: str) -> str:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        return value

    @field_validator("chaincode")
    @classmethod
    def _chaincode_is_encodable(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # The genesis hash encodes these free-form parameters canonically: no floats, ints in range.
        try:
            codec.encode(value)
        except CodecError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Genesis:
        org_ids = [org.id for org in self.organisations]
        if len(set(org_ids)) != len(org_ids):
            raise ValueError("organisation ids must be unique")
        if not any(org.role is Role.REGULATOR for org in self.organisations):
            raise ValueError("at least one organisation must have role 'regulator'")
        node_keys = [v.node_key for v in self.validators] + [o.node_key for o in self.observers]
        if len(set(node_keys)) != len(node_keys):
            raise ValueError("node keys must be unique across validators and observers")
        addresses = [v.peer_address for v in self.validators] + [v.api_address for v in self.validators]
        addresses += [o.api_address for o in self.observers]
        if len(set(addresses)) != len(addresses):
            raise ValueError("peer and API addresses must all be distinct")
        known = set(org_ids)
        for index, node in enumerate(self.validators):
            if node.org not in known:
                raise ValueError(f"validators[{index}].org {node.org!r} is not an organisation")
        for index, observer in enumerate(self.observers):
            if observer.org not in known:
                raise ValueError(f"observers[{index}].org {observer.org!r} is not an organisation")
        admin_keys = {key for org in self.organisations for key in org.admin_keys}
        for index, node in enumerate(self.validators):
            if node.node_key in admin_keys:
                raise ValueError(
                    f"validators[{index}].node_key is also an organisation's admin key "
                    "(a node key is enrolled for its organisation as a node key: it signs only evidence)"
                )
        members = self.governance.members
        if members is not None:
            if len(set(members)) != len(members):
                raise ValueError("governance.members must be distinct")
            for member in members:
                if member not in known:
                    raise ValueError(f"governance.members names {member!r}, which is not an organisation")
        for port_text in (a.rsplit(":", 1)[1] for a in addresses):
            if not 1 <= int(port_text) <= 65535:
                raise ValueError(f"port {port_text} is outside 1..65535")
        if not is_devnet_chain_id(self.chain_id):
            insecure = known_dev_public_keys(org_ids)
            used = [key for key in node_keys + [k for o in self.organisations for k in o.admin_keys]]
            if any(bytes.fromhex(key) in insecure for key in used):
                raise ValueError(
                    "uses a well-known insecure development key; allowed only on a devnet chain id "
                    "(one with a 'devnet' component, e.g. 'carbon-devnet')"
                )
        return self

    # --- derived values ---------------------------------------------------------------------------------

    @cached_property
    def genesis_hash(self) -> bytes:
        return hash_value(Domain.GENESIS, compute_genesis_document(self))

    @cached_property
    def genesis_time_ms(self) -> int:
        moment = datetime.strptime(self.genesis_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return int(moment.timestamp()) * 1000

    @cached_property
    def validator_keys(self) -> tuple[bytes, ...]:
        return tuple(v.node_key_bytes for v in self.validators)

    @cached_property
    def validator_set(self) -> ValidatorSet:
        """The genesis validator set: numbers 0..n-1 in genesis order (core/validators.py)."""
        return ValidatorSet.of_keys(self.validator_keys)

    @property
    def max_faulty(self) -> int:
        return compute_max_faulty(len(self.validators))

    @cached_property
    def members(self) -> tuple[str, ...]:
        """The consortium's member organisations: governance.members, or the genesis validators' organisations."""
        if self.governance.members is not None:
            return tuple(self.governance.members)
        return tuple(dict.fromkeys(v.org for v in self.validators))

    def policy(self, name: str) -> Policy:
        """A governance policy: genesis's, or the default."""
        return self.governance.policies.get(name, Policy())

    def organisation(self, org_id: str) -> Organisation | None:
        return next((org for org in self.organisations if org.id == org_id), None)


CONSENSUS_FIELDS = (
    "block_txs_max",
    "block_bytes_max",
    "tx_bytes_max",
    "batch_wait_ms",
    "view_timeout_ms",
    "checkpoint_interval",
    "pipeline_depth",
    "tx_validity_blocks_max",
    "clock_drift_max_ms",
)


def compute_genesis_document(genesis: Genesis) -> dict[str, Any]:
    """The map the genesis hash covers, field by field (docs/protocol/core.md section 8).

    Every field is present with defaults filled in; lists keep the file's order; keys are hex strings.
    """
    return {
        "chain_id": genesis.chain_id,
        "genesis_time": genesis.genesis_time,
        "consensus": {name: getattr(genesis.consensus, name) for name in CONSENSUS_FIELDS},
        "validators": [
            {
                "org": v.org,
                "node_key": v.node_key,
                "peer_address": v.peer_address,
                "api_address": v.api_address,
            }
            for v in genesis.validators
        ],
        "observers": [
            {"org": o.org, "node_key": o.node_key, "api_address": o.api_address} for o in genesis.observers
        ],
        "organisations": [
            {"id": org.id, "name": org.name, "role": org.role.value, "admin_keys": list(org.admin_keys)}
            for org in genesis.organisations
        ],
        "chaincode": genesis.chaincode,
        "governance": {
            "members": list(genesis.members),
            "policies": {name: _policy_document(genesis.policy(name)) for name in POLICY_NAMES},
        },
    }


POLICY_FIELDS = ("proposers", "approvers", "threshold_num", "threshold_den", "threshold_min")


def _policy_document(policy: Policy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def parse_genesis(document: Any) -> Genesis:
    """Validate a decoded genesis document; GenesisError names every wrong field and why."""
    try:
        return Genesis.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            location = ".".join(str(part) for part in error["loc"]) or "(document)"
            problems.append(f"{location}: {error['msg']}")
        raise GenesisError("invalid genesis: " + "; ".join(problems)) from None


def load_genesis(path: Path) -> Genesis:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_GENESIS_BYTES:
            raise GenesisError(f"{path}: larger than {MAX_GENESIS_BYTES} bytes")
        document = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_object_without_repeats)
    except FileNotFoundError:
        raise GenesisError(f"{path}: genesis file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GenesisError(f"{path}: not valid JSON ({exc})") from None
    return parse_genesis(document)


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a name given twice is refused (readers disagree on which one counts)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        repeated = sorted({name for name, _ in pairs if sum(1 for n, _ in pairs if n == name) > 1})
        raise GenesisError(f"genesis repeats the field {', '.join(repeated)} within one object")
    return document


def genesis_to_json(genesis: Genesis) -> str:
    """The document as JSON with every default spelled out (the same map the genesis hash covers)."""
    return json.dumps(compute_genesis_document(genesis), indent=2) + "\n"
