/**
 * The guides, the README and the source describe what the code does, not how it got there: no
 * issue-tracker references (a user never sees the tracker), no commit hashes, no measurement
 * narration ("this session", "reverted", run dates). Measurements and their dates live in
 * bench/results/README.md, generated from the benches' JSON.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|js|mjs|cjs)$/.test(name) ? [path] : [];
  });
}

const files = [
  join(root, 'README.md'),
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(root, 'docs', f)),
  ...sources(join(root, 'src')),
].map((path) => relative(root, path));

/** What a page must not say, each with why. */
export const FORBIDDEN: [string, RegExp][] = [
  ['an issue-tracker reference', /\bissues? #\d+|#\d+ ?§/i],
  ["the issue's targets", /\bthe issue'?s\b/i],
  ['a commit hash in backticks', /`(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}`/],
  ['a commit hash', /(?<![.\w])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}(?![\w])/],
  ['measurement narration', /\b(this|previous|last|earlier|next) session\b|\breverted\b|\bfor the record\b|\bthe earlier step\b|\bload average\b/i],
  ['a run date (link to bench/results instead)', /\b20\d\d-\d\d-\d\d\b/],
];

/** Results files (named by date), their paths and their anchors on the generated page are citations, not narration. */
const withoutResultLinks = (line: string) => line.replace(/bench\/results\/[\w.#-]+/g, '').replace(/[\w-]+\.json\b/g, '').replace(/\]\(#[\w-]+\)/g, '');

function findings(file: string): string[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  return lines.flatMap((line, i) =>
    FORBIDDEN.filter(([, re]) => re.test(withoutResultLinks(line))).map(([what]) => `${file}:${i + 1}: ${what}: ${line.trim().slice(0, 160)}`),
  );
}

describe('no history in README.md, docs/ and src/', () => {
  it('checks every file', () => {
    expect(files).toContain('README.md');
    expect(files.filter((f) => f.startsWith('docs/')).length).toBeGreaterThan(5);
    expect(files.filter((f) => f.startsWith('src/')).length).toBeGreaterThan(50);
  });

  it('finds no issue references, commit hashes or measurement narration', () => {
    expect(files.flatMap(findings)).toEqual([]);
  });

  it('recognises what it forbids, and leaves paper references and numbers alone', () => {
    const hit = (s: string) => FORBIDDEN.some(([, re]) => re.test(withoutResultLinks(s)));
    for (const s of ['(issue #10 §1)', 'issue #13, §4', "the issue's target", 'at commit 7827fa3', 'code `3f5809f`', 'this session', 'measured 2026-12-07']) {
      expect(hit(s), s).toBe(true);
    }
    for (const s of ['Medusa §2.3.1', 'EAGLE-2 §4.1', '-1.0000000150474662e30', 'see bench/results/2026-12-07-scale-wasm-cpu.json', 'seed 0x9e3779b9', '[x](#2026-12-07-scale-wasm-cpujson)']) {
      expect(hit(s), s).toBe(false);
    }
  });
});
