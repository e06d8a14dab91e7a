"""The state records of governance: members, policies, proposals, four-eyes requests, the validator set and
evidence of misbehaviour (declared as in chaincode.schema, which adds them to RECORDS and SHAPES).

Kept apart from chaincode.schema only for size; the same rules hold: a fixed field set per record, keys from
the templates, numbers zero-padded so that byte order is numeric order, index entries holding the empty map.
"""

from __future__ import annotations

from chaincode.layout import Field, KeyTemplate, Record, Shape

F = Field

ACTIONS = (
    "admit_member",
    "remove_member",
    "set_parameter",
    "set_policy",
    "add_validator",
    "remove_validator",
    "rotate_validator_key",
    "move_validator",
)
VALIDATOR_ACTIONS = ACTIONS[4:]
EVIDENCE_KINDS = ("pre_prepare", "prepare", "commit", "checkpoint")
_ACTION = f"enum({','.join(ACTIONS)})"

# --- nested maps ------------------------------------------------------------------------------------------

VOTE = Shape(
    "vote",
    (
        F("org", "org", "the voting organisation (one vote each)"),
        F("key", "hex32", "the admin key that signed the vote"),
        F("height", "int", "height of the voting block"),
    ),
    "an approval or rejection of a proposal",
)
VALIDATOR = Shape(
    "validator",
    (
        F("number", "int", "its permanent number (genesis order, then the next unused; never reused)"),
        F("org", "org", "the organisation operating it"),
        F("node_key", "hex32", "its node key: signs consensus messages and authenticates its peer links"),
        F("peer_address", "str", "host:port for the peer layer"),
        F("api_address", "str", "host:port of its client API"),
    ),
    "one validator of a validator set (a genesis `validators` entry with its number)",
)
LOCK = Shape(
    "lock",
    (
        F("unit", "enum(allowance,cash,offset)", "what is locked"),
        F("org", "org", "whose units"),
        F("amount", "int", "tonnes, fen, or serials (last - first + 1)"),
        F("fresh_t", "int", "allowances: how many of them were bought on fresh_day (0 otherwise)"),
        F("fresh_day", "int", "the trading day of the request"),
        F("first", "int|nil", "offsets: first serial locked (nil otherwise)"),
        F("last", "int|nil", "offsets: last serial locked (nil otherwise)"),
    ),
    "the units a four-eyes request holds until it ends",
)
SHAPES = (VOTE, VALIDATOR, LOCK)

# --- records ----------------------------------------------------------------------------------------------

