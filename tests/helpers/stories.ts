/**
 * Where the tests find stories260K (a real pretrained llama2.c model, see its README): in
 * `<repo>/../shared/models/stories260K/`, never inside the repository. The reference outputs
 * (prompt ids and greedy text) are read from that README, so the tests assert what it states.
 *
 * Files missing: the suites that need them skip with a loud warning, or fail when `CI` is set
 * (the same rule as the browser suites and a missing Chromium).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `<repo>/../shared/models/stories260K`, resolved from this file (tests/helpers/ inside the repo). */
export const STORIES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/models/stories260K');

/** The two data files and their SHA-256 from the README (checked on read, so a wrong copy fails loudly). */
const FILES = {
  checkpoint: { name: 'stories260K.bin', sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' },
  tokenizer: { name: 'tok512.bin', sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312' },
} as const;

/** Absolute path of one of the data files. */
export function storiesPath(file: keyof typeof FILES | 'readme'): string {
  return join(STORIES_DIR, file === 'readme' ? 'README.md' : FILES[file].name);
}

/**
 * Whether the suite `suite` can run. Files present: true. Missing: a loud warning and false (the
 * suite skips) — except under CI (`process.env.CI` set), where it throws.
 */
export function storiesAvailable(suite: string): boolean {
  const missing = (['checkpoint', 'tokenizer', 'readme'] as const).map(storiesPath).filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const message = `${suite}: stories260K data missing (${missing.join(', ')}); it lives in <repo>/../shared/models/stories260K/.`;
  if (process.env.CI) throw new Error(`${message} CI is set, so the suite fails instead of skipping.`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING stories260K TESTS — ${message}\n${bar}\n`);
  return false;
}

/** Reads a data file as a fresh Uint8Array, after checking its SHA-256 against the README's. */
export function readStories(file: keyof typeof FILES): Uint8Array {
  const bytes = new Uint8Array(readFileSync(storiesPath(file)));
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== FILES[file].sha256) throw new Error(`readStories: ${FILES[file].name} has SHA-256 ${digest}, but the README pins ${FILES[file].sha256}.`);
  return bytes;
}

/** The README's reference: the prompt, its ids, the greedy text and how many tokens it spans. */
export interface StoriesReference {
  prompt: string;
  promptIds: number[];
  greedyText: string;
  /**
   * run.c's `steps`: forwards, one per position, prompt included; the text is the tokens after
   * BOS, `steps` of them, so `steps + 1 − promptIds.length` are generated.
   */
  steps: number;
}

/** Parses the "Reference outputs" section of the README (so the tests assert its exact words). */
export function storiesReference(): StoriesReference {
  const readme = readFileSync(storiesPath('readme'), 'utf8');
  const prompt = /Prompt `([^`]+)` encodes to `\[([\d, ]+)\]`/.exec(readme);
  const steps = /(\d+) steps\s+in total counting the prompt/.exec(readme);
  const block = /\n\n((?: {4}.*\n)+)/.exec(readme.slice(readme.indexOf('Greedy continuation')));
  if (!prompt || !steps || !block) throw new Error(`storiesReference: ${storiesPath('readme')} has no reference section in the expected form.`);
  const greedyText = block[1]!
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.slice(4))
    .join('\n');
  return { prompt: prompt[1]!, promptIds: prompt[2]!.split(',').map((s) => Number(s.trim())), greedyText, steps: Number(steps[1]) };
}
