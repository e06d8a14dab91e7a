// Hashing and signatures in the browser: tagged SHA-256, Merkle roots, Ed25519 verification, all through
// WebCrypto (docs/protocol/core.md sections 2-4). Nothing here is trusted from the node.

import { concat, encode, toHex } from "./codec.js";

const utf8 = new TextEncoder();
const L = 2n ** 252n + 27742317777372353535851937790883648493n;  // the order of the Ed25519 base point
const P = 2n ** 255n - 19n;
// The y coordinates whose encodings libsodium refuses as small-order points (any sign bit): order 4 and 1,
// the two of order 8, and p - 1, p, p + 1 (docs/protocol/core.md section 4; libsodium's blocklist).
const SMALL_ORDER_Y = [
  0n, 1n,
  2707385501144840649318225287225658788936804267575313519463743609750303402022n,
  55188659117513257062467267217118295137698188065244968500265048394206261417927n,
  P - 1n, P, P + 1n,
];

export class VerifyError extends Error {}

export function isAvailable() {
  return typeof crypto !== "undefined" && crypto.subtle !== undefined;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// H(tag, payload) = SHA-256("carbonchain/" || tag || 0x00 || payload)
export async function taggedHash(tag, payload) {
  return sha256(concat(utf8.encode(`carbonchain/${tag}`), Uint8Array.of(0), payload));
}

export async function hashValue(tag, value) {
  return taggedHash(tag, encode(value));
}

// RFC 6962's Merkle tree hash with tagged leaves and nodes (section 3).
export async function merkleRoot(leaves) {
  if (leaves.length === 0) return taggedHash("merkle-empty", new Uint8Array(0));
  if (leaves.length === 1) return taggedHash("merkle-leaf", leaves[0]);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  const left = await merkleRoot(leaves.slice(0, k));
  const right = await merkleRoot(leaves.slice(k));
  return taggedHash("merkle-node", concat(left, right));
}

function littleEndian(bytes) {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

function encodedY(bytes) {
  const copy = bytes.slice();
  copy[31] &= 0x7f;
  return littleEndian(copy);
}

function hasSmallOrder(point) {
  const y = encodedY(point);
  return SMALL_ORDER_Y.includes(y);
}

const keyCache = new Map();

async function importKey(publicKey) {
  const id = toHex(publicKey);
  if (!keyCache.has(id)) {
    keyCache.set(id, crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]));
  }
  return keyCache.get(id);
}

// Ed25519 with libsodium's rules where WebCrypto is laxer: S < L, R and the key not of small order, the key
// a canonical encoding; then WebCrypto checks the equation. Returns true or false; throws VerifyError when
// the browser cannot verify at all.
export async function verifyEd25519(publicKey, message, signature) {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (littleEndian(signature.subarray(32)) >= L) return false;
  if (hasSmallOrder(signature.subarray(0, 32))) return false;
  if (encodedY(publicKey) >= P || hasSmallOrder(publicKey)) return false;
  let key;
  try {
    key = await importKey(publicKey);
  } catch (error) {
    keyCache.delete(toHex(publicKey));
    if (error && error.name === "NotSupportedError") {
      throw new VerifyError("this browser's WebCrypto has no Ed25519 (Chromium 137+, Firefox 129+, Safari 17+ do)");
    }
    return false;  // a 32-byte string that is not a point
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}
