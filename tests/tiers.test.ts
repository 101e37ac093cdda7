/**
 * The tiers of tests/tiers.ts as vitest runs them: every test file in exactly one project, and
 * each in the tier of what it uses — Chromium → browser, dist/ or the package by name → package,
 * ../shared's models and tokenizers → models, nothing of these → unit. The uses are read from the
 * file's own text: the helpers that reach ../shared are named in SHARED_ACCESS.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TIER_FILES, tierOf, TIERS, type Tier } from './tiers.js';

const ROOT = resolve(__dirname, '..');

/** What puts a file in a tier other than unit, checked in this order. */
const NEEDS: [Exclude<Tier, 'unit'>, RegExp][] = [
  ['browser', /\b(startHarness|launchChromium|playwright-core)\b/],
  ['package', /\bdist\/|from ['"]tfjs-mtp(\/models)?['"]/],
  // ../shared directly, or a helper that reads it (tests/helpers/stories.ts, hf_models.ts).
  ['models', /\.\.\/shared\/|\b(STORIES_DIR|storiesPath|storiesAvailable|readStories|storiesReference|GPT2_TOKENIZER_DIR|gpt2Available|writeHfFolder)\b/],
];

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
const testFiles = walk(join(ROOT, 'tests'))
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => relative(ROOT, f).split('\\').join('/'))
  .sort();

/** The tier a file's text asks for (this file's text is the patterns themselves: unit). */
function needed(file: string): Tier {
  if (file === 'tests/tiers.test.ts') return 'unit';
  const text = readFileSync(join(ROOT, file), 'utf8');
  return NEEDS.find(([, uses]) => uses.test(text))?.[0] ?? 'unit';
}

describe('test tiers', () => {
  it('vitest puts every test file in exactly one project, the tier tests/tiers.ts gives it', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'list', '--filesOnly', '--json'], { cwd: ROOT });
    const listed = (JSON.parse(stdout) as { file: string; projectName: string }[]).map(({ file, projectName }) => `${relative(ROOT, file).split('\\').join('/')} ${projectName}`);
    expect(listed.sort()).toEqual(testFiles.map((f) => `${f} ${tierOf(f)}`));
  });

  it('every listed entry is a test file or a folder of them, listed once', () => {
    const entries: string[] = Object.values(TIER_FILES).flat();
    expect(new Set(entries).size).toBe(entries.length);
    for (const entry of entries) expect(testFiles.some((f) => (entry.endsWith('/') ? f.startsWith(entry) : f === entry)), `${entry} (tests/tiers.ts) matches no test file`).toBe(true);
  });

  it.each(TIERS)('each %s file uses what its tier is for, and nothing of an earlier tier', (tier) => {
    const wrong = testFiles.filter((f) => tierOf(f) === tier && needed(f) !== tier).map((f) => `${f} needs the ${needed(f)} tier`);
    expect(wrong, 'move these files in tests/tiers.ts').toEqual([]);
  });
});
