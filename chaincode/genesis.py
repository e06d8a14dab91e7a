"""The carbon chaincode's state at height 0, from the genesis document alone (docs/CHAINCODE.md section 6).

The schema version, every parameter (defaults overridden by genesis `chaincode.carbon`), zero totals, the
market's reference price, and an organisation record plus admin key records per genesis organisation.
"""

from __future__ import annotations

from chaincode import identity, schema
from chaincode.params import compute_params
from core import codec
from core.genesis import Genesis


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
    return writes
