/**
 * A small safetensors reader: the header is checked in full before any tensor is read, and
 * tensors are converted to float32 on request (F32 as stored, F16 and BF16 exactly).
 *
 * Format: an unsigned 64-bit little-endian header size N, N bytes of UTF-8 JSON — an object of
 * tensors `{ dtype, shape, data_offsets: [begin, end] }` (offsets into the data that follows the
 * header) plus an optional `__metadata__` object of strings — then the data, row-major,
 * little-endian.
 *
 * Reference: huggingface/safetensors, the format description in its README and the checks of
 * its Rust `Metadata::validate`.
 */
import { SIZE_LIMITS, fail, show } from '../internal/errors.js';
import { checkJsonText } from '../internal/json.js';

/** Largest header accepted (bytes): the Rust reader's bound; a real header is a few kilobytes. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of the dtypes this reader converts. */
const DTYPE_BYTES = { F32: 4, F16: 2, BF16: 2 } as const;
/** Dtypes of the format this reader does not convert (named, so the error says "unsupported", not "unknown"). */
const OTHER_DTYPES = ['F64', 'F8_E4M3', 'F8_E5M2', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL'];

/** A dtype this reader converts to float32. */
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** One tensor's header entry (checked). */
export interface SafetensorsEntry {
  /** Element type as stored. */
  dtype: SafetensorsDtype;
  /** Shape (row-major). */
  shape: number[];
  /** Byte offset of its data in the file (header included). */
  byteOffset: number;
  /** Bytes of its data (elements × dtype size). */
  byteLength: number;
}

/** A checked safetensors file. */
export interface SafetensorsFile {
  /** The `__metadata__` strings (empty when absent). */
  metadata: Record<string, string>;
  /** Every tensor's entry by name, in header order. */
  tensors: Map<string, SafetensorsEntry>;
  /** Reads tensor `name` as float32 (a new array), converting F16/BF16 exactly. */
  float32(name: string): Float32Array;
  /** Index of the first NaN or ±Infinity of tensor `name`, or -1; reads the stored bits, allocates nothing. */
  firstNonFinite(name: string): number;
}

/** The float32 value of an IEEE half (binary16) bit pattern; every half is exactly a float32. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Bits of the exponent field of each dtype: all ones means NaN or ±Infinity. */
const EXPONENT_MASK = { F32: 0x7f800000, F16: 0x7c00, BF16: 0x7f80 } as const;

/** Index of the first NaN/±Infinity in `bytes` (little-endian, `dtype`), or -1. */
function firstNonFinite(bytes: Uint8Array, dtype: SafetensorsDtype): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const mask = EXPONENT_MASK[dtype];
  const size = DTYPE_BYTES[dtype];
  for (let i = 0; i < bytes.byteLength / size; i++) {
    const bits = size === 4 ? view.getUint32(4 * i, true) : view.getUint16(2 * i, true);
    if ((bits & mask) >>> 0 === mask) return i;
  }
  return -1;
}

/** Converts `bytes` (little-endian, `dtype`) to float32. */
function toFloat32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  } else if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
  } else {
    // bfloat16 is the top half of a float32
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
  }
  return out;
}

/** Checks one tensor entry of the header; returns it with file offsets. */
function checkEntry(where: string, name: string, raw: unknown, dataStart: number, fileBytes: number): SafetensorsEntry {
  const arg = `tensor ${show(name)}`;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(Error, where, arg, 'must be an object { dtype, shape, data_offsets }', raw);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
    const known = typeof dtype === 'string' && OTHER_DTYPES.includes(dtype);
    fail(Error, where, `${arg} dtype`, `must be F32, F16 or BF16 (${known ? 'unsupported' : 'unknown'} dtype)`, dtype);
  }
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) fail(Error, where, `${arg} shape`, 'must be an array of non-negative integers', shape);
  const elements = shape.reduce((a: number, d: number) => a * d, 1);
  if (elements > SIZE_LIMITS.matrixElements) fail(RangeError, where, `${arg} shape`, `must have at most ${SIZE_LIMITS.matrixElements} elements`, shape);
  if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0) || offsets[0] > offsets[1]) {
    fail(Error, where, `${arg} data_offsets`, 'must be [begin, end] with integers 0 ≤ begin ≤ end', offsets);
  }
  const [begin, end] = offsets as [number, number];
  const byteLength = elements * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (end - begin !== byteLength) {
    fail(Error, where, `${arg} data_offsets`, `must span shape × dtype size = ${byteLength} bytes (${show(shape)} × ${dtype})`, offsets);
  }
  if (dataStart + end > fileBytes) {
    fail(Error, where, `${arg} data_offsets`, `must lie inside the file's ${fileBytes - dataStart} data bytes (the file is truncated or the offsets are wrong)`, offsets);
  }
  return { dtype: dtype as SafetensorsDtype, shape: shape as number[], byteOffset: dataStart + begin, byteLength };
}

