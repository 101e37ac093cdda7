/**
 * `readSafetensors`: round trips of F32/F16/BF16 (every 16-bit pattern converts exactly), and one
 * error per malformed header — each thrown before any tensor data is touched, naming the file
 * and the field, in well under a second.
 */
import { describe, expect, it } from 'vitest';
import { readSafetensors, SAFETENSORS_MAX_HEADER_BYTES } from '../../src/models/safetensors.js';
import { bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat, writeSafetensors, type TensorToWrite } from '../helpers/stories.js';

const WHERE = 'loadHfLlama: files.safetensors';

/** A file whose header is exactly `header` (a JSON value or raw text) followed by `data` bytes. */
function rawFile(header: unknown, dataBytes: number, options: { headerSize?: number } = {}): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + dataBytes);
  new DataView(bytes.buffer).setUint32(0, options.headerSize ?? json.length, true);
  bytes.set(json, 8);
  return bytes;
}

/** Asserts `bytes` is rejected with `message`, fast. */
function expectRejected(bytes: Uint8Array, message: string): void {
  const start = performance.now();
  expect(() => readSafetensors(bytes, WHERE)).toThrow(message);
  expect(performance.now() - start).toBeLessThan(1000);
}

describe('readSafetensors: reading', () => {
  it('round-trips F32, F16 and BF16 tensors of any shape, with metadata', () => {
    const values = Float32Array.from({ length: 24 }, (_, i) => Math.fround(Math.sin(i * 1.7) * 3));
    const tensors: TensorToWrite[] = [
      { name: 'a.f32', dtype: 'F32', shape: [2, 3, 4], data: values },
      { name: 'b.f16', dtype: 'F16', shape: [24], data: values },
      { name: 'c.bf16', dtype: 'BF16', shape: [4, 6], data: values },
      { name: 'scalar', dtype: 'F32', shape: [], data: [7.5] },
      { name: 'empty', dtype: 'F16', shape: [0, 5], data: [] },
    ];
    const file = readSafetensors(writeSafetensors(tensors, { format: 'pt' }));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect([...file.tensors.keys()]).toEqual(tensors.map((t) => t.name));
    expect(file.tensors.get('a.f32')).toMatchObject({ dtype: 'F32', shape: [2, 3, 4], byteLength: 96 });
    expect(file.float32('a.f32')).toEqual(values);
    expect(file.float32('b.f16')).toEqual(Float32Array.from(values, (v) => halfToFloat(floatToHalf(v))));
    expect(file.float32('c.bf16')).toEqual(Float32Array.from(values, (v) => bfloat16ToFloat(floatToBfloat16(v))));
    expect(file.float32('scalar')).toEqual(Float32Array.of(7.5));
    expect(file.float32('empty')).toHaveLength(0);
    expect(readSafetensors(writeSafetensors([])).metadata).toEqual({});
  });

  it('converts every F16 and every BF16 bit pattern exactly', () => {
    const patterns = Array.from({ length: 1 << 16 }, (_, h) => h);
    const half = new Uint8Array(new Uint16Array(patterns).buffer);
    const header = { h: { dtype: 'F16', shape: [1 << 16], data_offsets: [0, 1 << 17] }, b: { dtype: 'BF16', shape: [1 << 16], data_offsets: [1 << 17, 1 << 18] } };
    const bytes = rawFile(header, 1 << 18);
    const dataStart = bytes.length - (1 << 18);
    bytes.set(half, dataStart);
    bytes.set(half, dataStart + (1 << 17));
    const file = readSafetensors(bytes);
    const [h, b] = [file.float32('h'), file.float32('b')];
    // Object.is: ±0 distinguished, NaN equals NaN (payloads are not checked), every other value exact
    const differ = (got: Float32Array, want: (p: number) => number) => patterns.filter((p) => !Object.is(got[p], Math.fround(want(p))));
    expect(differ(h, halfToFloat)).toEqual([]);
    expect(differ(b, bfloat16ToFloat)).toEqual([]);
    // spot values of the formats (binary16: 1 = 0x3C00, largest 65504 = 0x7BFF, smallest subnormal 2⁻²⁴ = 0x0001)
    expect([h[0x3c00], h[0xc000], h[0x7bff], h[0x0001], h[0x0400], h[0x7c00], h[0x8000]]).toEqual([1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -0]);
    expect([b[0x3f80], b[0xc000], b[0x7f80]]).toEqual([1, -2, Infinity]);
  });

  it('finds the first NaN or infinity of each dtype on the stored bits', () => {
    const tensors: TensorToWrite[] = [
      { name: 'clean', dtype: 'F32', shape: [3], data: [1, -2, 3.5] },
      { name: 'f32', dtype: 'F32', shape: [4], data: [0, 1, NaN, Infinity] },
      { name: 'f16', dtype: 'F16', shape: [3], data: [1, 1e6, NaN] }, // 1e6 overflows F16 to Infinity
      { name: 'bf16', dtype: 'BF16', shape: [3], data: [1, 2, -Infinity] },
      { name: 'largest', dtype: 'F16', shape: [2], data: [65504, -65504] },
    ];
    const file = readSafetensors(writeSafetensors(tensors));
    expect(tensors.map((t) => file.firstNonFinite(t.name))).toEqual([-1, 2, 1, 2, -1]);
  });
});

