// The verifier's checks, in the browser, from the genesis validator keys alone: certified blocks
// (docs/protocol/core.md sections 5-7, docs/protocol/node.md), state proofs (docs/protocol/storage.md,
// "Proofs") and retirement receipts (docs/protocol/audit.md). Each check is recorded in a Report; the first
// failure stops the walk and names what failed, as the Python auditor does (audit/chain.py).

import { CodecError, bytesEqual, concat, decode, encode, field, fromHex, toHex } from "./codec.js";
import { hashValue, merkleRoot, taggedHash, verifyEd25519 } from "./crypto.js";

const HEADER_KEYS = ["chain_id", "height", "next_validators_hash", "prev_hash", "proposer", "results_root", "state_height", "state_root", "time_ms", "tx_count", "tx_root", "validators_hash"];
const NODE_DEPTHS = 4;
const utf8 = new TextEncoder();

export class CheckFailed extends Error {
  constructor(check, detail) { super(`${check}: ${detail}`); this.check = check; this.detail = detail; }
}

export class Report {
  constructor() { this.steps = []; }
  pass(check, detail) { this.steps.push({ check, detail, ok: true }); }
  fail(check, detail) { this.steps.push({ check, detail, ok: false }); throw new CheckFailed(check, detail); }
  require(condition, check, detail) { if (!condition) this.fail(check, detail); }
}

function isUint(v) { return (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) || (typeof v === "bigint" && v >= 0n); }

function sameKeys(map, keys) {
  return map instanceof Map && map.size === keys.length && keys.every((k) => map.has(k));
}

// --- the genesis: whose signatures count ------------------------------------------------------------------

// JSON to the codec's values: integers must be exact (JSON numbers beyond 2^53 cannot be hashed here).
function fromJson(value) {
  if (typeof value === "number" && !Number.isSafeInteger(value)) throw new CodecError(`not an exact integer: ${value}`);
  if (Array.isArray(value)) return value.map(fromJson);
  if (value !== null && typeof value === "object") {
    const map = new Map();
    for (const [k, v] of Object.entries(value)) map.set(k, fromJson(v));
    return map;
  }
  return value;
}

export async function readGenesis(text, source) {
  const document = JSON.parse(text);
  const hash = toHex(await hashValue("genesis", fromJson(document)));
  const validators = document.validators;
  if (!Array.isArray(validators) || validators.length === 0) throw new CodecError("the genesis lists no validators");
  const keys = validators.map((v) => fromHex(v.node_key));
  const orgs = validators.map((v) => v.org);
  // core.md section 6.5: the genesis set is numbers 0..n-1 in genesis order
  const set = await validatorSet(keys.map((key, number) => [number, key]), "the genesis validators", (number) => orgs[number]);
  return {
    source,
    hash,
    chainId: document.chain_id,
    pipelineDepth: (document.consensus && document.consensus.pipeline_depth) || 2,
    keys,
    orgs,
    setHash: set.setHash,
    set,
  };
}

// A validator set: [number, key] members in number order, its hash (core.md section 6.5), a name for messages.
export async function validatorSet(members, name, orgOf = () => "") {
  const setHash = await hashValue("validator-set", new Map([["members", members]]));
  return { keys: new Map(members), n: members.length, setHash, name, orgOf };
}

// --- certified blocks -------------------------------------------------------------------------------------

export function quorum(n) { return n - Math.floor((n - 1) / 3); }

export async function decodeCertifiedBlock(bytes) {
  const wire = decode(bytes);
  if (!sameKeys(wire, ["block", "certificate", "results"])) throw new CodecError("not a certified block map");
  const block = field(wire, "block");
  if (!sameKeys(block, ["header", "txs"])) throw new CodecError("not a block map");
  const header = field(block, "header");
  if (!sameKeys(header, HEADER_KEYS)) throw new CodecError("the header does not have exactly the twelve fields");
  const txs = [];
  for (const raw of field(block, "txs")) {
    if (!(raw instanceof Uint8Array)) throw new CodecError("a transaction is not bytes");
    const tx = decode(raw);
    if (!sameKeys(tx, ["body", "signature"])) throw new CodecError("a transaction is not {body, signature}");
    const bodyBytes = field(tx, "body");
    const body = decode(bodyBytes);
    txs.push({ id: await taggedHash("tx", bodyBytes), body, signature: field(tx, "signature") });
  }
  return {
    header,
    hash: await hashValue("block-header", header),
    txs,
    certificate: field(wire, "certificate"),
    results: field(wire, "results"),
  };
}

