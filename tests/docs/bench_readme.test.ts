/**
 * bench/results/README.md is generated from the JSON in bench/results/ by `npm run bench:readme`
 * (bench/results_readme.ts): the committed page must be exactly what the script renders now, so
 * it cannot go stale when a result is added, changed or removed.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { README_PATH, formatNumber, renderFile, renderResultsReadme } from '../../bench/results_readme.js';

describe('bench/results/README.md', () => {
  it('is what `npm run bench:readme` renders from bench/results/*.json', () => {
    const committed = readFileSync(README_PATH, 'utf8');
    expect(committed === renderResultsReadme(), 'bench/results/README.md is out of date: run `npm run bench:readme`').toBe(true);
  });

  it('renders a file with its date, command, backend, machine and rows', () => {
    const page = renderFile('x.json', {
      date: '2026-01-02T03:04:05.000Z',
      command: 'npm run bench -- --json x.json',
      machine: 'a 2-core VM',
      code: { commit: 'abcdef0123456789abcdef0123456789abcdef01', dirty: false },
      notes: ['median of 3 repeats'],
      rows: [
        { backend: 'wasm', decoder: 'greedy', k: 1, speedup: 1, acceptance: [], split: { forward: 0.5 } },
        { backend: 'cpu', decoder: 'speculative', k: 4, speedup: 0.8456, acceptance: [0.5, 0.25, 0.125], split: { forward: 2 } },
      ],
    });
    expect(page).toContain('- date: 2026-01-02T03:04:05.000Z');
    expect(page).toContain('- command: `npm run bench -- --json x.json`');
    expect(page).toContain('- backend: wasm, cpu');
    expect(page).toContain('- machine: a 2-core VM');
    expect(page).toContain('- median of 3 repeats');
    expect(page).toContain('| backend | decoder | k | speedup | acceptance |');
    expect(page).toContain('| cpu | speculative | 4 | 0.846 | 0.500 / 0.250 / 0.125 |');
    expect(page).toContain('| backend | decoder | k | forward |'); // the nested object, keyed by the row's names
  });

  it('says so when a file does not record its command or machine', () => {
    const page = renderFile('y.json', { rows: [{ backend: 'wasm', tau: 2 }] });
    expect(page).toContain('- command: not recorded');
    expect(page).toContain('- machine: not recorded');
  });

  it('formats numbers to about three significant places', () => {
    expect([1001.78, 2.1234, 0.98153, 0.0062, 264, Infinity].map(formatNumber)).toEqual(['1001.8', '2.12', '0.982', '0.00620', '264', 'Infinity']);
  });
});
