/**
 * Reading a loader's file: its bytes as given, or fetched from a URL, with the prefix every error
 * about it starts with (`fn: arg`, and the URL when fetched). Shared by every loader.
 */
import { fail, show } from '../internal/errors.js';

/** A file's contents: its bytes, or a URL to fetch them from. @inline */
export type BytesSource = ArrayBuffer | Uint8Array | string;

/** A file read by {@link readBytes}, and the prefix its errors start with. */
export interface ReadFile {
  /** The file's bytes. */
  bytes: Uint8Array;
  /** `fn: arg` (bytes) or `fn: arg "url"` (fetched): names the file in every error about it. */
  where: string;
}

/**
 * Reads a {@link BytesSource}: bytes are viewed as they are, a URL is fetched (an HTTP error or
 * a network failure throws naming `fn`, `arg` and the URL).
 * @internal shared by the loaders
 */
export async function readBytes(source: BytesSource, fn: string, arg: string): Promise<ReadFile> {
  if (source instanceof Uint8Array) return { bytes: source, where: `${fn}: ${arg}` };
  if (source instanceof ArrayBuffer) return { bytes: new Uint8Array(source), where: `${fn}: ${arg}` };
  if (typeof source !== 'string') fail(TypeError, fn, arg, 'must be an ArrayBuffer, a Uint8Array or a URL string', source);
  const where = `${fn}: ${arg} ${show(source)}`;
  return { bytes: (await fetchBytes(source, where, false))!, where };
}

/**
 * The bytes at `url`; a network failure or an HTTP error throws naming `where` — except a 404
 * when `optional` (an optional file of a folder), which resolves to undefined.
 * @internal shared by the loaders
 */
export async function fetchBytes(url: string, where: string, optional: boolean): Promise<Uint8Array | undefined> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`${where}: fetching failed (${(error as Error).message}).`);
  }
  if (optional && response.status === 404) return undefined;
  if (!response.ok) throw new Error(`${where}: fetching failed with HTTP ${response.status} ${response.statusText}.`);
  return new Uint8Array(await response.arrayBuffer());
}
