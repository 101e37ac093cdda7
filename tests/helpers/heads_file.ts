/** Draft-heads files for the tests: a file's manifest, and the same file with its manifest rewritten (weights kept). */

/** The JSON manifest of a draft-heads file and its byte length. */
export function readManifest(bytes: Uint8Array): { manifest: Record<string, unknown>; length: number } {
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  return { manifest: JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + length))) as Record<string, unknown>, length };
}

/** `bytes` with manifest `m` instead of its own, followed by `tail` (default: the file's own weights). */
export function withManifest(bytes: Uint8Array, m: Record<string, unknown>, tail?: Uint8Array): Uint8Array {
  const n = readManifest(bytes).length;
  const weights = tail ?? bytes.subarray(12 + n + ((4 - (n % 4)) % 4));
  const json = new TextEncoder().encode(JSON.stringify(m));
  const pad = (4 - (json.length % 4)) % 4;
  const out = new Uint8Array(12 + json.length + pad + weights.length);
  out.set(bytes.subarray(0, 8));
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(weights, 12 + json.length + pad);
  return out;
}
