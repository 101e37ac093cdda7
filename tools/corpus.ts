/**
 * The training corpus: TypeScript's own `lib.*.d.ts` declaration files (ECMAScript and DOM APIs
 * as code plus English doc comments; written by the TypeScript team, not by this project),
 * byte-tokenized. A fixed list of files is held out for evaluation and for the demo's prompts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Files never trained on: distinct APIs whose text does not recur in the training files. */
export const HELD_OUT_FILES = [
  'lib.decorators.d.ts',
  'lib.es2015.collection.d.ts',
  'lib.es2015.promise.d.ts',
  'lib.es2015.proxy.d.ts',
  'lib.es2015.reflect.d.ts',
  'lib.es2017.sharedmemory.d.ts',
  'lib.es2018.asyncgenerator.d.ts',
  'lib.es2021.weakref.d.ts',
  'lib.es2022.error.d.ts',
  'lib.esnext.disposable.d.ts',
] as const;

/** The directory holding TypeScript's lib files (resolved through node's module lookup). */
export function typescriptLibDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('typescript/lib/lib.d.ts'));
}

/** Every file's text minus the Apache license header it starts with (identical in all 99). */
export function readLibFile(name: string, dir = typescriptLibDir()): string {
  const text = readFileSync(join(dir, name), 'utf8');
  return text.replace(/^\/\*! \*{10,}[\s\S]*?\*{10,} \*\/\s*/, '');
}

export interface Corpus {
  trainFiles: string[];
  heldOutFiles: string[];
  train: Uint8Array; // bytes of all training files, concatenated
  heldOut: Uint8Array; // bytes of the held-out files, concatenated
  typescriptVersion: string;
}

/** Loads and splits the corpus (deterministic: files in sorted order). */
export function loadCorpus(): Corpus {
  const dir = typescriptLibDir();
  const all = readdirSync(dir).filter((f) => /^lib\..*\.d\.ts$/.test(f)).sort();
  const heldOutFiles = all.filter((f) => (HELD_OUT_FILES as readonly string[]).includes(f));
  const trainFiles = all.filter((f) => !heldOutFiles.includes(f));
  const bytes = (files: string[]) => new TextEncoder().encode(files.map((f) => readLibFile(f, dir)).join('\n'));
  const pkg = JSON.parse(readFileSync(join(dir, '..', 'package.json'), 'utf8')) as { version: string };
  return { trainFiles, heldOutFiles, train: bytes(trainFiles), heldOut: bytes(heldOutFiles), typescriptVersion: pkg.version };
}

/** Mulberry32: a small seeded PRNG, so the batches are reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` windows of `length` bytes starting at random offsets, as a flat Int32Array. */
export function sampleWindows(data: Uint8Array, count: number, length: number, random: () => number): Int32Array {
  const out = new Int32Array(count * length);
  for (let i = 0; i < count; i++) {
    const start = Math.floor(random() * (data.length - length));
    out.set(data.subarray(start, start + length), i * length);
  }
  return out;
}

/** Consecutive non-overlapping windows (for a deterministic evaluation). */
export function strideWindows(data: Uint8Array, count: number, length: number): Int32Array {
  const stride = Math.floor((data.length - length) / Math.max(1, count - 1));
  const out = new Int32Array(count * length);
  for (let i = 0; i < count; i++) out.set(data.subarray(i * stride, i * stride + length), i * length);
  return out;
}