MEMBER_RECORD = Record(
    "member",
    KeyTemplate("member/{org:org}"),
    (
        F("org", "org", "the member organisation"),
        F("admitted_height", "int", "0 for genesis members"),
        F("proposal", "int|nil", "the proposal that admitted it (nil at genesis)"),
    ),
    "a member organisation of the consortium: it votes in governance",
)
POLICY_RECORD = Record(
    "policy",
    KeyTemplate("policy/{policy:id}"),
    (
        F("name", "enum(membership,parameters,validators,policies)", "the policy's name"),
        F("proposers", "str", "electorate whose admins may propose: members, validators or a role"),
        F("approvers", "str", "electorate whose approvals count"),
        F("threshold_num", "int", "share of the electorate that must approve: numerator"),
        F("threshold_den", "int", "denominator"),
        F("threshold_min", "int", "and at least this many organisations"),
        F("changed_height", "int", "0 for the genesis policy"),
        F("proposal", "int|nil", "the proposal that last set it (nil at genesis)"),
    ),
    "a governance policy (§12)",
)
PROPOSAL_RECORD = Record(
    "proposal",
    KeyTemplate("proposal/{proposal:u16}"),
    (
        F("id", "int", "proposal number (meta/counter/proposal)"),
        F("action", _ACTION, "what it decides"),
        F("args", "map", "the action's arguments (§12.3)"),
        F("policies", "list(id)", "the policies whose thresholds must all be met"),
        F("proposer", "org", "the proposing organisation"),
        F("proposer_key", "hex32", "the admin key that signed the proposal"),
        F("created_height", "int", "height of propose"),
        F("expires_height", "int", "the last height at which it can still pass"),
        F("status", "enum(open,executed,failed,rejected,cancelled,expired)", "open until it ends"),
        F("approvals", "list(vote)", "one per organisation, in vote order (the proposer's first)"),
        F("rejections", "list(vote)", "one per organisation, in vote order"),
        F("closed_height", "int|nil", "height at which it ended (nil while open)"),
        F("failure", "id|nil", "failed: the code the action failed with"),
    ),
    "a governance proposal",
)
ORG_PROPOSAL_RECORD = Record(
    "open proposal index",
    KeyTemplate("orgprop/{org:org}/{proposal:u16}"),
    (),
    "present exactly while the organisation's proposal is open",
)
PROPOSAL_EXPIRY_RECORD = Record(
    "proposal expiry",
    KeyTemplate("expiry/{height:u20}/proposal/{proposal:u16}"),
    (),
    "present exactly while the proposal is open; height is its expires_height",
)
REQUEST_RECORD = Record(
    "four-eyes request",
    KeyTemplate("request/{request:u16}"),
    (
        F("id", "int", "request number (meta/counter/request)"),
        F("org", "org", "the organisation whose transaction waits"),
        F("function", "id", "the function the transaction called"),
        F("args", "map", "its arguments, as validated"),
        F("key", "hex32", "the key that signed it"),
        F("created_height", "int", "height of the transaction"),
        F("expires_height", "int", "the last height at which a second key can approve it"),
        F("status", "enum(pending,executed,failed,rejected,expired)", "pending until it ends"),
        F("lock", "lock|nil", "the units held meanwhile (nil: nothing to hold)"),
        F("closed_height", "int|nil", "height at which it ended (nil while pending)"),
        F("closed_by", "hex32|nil", "the key that approved or rejected it (nil while pending, or expired)"),
        F("failure", "id|nil", "failed: the code the function failed with when approved"),
    ),
    "a transaction waiting for a second key of its organisation",
)
ORG_REQUEST_RECORD = Record(
    "pending request index",
    KeyTemplate("orgreq/{org:org}/{request:u16}"),
    (),
    "present exactly while the organisation's request is pending",
)
REQUEST_EXPIRY_RECORD = Record(
    "request expiry",
    KeyTemplate("expiry/{height:u20}/request/{request:u16}"),
    (),
    "present exactly while the request is pending; height is its expires_height",
)
THRESHOLDS_RECORD = Record(
    "four-eyes thresholds",
    KeyTemplate("foureyes/{org:org}"),
    (
        F("allowance_t", "int|nil", "transfer_allowances above this needs a second key (nil: the parameter)"),
        F("offset_t", "int|nil", "transfer_offsets above this many serials"),
        F("cash_fen", "int|nil", "withdraw_cash above this amount (the bank's keys)"),
        F("order_t", "int|nil", "place_order above this quantity"),
        F("allocation_t", "int|nil", "allocate above this amount (the regulator's keys)"),
    ),
    "an organisation's own four-eyes thresholds (absent record: the parameters)",
)
_SET_FIELDS = (
    F("epoch", "int", "0 for the genesis set, then one more per change put in force"),
    F("first_height", "int", "the first height this set certifies (1 for the genesis set, else L + 1)"),
    F("approved_height", "int|nil", "the height whose execution approved it (nil: genesis)"),
    F("proposal", "int|nil", "the proposal that approved it (nil: genesis)"),
    F("action", f"enum({','.join(VALIDATOR_ACTIONS)})|nil", "the change that made it (nil: genesis)"),
    F("validators", "list(validator)", "its members in number order"),
)
VALSET_RECORD = Record(
    "validator set",
    KeyTemplate("valset/current"),
    (
        *_SET_FIELDS,
        F("next_number", "int", "the number the next validator added gets (one more than any ever used)"),
    ),
    "the validator set in force after the last executed block (a copy of its epoch record)",
)
VALSET_EPOCH_RECORD = Record(
    "validator-set epoch",
    KeyTemplate("valset/epoch/{epoch:u20}"),
    _SET_FIELDS,
    "one set in the history of validator sets, written when it comes into force and never changed "
    "(it certifies from first_height to the next epoch's first_height - 1)",
)
VALSET_RULE_RECORD = Record(
    "activation rule",
    KeyTemplate("valset/rule"),
    (
        F("checkpoint_interval", "int", "genesis consensus.checkpoint_interval"),
        F("pipeline_depth", "int", "genesis consensus.pipeline_depth"),
    ),
    "the genesis consensus parameters the activation height derives from (written at genesis)",
)
VALSET_PENDING_RECORD = Record(
    "pending validator-set change",
    KeyTemplate("valset/pending"),
    (
        F("action", f"enum({','.join(VALIDATOR_ACTIONS)})", "the change"),
        F("proposal", "int", "the proposal that approved it"),
        F("approved_height", "int", "the height whose execution approved it"),
        F(
            "activation_height",
            "int",
            "L: the last height of the current set; the end of block L puts it in force",
        ),
        F("number", "int", "the number of the validator added, removed, rotated or moved"),
        F("node_key", "hex32", "that validator's node key (for a rotation: its old key)"),
        F("new_node_key", "hex32|nil", "rotate_validator_key: the new key (nil otherwise)"),
        F("validators", "list(validator)", "the set after the change, in number order"),
    ),
    "an approved change of the validator set, present from its approval until the end of block L",
)
VALSET_OPEN_RECORD = Record(
    "open validator-set proposal",
    KeyTemplate("valset/open"),
    (F("proposal", "int", "the open proposal of a validator-set action"),),
    "present while a proposal of a validator-set action is open (at most one at a time)",
)
NODEKEY_RECORD = Record(
    "node key",
    KeyTemplate("nodekey/{node_key:hex32}"),
    (
        F("node_key", "hex32", "the key"),
        F("org", "org", "the organisation of the node"),
        F("role", "enum(validator,observer)", "what the node was when the key was first used"),
        F("since_height", "int", "0 for genesis nodes, else the approving height"),
    ),
    "every node key ever used (a key is never used twice)",
)
EVIDENCE_RECORD = Record(
    "evidence",
    KeyTemplate("evidence/{validator:hex32}/{height:u20}/{view:u20}/{kind:id}"),
    (
        F("validator", "hex32", "the node key that signed both messages"),
        F("org", "org", "its organisation"),
        F("kind", f"enum({','.join(EVIDENCE_KINDS)})", "the kind of both messages"),
        F("view", "int", "their view (0 for checkpoints, which have none)"),
        F("height", "int", "their height"),
        F("block_hash_1", "hex32", "the first message (the smaller of the two by block hash, state root)"),
        F("state_root_1", "hex32|nil", "checkpoints: its state root (nil otherwise)"),
        F("signature_1", "hex64", "its signature"),
        F("block_hash_2", "hex32", "the second message"),
        F("state_root_2", "hex32|nil", "checkpoints: its state root"),
        F("signature_2", "hex64", "its signature"),
        F("reporter", "org", "the organisation that submitted it"),
        F("reporter_key", "hex32", "the key that signed the submission"),
        F("recorded_height", "int", "height of the writing block"),
        F("tx_id", "hex32", "the submitting transaction"),
    ),
    "proof that a validator signed two conflicting consensus messages for one slot",
)

