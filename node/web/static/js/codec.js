// Canonical msgpack (docs/protocol/core.md section 1), for hashing and checking in the browser.
//
// Values: null, booleans, integers (a Number when it is a safe integer, else a BigInt), strings, byte
// strings (Uint8Array), arrays, and maps with string keys (decoded as Map; a plain object or a Map encodes).
// encode() writes the one canonical form: shortest integers and lengths, map keys ascending by their UTF-8
// bytes. decode() accepts only bytes that are exactly that form (it parses, re-encodes and compares, as the
// reference decoder does), so a value decoded here hashes to the same digest as on the node.

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const DEPTH_MAX = 32;
const CONTAINER_MAX = 200000;
const INT_MIN = -(2n ** 63n);
const UINT_MAX = 2n ** 64n - 1n;

export class CodecError extends Error {}

class Writer {
  constructor() { this.chunks = []; this.length = 0; }
  bytes(array) { this.chunks.push(array); this.length += array.length; }
  byte(value) { this.bytes(Uint8Array.of(value)); }
  uint(value, size) {  // big-endian, `size` bytes, value a BigInt
    const out = new Uint8Array(size);
    for (let i = size - 1; i >= 0; i--) { out[i] = Number(value & 0xffn); value >>= 8n; }
    this.bytes(out);
  }
  result() {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) { out.set(chunk, offset); offset += chunk.length; }
    return out;
  }
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function writeInt(writer, value) {
  const v = BigInt(value);
  if (v < INT_MIN || v > UINT_MAX) throw new CodecError(`integer out of range: ${v}`);
  if (v >= 0n) {
    if (v <= 0x7fn) writer.byte(Number(v));
    else if (v <= 0xffn) { writer.byte(0xcc); writer.uint(v, 1); }
    else if (v <= 0xffffn) { writer.byte(0xcd); writer.uint(v, 2); }
    else if (v <= 0xffffffffn) { writer.byte(0xce); writer.uint(v, 4); }
    else { writer.byte(0xcf); writer.uint(v, 8); }
  } else {
    if (v >= -32n) writer.byte(Number(v + 256n));
    else if (v >= -128n) { writer.byte(0xd0); writer.uint(v + 256n, 1); }
    else if (v >= -32768n) { writer.byte(0xd1); writer.uint(v + 65536n, 2); }
    else if (v >= -(2n ** 31n)) { writer.byte(0xd2); writer.uint(v + 2n ** 32n, 4); }
    else { writer.byte(0xd3); writer.uint(v + 2n ** 64n, 8); }
  }
}

function writeLength(writer, n, fix, fixMax, codes) {
  if (n <= fixMax && fix !== null) writer.byte(fix | n);
  else if (n <= 0xff && codes[0] !== null) { writer.byte(codes[0]); writer.uint(BigInt(n), 1); }
  else if (n <= 0xffff) { writer.byte(codes[1]); writer.uint(BigInt(n), 2); }
  else { writer.byte(codes[2]); writer.uint(BigInt(n), 4); }
}

function writeValue(writer, value, depth) {
  if (depth > DEPTH_MAX) throw new CodecError(`nesting deeper than ${DEPTH_MAX}`);
  if (value === null) writer.byte(0xc0);
  else if (value === false) writer.byte(0xc2);
  else if (value === true) writer.byte(0xc3);
  else if (typeof value === "bigint") writeInt(writer, value);
  else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new CodecError(`not an integer the format allows: ${value}`);
    writeInt(writer, value);
  } else if (typeof value === "string") {
    const bytes = utf8Encoder.encode(value);
    writeLength(writer, bytes.length, 0xa0, 31, [0xd9, 0xda, 0xdb]);
    writer.bytes(bytes);
  } else if (value instanceof Uint8Array) {
    writeLength(writer, value.length, null, -1, [0xc4, 0xc5, 0xc6]);
    writer.bytes(value);
  } else if (Array.isArray(value)) {
    writeLength(writer, value.length, 0x90, 15, [null, 0xdc, 0xdd]);
    for (const item of value) writeValue(writer, item, depth + 1);
  } else if (typeof value === "object") {
    const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
    const keyed = entries.map(([key, item]) => {
      if (typeof key !== "string") throw new CodecError("map keys must be strings");
      return [utf8Encoder.encode(key), key, item];
    });
    keyed.sort((a, b) => compareBytes(a[0], b[0]));
    for (let i = 1; i < keyed.length; i++) {
      if (compareBytes(keyed[i - 1][0], keyed[i][0]) === 0) throw new CodecError(`duplicate key ${keyed[i][1]}`);
    }
    writeLength(writer, keyed.length, 0x80, 15, [null, 0xde, 0xdf]);
    for (const [, key, item] of keyed) { writeValue(writer, key, depth + 1); writeValue(writer, item, depth + 1); }
  } else {
    throw new CodecError(`cannot encode a ${typeof value}`);
  }
}