export async function commitDigest(chainId, view, height, blockHash) {
  return hashValue("commit", new Map([["block_hash", blockHash], ["chain_id", chainId], ["height", height], ["view", view]]));
}

// docs/protocol/core.md section 7, in its order. Returns the validator indexes whose votes verified.
export async function verifyCertificate(report, header, headerHash, certificate, genesis, onVote = () => {}, validators = genesis.set) {
  const check = "commit certificate";
  report.require(sameKeys(certificate, ["block_hash", "height", "view", "votes"]), check, "not a certificate map");
  const height = field(header, "height");
  report.require(field(certificate, "height") === height, check, `it is for height ${field(certificate, "height")}, the header is ${height}`);
  report.require(bytesEqual(field(certificate, "block_hash"), headerHash), check, "it signs another block hash");
  // a block certified by a set governance put in force later names another set hash: a receipt proves that
  // set by its handovers (audit.md); a block page knows the genesis set only (audit verify follows changes)
  report.require(bytesEqual(field(header, "validators_hash"), validators.setHash), "validator set", `block ${height} is certified by a validator set other than ${validators.name}; verify it with carbonchain audit verify`);
  const votes = field(certificate, "votes");
  const n = validators.n;
  const indexes = votes.map((vote) => (Array.isArray(vote) && vote.length === 2 ? vote[0] : -1));
  for (let i = 1; i < indexes.length; i++) {
    report.require(indexes[i] > indexes[i - 1], check, "vote indexes are not strictly increasing");
  }
  report.require(votes.length >= quorum(n), check, `${votes.length} votes, a quorum of ${n} validators is ${quorum(n)}`);
  const view = field(certificate, "view");
  report.require(isUint(view), check, "the view is not an unsigned integer");
  const digest = await commitDigest(field(header, "chain_id"), view, height, headerHash);
  const verified = [];
  for (const vote of votes) {
    const [index, signature] = vote;
    report.require(Number.isInteger(index) && validators.keys.has(index), check, `vote from ${index}, not a member of ${validators.name}`);
    const ok = await verifyEd25519(validators.keys.get(index), digest, signature);
    onVote(index, ok);
    report.require(ok, check, `the signature of validator ${index} (${validators.orgOf(index)}) does not verify over the COMMIT digest`);
    verified.push(index);
  }
  report.pass(check, `${votes.length} of ${n} validators signed view ${view}, height ${height}; every Ed25519 signature verifies under the key of ${validators.name} (quorum ${quorum(n)})`);
  return verified;
}

// The checks of one block a page shows: encoding, chain, hash, transactions, certificate.
export async function verifyBlock(report, bytes, genesis, shown, onVote, validators = genesis.set) {
  let block;
  try {
    block = await decodeCertifiedBlock(bytes);
  } catch (error) {
    report.fail("block encoding", `the served bytes are not a canonical certified block: ${error.message}`);
  }
  report.pass("block encoding", `${bytes.length} bytes of canonical msgpack`);
  const header = block.header;
  report.require(field(header, "chain_id") === genesis.chainId, "chain id", `the block is for chain ${field(header, "chain_id")}, the genesis is ${genesis.chainId}`);
  report.require(field(header, "height") === shown.height, "height", `the bytes are block ${field(header, "height")}, the page shows ${shown.height}`);
  const hash = toHex(block.hash);
  report.require(hash === shown.hash, "block hash", `the header hashes to ${hash}, the page shows ${shown.hash}`);
  report.pass("block hash", `H(block-header, header) = ${hash}, as shown`);
  report.require(field(header, "tx_count") === block.txs.length, "transaction count", `the header says ${field(header, "tx_count")}, the block holds ${block.txs.length}`);
  report.require(block.results.length === block.txs.length, "block encoding", "not one result per transaction");
  const root = await merkleRoot(block.txs.map((tx) => tx.id));
  report.require(bytesEqual(root, field(header, "tx_root")), "transaction root", "the Merkle root of the transaction ids is not the header's tx_root");
  for (const [index, tx] of block.txs.entries()) {
    const id = toHex(tx.id);
    if (index in shown.txIds) report.require(shown.txIds[index] === id, "transactions", `transaction ${index} is ${id}, the page shows ${shown.txIds[index]}`);
    const code = field(block.results[index], "code");
    if (index in shown.codes) report.require(shown.codes[index] === code, "transactions", `transaction ${index}'s result is ${code}, the page shows ${shown.codes[index]}`);
    const ok = await verifyEd25519(field(tx.body, "sender_key"), tx.id, tx.signature);
    report.require(ok, "transaction signature", `transaction ${index} (${id}): the signature of ${field(tx.body, "sender_org")} does not verify`);
  }
  report.pass("transactions", `${block.txs.length} ids hash to the header's tx_root; every sender's signature verifies`);
  const signers = await verifyCertificate(report, header, block.hash, block.certificate, genesis, onVote, validators);
  return { block, signers };
}