describe('readSafetensors: malformed files fail before reading data', () => {
  const ok = { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };

  it('a header size claiming gigabytes (u64) fails on the bound, before any allocation', () => {
    const bytes = rawFile(ok, 16);
    new DataView(bytes.buffer).setUint32(4, 1, true); // 4 GiB + the real size
    expectRejected(bytes, `${WHERE}: header size must be at most ${SAFETENSORS_MAX_HEADER_BYTES} bytes, but got ${2 ** 32 + 57}.`);
    expectRejected(rawFile(ok, 16, { headerSize: SAFETENSORS_MAX_HEADER_BYTES + 1 }), `${WHERE}: header size must be at most ${SAFETENSORS_MAX_HEADER_BYTES} bytes`);
  });

  it.each([
    ['shorter than the size field', new Uint8Array(5), `${WHERE}: file is truncated: it must hold the 8-byte header size, but has 5 bytes.`],
    ['a header size past the end', rawFile(ok, 0, { headerSize: 900 }), `${WHERE}: file is truncated: the header size says 900 bytes, but only 57 follow it.`],
    ['a header that is not JSON', rawFile('{"w": [', 0), `${WHERE}: header must be UTF-8 JSON, but parsing failed`],
    ['a header that is not UTF-8', rawFile('{"\xff"}', 0).map((b, i, a) => (i === a.length - 3 ? 0xff : b)), `${WHERE}: header must be UTF-8 JSON`],
    ['a header that is an array', rawFile([1, 2], 0), `${WHERE}: header must be a JSON object, but got [1, 2].`],
    ['metadata that is not strings', rawFile({ __metadata__: { epoch: 3 } }, 0), `${WHERE}: header.__metadata__ must be an object of strings, but got an object (Object).`],
    ['an entry that is not an object', rawFile({ w: 5 }, 0), `${WHERE}: tensor "w" must be an object { dtype, shape, data_offsets }, but got 5.`],
    ['an unknown dtype', rawFile({ w: { ...ok.w, dtype: 'Q4_K' } }, 16), `${WHERE}: tensor "w" dtype must be F32, F16 or BF16 (unknown dtype), but got "Q4_K".`],
    ['an unsupported dtype', rawFile({ w: { ...ok.w, dtype: 'I32' } }, 16), `${WHERE}: tensor "w" dtype must be F32, F16 or BF16 (unsupported dtype), but got "I32".`],
    ['a negative dimension', rawFile({ w: { ...ok.w, shape: [2, -2] } }, 16), `${WHERE}: tensor "w" shape must be an array of non-negative integers, but got [2, -2].`],
    ['a shape of gigabytes', rawFile({ w: { ...ok.w, shape: [65536, 65536] } }, 16), `${WHERE}: tensor "w" shape must have at most 2147483648 elements, but got [65536, 65536].`],
    ['offsets that are not [begin, end]', rawFile({ w: { ...ok.w, data_offsets: [16, 0] } }, 16), `${WHERE}: tensor "w" data_offsets must be [begin, end] with integers 0 ≤ begin ≤ end, but got [16, 0].`],
    ['shape × dtype size ≠ byte length', rawFile({ w: { ...ok.w, dtype: 'F16' } }, 16), `${WHERE}: tensor "w" data_offsets must span shape × dtype size = 8 bytes ([2, 2] × F16), but got [0, 16].`],
    ['data past the end of the file (truncated)', rawFile(ok, 12), `${WHERE}: tensor "w" data_offsets must lie inside the file's 12 data bytes (the file is truncated or the offsets are wrong), but got [0, 16].`],
    [
      'overlapping tensors',
      rawFile({ a: ok.w, b: { dtype: 'F16', shape: [4], data_offsets: [8, 16] } }, 16),
      `${WHERE}: tensor "b" data_offsets must not overlap tensor "a" (bytes up to 16), but got [8, 16].`,
    ],
  ])('%s', (_, bytes, message) => expectRejected(bytes, message));

  it('asks for a tensor that is not there, and for bytes', () => {
    expect(() => readSafetensors(rawFile(ok, 16), WHERE).float32('v')).toThrow(`${WHERE}: tensor must be in the file, but got "v".`);
    expect(() => readSafetensors([1, 2] as unknown as Uint8Array)).toThrow('readSafetensors: bytes: file must be a Uint8Array, but got [1, 2].');
  });
});