RECORDS = (
    MEMBER_RECORD,
    POLICY_RECORD,
    PROPOSAL_RECORD,
    ORG_PROPOSAL_RECORD,
    PROPOSAL_EXPIRY_RECORD,
    REQUEST_RECORD,
    ORG_REQUEST_RECORD,
    REQUEST_EXPIRY_RECORD,
    THRESHOLDS_RECORD,
    VALSET_RECORD,
    VALSET_EPOCH_RECORD,
    VALSET_RULE_RECORD,
    VALSET_PENDING_RECORD,
    VALSET_OPEN_RECORD,
    NODEKEY_RECORD,
    EVIDENCE_RECORD,
)

# --- keys --------------------------------------------------------------------------------------------------

VALSET = VALSET_RECORD.key.format()
VALSET_PENDING = VALSET_PENDING_RECORD.key.format()
VALSET_RULE = VALSET_RULE_RECORD.key.format()
VALSET_EPOCH_PREFIX = VALSET_EPOCH_RECORD.key.prefix
VALSET_OPEN = VALSET_OPEN_RECORD.key.format()
MEMBER_PREFIX = MEMBER_RECORD.key.prefix
POLICY_PREFIX = POLICY_RECORD.key.prefix
PROPOSAL_PREFIX = PROPOSAL_RECORD.key.prefix
REQUEST_PREFIX = REQUEST_RECORD.key.prefix
EVIDENCE_PREFIX = EVIDENCE_RECORD.key.prefix
EXPIRY_PREFIX = PROPOSAL_EXPIRY_RECORD.key.prefix

member_key = MEMBER_RECORD.key.format
policy_key = POLICY_RECORD.key.format
proposal_key = PROPOSAL_RECORD.key.format
org_proposal_key = ORG_PROPOSAL_RECORD.key.format
proposal_expiry_key = PROPOSAL_EXPIRY_RECORD.key.format
request_key = REQUEST_RECORD.key.format
org_request_key = ORG_REQUEST_RECORD.key.format
request_expiry_key = REQUEST_EXPIRY_RECORD.key.format
thresholds_key = THRESHOLDS_RECORD.key.format
nodekey_key = NODEKEY_RECORD.key.format
valset_epoch_key = VALSET_EPOCH_RECORD.key.format
evidence_key = EVIDENCE_RECORD.key.format


def org_proposal_prefix(org: str) -> bytes:
    return b"orgprop/" + org.encode() + b"/"


def org_request_prefix(org: str) -> bytes:
    return b"orgreq/" + org.encode() + b"/"


def expiry_prefix(height: int) -> bytes:
    """Every proposal and request whose last height is `height`."""
    return b"expiry/%020d/" % height