// The results of block h are certified by the header of block h + pipeline_depth: their Merkle root.
export async function verifyResults(report, block, certifyingBytes, genesis, validators = genesis.set) {
  const certifying = await decodeCertifiedBlock(certifyingBytes);
  const height = field(block.header, "height");
  const certifyingHeight = field(certifying.header, "height");
  await verifyCertificate(new Report(), certifying.header, certifying.hash, certifying.certificate, genesis, () => {}, validators).catch((error) => {
    report.fail("results", `block ${certifyingHeight}'s certificate does not verify: ${error.message}`);
  });
  report.require(field(certifying.header, "state_height") === height, "results", `block ${certifyingHeight} certifies height ${field(certifying.header, "state_height")}`);
  const leaves = [];
  for (const result of block.results) leaves.push(await resultHash(result));
  const root = await merkleRoot(leaves);
  report.require(bytesEqual(root, field(certifying.header, "results_root")), "results", `the results shown do not hash to the results root block ${certifyingHeight} certifies`);
  report.pass("results", `the ${leaves.length} results' codes and events hash to the results root that block ${certifyingHeight}'s certified header carries (messages are explanations, not certified)`);
}

// docs/protocol/core.md section 6.3: the hash covers the code and the events, not the message.
export async function resultHash(result) {
  if (!sameKeys(result, ["code", "events", "message"])) throw new CodecError("a result is not {code, events, message}");
  return hashValue("tx-result", new Map([["code", field(result, "code")], ["events", field(result, "events")]]));
}

// --- state proofs -----------------------------------------------------------------------------------------