/**
 * Reads and checks a safetensors header: its size bound, the JSON, `__metadata__`, every
 * tensor's dtype, shape, byte length and offsets (inside the file, no two overlapping). Nothing
 * is allocated for tensor data until {@link SafetensorsFile.float32} is called.
 * @param bytes The whole file.
 * @param where Prefix of error messages naming the caller and the file.
 */
export function readSafetensors(bytes: Uint8Array, where = 'readSafetensors: bytes'): SafetensorsFile {
  if (!(bytes instanceof Uint8Array)) fail(TypeError, where, 'file', 'must be a Uint8Array', bytes);
  if (bytes.byteLength < 8) throw new Error(`${where}: file is truncated: it must hold the 8-byte header size, but has ${bytes.byteLength} bytes.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerBytes > SAFETENSORS_MAX_HEADER_BYTES) fail(RangeError, where, 'header size', `must be at most ${SAFETENSORS_MAX_HEADER_BYTES} bytes`, headerBytes);
  if (8 + headerBytes > bytes.byteLength) {
    throw new Error(`${where}: file is truncated: the header size says ${headerBytes} bytes, but only ${bytes.byteLength - 8} follow it.`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerBytes));
  } catch (error) {
    throw new Error(`${where}: header must be UTF-8 JSON, but parsing failed (${(error as Error).message}).`);
  }
  checkJsonText(text, where, 'header', { uniqueKeys: true }); // nesting bounded, no tensor named twice
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new Error(`${where}: header must be UTF-8 JSON, but parsing failed (${(error as Error).message}).`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(Error, where, 'header', 'must be a JSON object', header);
  const { __metadata__: rawMetadata, ...entries } = header as Record<string, unknown>;
  const metadata = rawMetadata ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata) || Object.values(metadata).some((v) => typeof v !== 'string')) {
    fail(Error, where, 'header.__metadata__', 'must be an object of strings', rawMetadata);
  }
  const dataStart = 8 + headerBytes;
  const tensors = new Map(Object.entries(entries).map(([name, raw]) => [name, checkEntry(where, name, raw, dataStart, bytes.byteLength)]));
  // no two tensors share a byte (sorted by offset, each starts at or after the previous end)
  const sorted = [...tensors].filter(([, e]) => e.byteLength > 0).sort(([, a], [, b]) => a.byteOffset - b.byteOffset);
  sorted.slice(1).forEach(([name, e], i) => {
    const [prevName, prev] = sorted[i]!;
    if (e.byteOffset < prev.byteOffset + prev.byteLength) {
      fail(Error, where, `tensor ${show(name)} data_offsets`, `must not overlap tensor ${show(prevName)} (bytes up to ${prev.byteOffset + prev.byteLength - dataStart})`, [e.byteOffset - dataStart, e.byteOffset - dataStart + e.byteLength]);
    }
  });
  const data = (name: string) => {
    const e = tensors.get(name);
    if (e === undefined) fail(Error, where, 'tensor', 'must be in the file', name);
    return { e, bytes: bytes.subarray(e.byteOffset, e.byteOffset + e.byteLength) };
  };
  return {
    metadata: metadata as Record<string, string>,
    tensors,
    float32(name: string): Float32Array {
      const { e, bytes: raw } = data(name);
      return toFloat32(raw, e.dtype);
    },
    firstNonFinite(name: string): number {
      const { e, bytes: raw } = data(name);
      return firstNonFinite(raw, e.dtype);
    },
  };
}
