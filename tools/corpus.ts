/**
 * The training corpus: TypeScript's own `lib.*.d.ts` declaration files (ECMAScript and DOM APIs
 * as code plus English doc comments; written by the TypeScript team, not by this project),
 * byte-tokenized. A fixed list of files is held out for evaluation and for the bench's prompts.
 * The one reader of those files for scripts, bench and tests.
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

/** A lib file's text minus the Apache license header every one starts with. */
export function readLibFile(name: string, dir = typescriptLibDir()): string {
  const text = readFileSync(join(dir, name), 'utf8');
  return text.replace(/^\/\*! \*{10,}[\s\S]*?\*{10,} \*\/\s*/, '');
}

/** The byte-level training corpus, split. */
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

/** A prompt: its source file, its text and its bytes (the byte-level model's token ids). */
export interface Prompt {
  file: string;
  text: string;
  bytes: number[];
}

/**
 * Held-out prompts: `count` snippets of `length` bytes, one from each held-out file in order,
 * each starting at the first line after the file's start that opens a doc comment or a declaration.
 */
export function heldOutPrompts(count: number, length: number): Prompt[] {
  return HELD_OUT_FILES.slice(0, count).map((file) => {
    const text = readLibFile(file);
    let offset = 0;
    for (const line of text.split('\n')) {
      if (/^\s*(\/\*\*|interface |declare |readonly |\w+\()/.test(line) && offset > 0) break;
      offset += line.length + 1;
    }
    const bytes = Array.from(new TextEncoder().encode(text.slice(offset))).slice(0, length);
    return { file, text: new TextDecoder().decode(Uint8Array.from(bytes)), bytes };
  });
}
