"""The carbon chaincode's state at height 0, from the genesis document alone (docs/CHAINCODE.md section 6).

The schema version, every parameter (defaults overridden by genesis `chaincode.carbon`), zero totals, the
market's reference price, an organisation record plus admin key records per genesis organisation, the
validators' node keys, and governance: the members, the four policies, the validator set (numbered in genesis
order, as epoch 0) with the activation rule's parameters, and every node key.
"""

from __future__ import annotations

from chaincode import identity, schema, schema_gov
from chaincode.params import compute_params
from core import codec
from core.genesis import POLICY_FIELDS, POLICY_NAMES, Genesis


def compute_genesis_writes(genesis: Genesis) -> dict[bytes, bytes | None]:
    """Identity records for genesis organisations, parameters, empty totals and the market reference."""
    params = compute_params(genesis.chaincode.get("carbon", {}))
    writes: dict[bytes, bytes | None] = {
        schema.SCHEMA: codec.encode({"version": schema.SCHEMA_VERSION}),
        schema.PARAMS: codec.encode(params),
        schema.SUPPLY_ALLOWANCE: codec.encode({"allocated": 0, "surrendered": 0}),
        schema.SUPPLY_OFFSET: codec.encode(
            {"issued": 0, "surrendered": 0, "retired": 0, "cancelled": 0, "buffer": 0}
        ),
        schema.SUPPLY_CASH: codec.encode({"deposited": 0, "withdrawn": 0}),
        schema.MARKET: codec.encode(
            {"reference_price_fen": params["reference_price_fen"], "last_price_fen": None, "last_day": None}
        ),
    }
    for key, record in identity.compute_identity_genesis(genesis).items():
        writes[key.encode()] = codec.encode(record)
    for member in genesis.members:
        writes[schema_gov.member_key(member)] = codec.encode(
            {"org": member, "admitted_height": 0, "proposal": None}
        )
    for name in POLICY_NAMES:
        policy = genesis.policy(name)
        record = {field: getattr(policy, field) for field in POLICY_FIELDS}
        writes[schema_gov.policy_key(name)] = codec.encode(
            {"name": name, **record, "changed_height": 0, "proposal": None}
        )
    validators = [
        {"number": number, "org": v.org, "node_key": v.node_key, "peer_address": v.peer_address,
         "api_address": v.api_address}
        for number, v in enumerate(genesis.validators)
    ]  # fmt: skip
    genesis_set = {"epoch": 0, "first_height": 1, "approved_height": None, "proposal": None, "action": None,
                   "validators": validators}  # fmt: skip
    writes[schema_gov.VALSET] = codec.encode({**genesis_set, "next_number": len(validators)})
    writes[schema_gov.valset_epoch_key(0)] = codec.encode(genesis_set)
    rule = genesis.consensus
    writes[schema_gov.VALSET_RULE] = codec.encode(
        {"checkpoint_interval": rule.checkpoint_interval, "pipeline_depth": rule.pipeline_depth}
    )
    nodes = [(v.node_key, v.org, "validator") for v in genesis.validators]
    nodes += [(o.node_key, o.org, "observer") for o in genesis.observers]
    for node_key, org, role in nodes:
        writes[schema_gov.nodekey_key(node_key)] = codec.encode(
            {"node_key": node_key, "org": org, "role": role, "since_height": 0}
        )
    return writes