let emptyAt = null;
async function emptyHashes() {
  if (emptyAt === null) {
    const hashes = [await taggedHash("state-bucket", new Uint8Array(0))];
    for (let i = 0; i < NODE_DEPTHS; i++) {
      hashes.push(await taggedHash("state-node", concat(...Array(16).fill(hashes[hashes.length - 1]))));
    }
    emptyAt = hashes.reverse();  // emptyAt[d]: an empty subtree at depth d; emptyAt[4]: an empty bucket
  }
  return emptyAt;
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function nibble(path, depth) { const byte = path[depth >> 1]; return depth & 1 ? byte & 0x0f : byte >> 4; }

// docs/protocol/storage.md "Verification"; returns the proven value (Uint8Array) or null for absence.
export async function verifyStateProof(root, key, proofBytes) {
  const proof = decode(proofBytes, 8 * 1024 * 1024);
  if (!sameKeys(proof, ["levels", "others", "value"])) throw new CodecError("a state proof is a map of exactly levels, others and value");
  const levels = field(proof, "levels");
  const others = field(proof, "others");
  const value = field(proof, "value");
  if (!Array.isArray(levels) || levels.length !== NODE_DEPTHS) throw new CodecError(`a proof has ${NODE_DEPTHS} levels`);
  const path = await taggedHash("state-key", key);
  if (others.length % 64 !== 0) throw new CodecError("the bucket's entries are not whole 64-byte entries");
  const entries = [];
  for (let at = 0; at < others.length; at += 64) entries.push(others.subarray(at, at + 64));
  for (const [i, entry] of entries.entries()) {
    const entryPath = entry.subarray(0, 32);
    if (entryPath[0] !== path[0] || entryPath[1] !== path[1]) throw new CodecError("an entry of another bucket");
    if (bytesEqual(entryPath, path)) throw new CodecError("the bucket lists the key itself among the others");
    if (i > 0 && compareBytes(entries[i - 1].subarray(0, 32), entryPath) >= 0) throw new CodecError("the bucket's entries are not ascending");
  }
  if (value !== null) {
    const own = concat(path, await taggedHash("state-value", value));
    let at = entries.findIndex((entry) => compareBytes(entry.subarray(0, 32), path) > 0);
    if (at < 0) at = entries.length;
    entries.splice(at, 0, own);
  }
  let current = await taggedHash("state-bucket", concat(...entries));
  const empty = await emptyHashes();
  for (let depth = NODE_DEPTHS - 1; depth >= 0; depth--) {
    const level = levels[depth];
    if (!(level instanceof Uint8Array) || level.length < 2) throw new CodecError(`level ${depth} is shorter than its bitmap`);
    const bitmap = (level[0] << 8) | level[1];
    const slot = nibble(path, depth);
    if ((bitmap >> slot) & 1) throw new CodecError(`level ${depth} lists a sibling in the slot on the key's path`);
    let count = 0;
    for (let i = 0; i < 16; i++) count += (bitmap >> i) & 1;
    if (level.length !== 2 + 32 * count) throw new CodecError(`level ${depth} has the wrong length for its bitmap`);
    const children = Array(16).fill(empty[depth + 1]);
    let offset = 2;
    for (let i = 0; i < 16; i++) {
      if ((bitmap >> i) & 1) {
        const sibling = level.subarray(offset, offset + 32);
        if (bytesEqual(sibling, empty[depth + 1])) throw new CodecError(`level ${depth} lists an empty sibling`);
        children[i] = sibling;
        offset += 32;
      }
    }
    children[slot] = current;
    current = await taggedHash("state-node", concat(...children));
  }
  if (!bytesEqual(current, root)) throw new CodecError("the proof does not lead to the state root");
  return value;
}

// A header proves `stateRoot` at `stateHeight` if its certificate verifies and it says so.
export async function verifyCertifyingHeader(report, header, certificate, genesis, stateHeight, stateRoot, validators = genesis.set) {
  const height = field(header, "height");
  report.require(field(header, "chain_id") === genesis.chainId, "chain id", `block ${height} is for chain ${field(header, "chain_id")}`);
  const hash = await hashValue("block-header", header);
  await verifyCertificate(report, header, hash, certificate, genesis, () => {}, validators);
  report.require(field(header, "state_height") === stateHeight, "state height", `block ${height} certifies height ${field(header, "state_height")}, the proof is for ${stateHeight}`);
  report.require(bytesEqual(field(header, "state_root"), stateRoot), "state root", `block ${height}'s certified header carries another state root than the proof's`);
  report.pass("certified root", `block ${height}'s header, under that certificate, says the state after height ${stateHeight} has root ${toHex(stateRoot)}`);
}

export async function verifyProofDocument(report, key, document) {
  let value;
  try {
    value = await verifyStateProof(fromHex(document.state_root), key, fromHex(document.proof));
  } catch (error) {
    report.fail("state proof", error.message);
  }
  const claimed = document.value_hex === null ? null : document.value_hex;
  report.require((value === null ? null : toHex(value)) === claimed, "state proof", "the value the node shows is not the value the proof proves");
  report.pass("state proof", value === null ? "the proof shows the key absent from that state" : `the key's value (${value.length} bytes) hashes up to the state root`);
  return value;
}

// --- retirement receipts ----------------------------------------------------------------------------------

export function sameValue(decoded, json) {
  if (decoded instanceof Map) {
    if (json === null || typeof json !== "object" || Array.isArray(json)) return false;
    const keys = Object.keys(json);
    return keys.length === decoded.size && keys.every((k) => decoded.has(k) && sameValue(decoded.get(k), json[k]));
  }
  if (Array.isArray(decoded)) return Array.isArray(json) && json.length === decoded.length && decoded.every((v, i) => sameValue(v, json[i]));
  if (decoded instanceof Uint8Array || typeof decoded === "bigint") return false;  // JSON has no bytes, no exact big integers
  return decoded === json;
}

// A decoded value against the node's JSON view of it (node/views.py: bytes become hex).
export function sameJsonView(decoded, json) {
  if (decoded instanceof Uint8Array) return typeof json === "string" && json === toHex(decoded);
  if (decoded instanceof Map) {
    if (json === null || typeof json !== "object" || Array.isArray(json)) return false;
    const keys = Object.keys(json);
    return keys.length === decoded.size && keys.every((k) => decoded.has(k) && sameJsonView(decoded.get(k), json[k]));
  }
  if (Array.isArray(decoded)) return Array.isArray(json) && json.length === decoded.length && decoded.every((v, i) => sameJsonView(v, json[i]));
  return decoded === json;
}

// docs/protocol/audit.md, "Validator-set handovers": from the genesis set, each handover's header (the last
// height of a set) is certified by the set in force and names the next set's hash; returns the set of `height`.
export async function verifyHandovers(report, handovers, genesis, height) {
  const check = "validator-set handover";
  report.require(Array.isArray(handovers) && handovers.length <= 1024, check, "validator_sets is not a list of handovers");
  let validators = genesis.set;
  let last = 0;
  for (const handover of handovers) {
    let header, certificate, members;
    try {
      header = decode(fromHex(handover.header));
      certificate = decode(fromHex(handover.certificate));
      if (!sameKeys(header, HEADER_KEYS)) throw new CodecError("the header does not have exactly the twelve fields");
      members = handover.validators.map(([number, key]) => [number, fromHex(key)]);
    } catch (error) {
      report.fail(check, `malformed handover: ${error.message}`);
    }
    const at = field(header, "height");
    if (at >= height) break;  // a set that ended at or after the certifying header's height
    report.require(at > last, check, `handovers must be in increasing height order (after ${last})`);
    report.require(field(header, "chain_id") === genesis.chainId, check, `block ${at} is for chain ${field(header, "chain_id")}`);
    const hash = await hashValue("block-header", header);
    await verifyCertificate(report, header, hash, certificate, genesis, () => {}, validators);
    const next = await validatorSet(members, `the set in force from height ${at + 1}`);
    report.require(bytesEqual(field(header, "next_validators_hash"), next.setHash), check, `block ${at} does not hand over to the set the receipt lists`);
    report.require(!bytesEqual(next.setHash, validators.setHash), check, `block ${at} is not the last height of a set`);
    report.pass(check, `block ${at}, certified by ${validators.name}, hands over to ${next.n} validators`);
    validators = next;
    last = at;
  }
  return validators;
}

// docs/protocol/audit.md: returns the record the state proves (a Map).
export async function verifyReceipt(report, document, genesis) {
  const check = "receipt";
  report.require(document && document.kind === "carbonchain-retirement-receipt" && document.version === 1, check, "not a carbonchain-retirement-receipt version 1 document");
  report.require(document.genesis_hash === genesis.hash, check, `the receipt belongs to genesis ${document.genesis_hash}, not to ${genesis.hash}`);
  report.pass(check, `a version 1 receipt of chain ${document.chain_id}, genesis ${genesis.hash}`);
  let header, certificate;
  try {
    header = decode(fromHex(document.certifying_header));
    certificate = decode(fromHex(document.certificate));
    if (!sameKeys(header, HEADER_KEYS)) throw new CodecError("the header does not have exactly the twelve fields");
  } catch (error) {
    report.fail(check, `malformed receipt document: ${error.message}`);
  }
  const key = utf8.encode(String(document.state_key));
  const value = await verifyProofDocument(report, key, document);
  const root = fromHex(document.state_root);
  const validators = await verifyHandovers(report, document.validator_sets || [], genesis, field(header, "height"));
  await verifyCertifyingHeader(report, header, certificate, genesis, document.state_height, root, validators);
  report.require(value !== null, check, `the state proves that ${document.state_key} does not exist`);
  const record = decode(value);
  report.require(record instanceof Map, check, "the proven value is not a receipt record");
  const shown = { ...(document.receipt || {}) };
  delete shown.state_key;
  report.require(sameValue(record, shown), check, "the receipt shown differs from the receipt the state proves");
  report.pass("record", `the receipt's ${record.size} fields equal the record proven at ${document.state_key}`);
  return record;
}

