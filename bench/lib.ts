/**
 * What the bench and the demo share: loading the committed checkpoint, the held-out prompts,
 * and small statistics helpers. Node-only (reads files); the library itself never does.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { HELD_OUT_FILES, readLibFile } from '../scripts/lib/corpus.js';
import { loadCheckpoint } from '../scripts/lib/checkpoint.js';

/** The committed checkpoint (written by `npm run train`); `CHECKPOINT=<dir>` overrides it. */
export const CHECKPOINT_DIR = process.env['CHECKPOINT'] ?? new URL('../fixtures/tslib-k4/', import.meta.url).pathname;

export async function loadReferenceModel(): Promise<LayersModel> {
  return loadCheckpoint(CHECKPOINT_DIR);
}

/** Sets the backend named on the command line (`--backend wasm|cpu`, default wasm). */
export async function useBackend(name: string): Promise<void> {
  if (name !== 'wasm' && name !== 'cpu') throw new Error(`--backend must be wasm or cpu, but got ${JSON.stringify(name)}.`);
  if (!(await tf.setBackend(name))) throw new Error(`could not initialize the ${name} backend.`);
  await tf.ready();
}

/**
 * Held-out prompts: `count` snippets of `length` bytes from the files the model never trained
 * on, each starting at the beginning of a line that opens a doc comment or a declaration.
 */
export function heldOutPrompts(count: number, length: number): { file: string; text: string; bytes: number[] }[] {
  const prompts: { file: string; text: string; bytes: number[] }[] = [];
  for (const file of HELD_OUT_FILES) {
    const text = readLibFile(file);
    const lines = text.split('\n');
    let offset = 0;
    for (const line of lines) {
      if (/^\s*(\/\*\*|interface |declare |readonly |\w+\()/.test(line) && offset > 0) break;
      offset += line.length + 1;
    }
    const bytes = Array.from(new TextEncoder().encode(text.slice(offset))).slice(0, length);
    prompts.push({ file, text: new TextDecoder().decode(Uint8Array.from(bytes)), bytes });
    if (prompts.length === count) break;
  }
  return prompts;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function argValue(argv: string[], flag: string, fallback: string): string {
  const i = argv.indexOf(flag);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
}