export function encode(value) {
  const writer = new Writer();
  writeValue(writer, value, 0);
  return writer.result();
}

class Reader {
  constructor(bytes, maxBytes) { this.bytes = bytes; this.offset = 0; this.maxBytes = maxBytes; }
  take(n) {
    if (this.offset + n > this.bytes.length) throw new CodecError("truncated input");
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  uint(n) {
    let v = 0n;
    for (const b of this.take(n)) v = (v << 8n) | BigInt(b);
    return v;
  }
  length(n) {
    const v = Number(this.uint(n));
    if (v > this.maxBytes) throw new CodecError("length beyond the limit");
    return v;
  }
}

function asNumber(v) { return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }

function readValue(reader, depth) {
  if (depth > DEPTH_MAX) throw new CodecError(`nesting deeper than ${DEPTH_MAX}`);
  const code = reader.take(1)[0];
  if (code <= 0x7f) return code;
  if (code >= 0xe0) return code - 256;
  if ((code & 0xe0) === 0xa0) return readString(reader, code & 0x1f);
  if ((code & 0xf0) === 0x90) return readArray(reader, code & 0x0f, depth);
  if ((code & 0xf0) === 0x80) return readMap(reader, code & 0x0f, depth);
  switch (code) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return reader.take(reader.length(1)).slice();
    case 0xc5: return reader.take(reader.length(2)).slice();
    case 0xc6: return reader.take(reader.length(4)).slice();
    case 0xcc: return asNumber(reader.uint(1));
    case 0xcd: return asNumber(reader.uint(2));
    case 0xce: return asNumber(reader.uint(4));
    case 0xcf: return asNumber(reader.uint(8));
    case 0xd0: return asNumber(BigInt.asIntN(8, reader.uint(1)));
    case 0xd1: return asNumber(BigInt.asIntN(16, reader.uint(2)));
    case 0xd2: return asNumber(BigInt.asIntN(32, reader.uint(4)));
    case 0xd3: return asNumber(BigInt.asIntN(64, reader.uint(8)));
    case 0xd9: return readString(reader, reader.length(1));
    case 0xda: return readString(reader, reader.length(2));
    case 0xdb: return readString(reader, reader.length(4));
    case 0xdc: return readArray(reader, reader.length(2), depth);
    case 0xdd: return readArray(reader, reader.length(4), depth);
    case 0xde: return readMap(reader, reader.length(2), depth);
    case 0xdf: return readMap(reader, reader.length(4), depth);
    default: throw new CodecError(`byte 0x${code.toString(16)} is not allowed (float, ext or reserved)`);
  }
}

function readString(reader, n) {
  try { return utf8Decoder.decode(reader.take(n)); } catch (e) { throw new CodecError("invalid UTF-8 in a string"); }
}

function readArray(reader, n, depth) {
  if (n > CONTAINER_MAX) throw new CodecError("array too long");
  const out = [];
  for (let i = 0; i < n; i++) out.push(readValue(reader, depth + 1));
  return out;
}

function readMap(reader, n, depth) {
  if (n > CONTAINER_MAX) throw new CodecError("map too long");
  const out = new Map();
  for (let i = 0; i < n; i++) {
    const key = readValue(reader, depth + 1);
    if (typeof key !== "string") throw new CodecError("a map key is not a string");
    if (out.has(key)) throw new CodecError(`duplicate key ${key}`);
    out.set(key, readValue(reader, depth + 1));
  }
  return out;
}

export function decode(bytes, maxBytes = 16 * 1024 * 1024) {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new CodecError("no bytes to decode");
  if (bytes.length > maxBytes) throw new CodecError("input longer than the limit");
  const reader = new Reader(bytes, maxBytes);
  const value = readValue(reader, 0);
  if (reader.offset !== bytes.length) throw new CodecError("trailing bytes after the value");
  if (compareBytes(encode(value), bytes) !== 0) throw new CodecError("not the canonical encoding of its value");
  return value;
}

// A decoded map's field, refusing a missing one (so a malformed document fails with a name, not undefined).
export function field(map, name) {
  if (!(map instanceof Map) || !map.has(name)) throw new CodecError(`missing field ${name}`);
  return map.get(name);
}

export function fromHex(text) {
  if (typeof text !== "string" || !/^([0-9a-f]{2})*$/.test(text)) throw new CodecError("not lowercase hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function bytesEqual(a, b) { return a instanceof Uint8Array && b instanceof Uint8Array && compareBytes(a, b) === 0; }

export function concat(...arrays) {
  const writer = new Writer();
  for (const array of arrays) writer.bytes(array);
  return writer.result();
}
