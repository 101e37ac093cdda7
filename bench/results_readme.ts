/**
 * `npm run bench:readme` — writes bench/results/README.md from every JSON in bench/results/: one
 * section per file (newest first) with its date, command, backends, machine and code version, its
 * notes, and each array of measured rows as a markdown table. The page is generated, so it says
 * only what the JSON says; `tests/docs/bench_readme.test.ts` fails when the committed page differs
 * from what this script renders.
 *
 *     npm run bench:readme            # rewrite bench/results/README.md
 *     npm run bench:readme -- --check # exit 1 if the committed page is out of date
 *
 * package.json runs it after `npm run bench`, `bench:scale`, `bench:adapt` and `bench:browser-tree`
 * (npm's post-scripts), so a run written with `--json bench/results/…` lands on the page at once.
 *
 * The rendering is generic (no per-bench layout), so a new bench's JSON needs no change here:
 * scalars become fields, arrays of objects become tables, objects nested in a table's rows become
 * tables of their own keyed by the row's names.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The folder the benches write their JSON to, and the page rendered from it. */
export const RESULTS_DIR = fileURLToPath(new URL('results/', import.meta.url));
export const README_PATH = join(RESULTS_DIR, 'README.md');

/**
 * The commands of files written before the benches recorded their own command line, as the guide
 * pages that quoted those files gave them. A JSON with a `command` field never needs an entry.
 */
const COMMANDS_OF_OLDER_FILES: Record<string, string> = {
  '2026-12-07-tslib-k4-wasm-cpu.json': 'npm run bench -- --backends wasm,cpu --repeats 3 --json bench/results/2026-12-07-tslib-k4-wasm-cpu.json',
  '2026-12-07-heads-stories260K-wasm-cpu.json':
    'npm run bench -- --model ../shared/models/stories260K --heads fixtures/stories260k-heads/sequential-k4.bin,fixtures/stories260k-heads/mlp-k4.bin --backends wasm,cpu --repeats 3 --json bench/results/2026-12-07-heads-stories260K-wasm-cpu.json',
  '2026-11-28-heads-stories260K-wasm-cpu-retrained.json':
    'npm run bench -- --model ../shared/models/stories260K --heads fixtures/stories260k-heads/mlp-k4.bin,fixtures/stories260k-heads/sequential-k4.bin --backends wasm,cpu --repeats 3 --json bench/results/2026-11-28-heads-stories260K-wasm-cpu-retrained.json',
  '2026-11-28-heads-tslib-k4-sequential-wasm.json':
    'npm run bench -- --heads fixtures/tslib-k4-heads/sequential-k4.bin --backends wasm --repeats 3 --json bench/results/2026-11-28-heads-tslib-k4-sequential-wasm.json',
  '2026-11-28-stories260K-wasm-cpu.json': 'npm run bench -- --model ../shared/models/stories260K --repeats 5 --json bench.json',
  '2026-11-28-tree-tslib-k4-wasm-cpu-run3.json': 'npm run bench -- --tree --backends wasm,cpu --repeats 5 --json out.json',
  '2026-11-28-tree-stories260K-heads-wasm-cpu-run2.json':
    'npm run bench -- --tree --model ../shared/models/stories260K --heads fixtures/stories260k-heads/mlp-k4.bin,fixtures/stories260k-heads/sequential-k4.bin --backends wasm,cpu --repeats 3 --prompts 8 --json out.json',
  '2026-11-28-tree-tslib-k4-wasm-cpu-auto.json': 'npm run bench -- --tree --backends wasm,cpu --repeats 3',
  '2026-11-28-tree-tslib-k4-wasm-quieter.json': 'npm run bench -- --tree --backends wasm --repeats 3',
  '2026-11-28-tree-stories260K-heads-wasm-quieter.json':
    'npm run bench -- --tree --model ../shared/models/stories260K --heads fixtures/stories260k-heads/mlp-k4.bin,fixtures/stories260k-heads/sequential-k4.bin --backends wasm --repeats 3 --prompts 8',
  '2026-11-28-tree-browser-tslib-k4-run2.json': 'npx tsx bench/tree_browser.ts --backends webgl,webgpu --prompts 2 --tokens 32 --json out.json',
  '2026-11-28-tree-browser-tslib-k4-auto.json': 'npx tsx bench/tree_browser.ts --backends webgl,webgpu --prompts 2 --tokens 32 --json out.json',
  '2026-11-28-tree-browser-stories260K-mlp.json':
    'npx tsx bench/tree_browser.ts --model ../shared/models/stories260K --heads fixtures/stories260k-heads/mlp-k4.bin --backends webgl,webgpu --prompts 2 --tokens 32',
};

/** Keys that name a row (besides its strings) when an object nested in it gets its own table. */
const NAME_KEYS = new Set(['k', 'draftVocab', 'maxShare', 'treeNodes', 'yieldEveryMs']);
/** Arrays of objects longer than this get one table, without tables for what is nested in each entry. */
const MAX_EXPANDED_ROWS = 30;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: Json | undefined): boolean => v === null || ['boolean', 'number', 'string'].includes(typeof v);
const isTable = (v: Json | undefined): v is JsonObject[] => Array.isArray(v) && v.length > 0 && v.every(isObject);
/** An array of small records, e.g. `[{ nodes: 1, ms: 2.1 }, …]`: written inline in one cell. */
const isPairList = (v: Json | undefined): v is JsonObject[] =>
  isTable(v) && v.every((o) => Object.keys(o).length === 2 && Object.values(o).every(isScalar));

/** A number as a reader wants it: integers whole, others to about three significant places. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return x.toFixed(a >= 100 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 5);
}

function cell(v: Json | undefined): string {
  if (v === undefined || v === null) return '–';
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string') return v.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  if (isPairList(v)) return v.map((o) => Object.values(o).map(cell).join(': ')).join(', ');
  if (Array.isArray(v)) return v.length === 0 ? '–' : v.every(isScalar) ? v.map(cell).join(' / ') : `${v.length} entries (see the JSON)`;
  return Object.entries(v).map(([k, x]) => `${k} ${cell(x)}`).join(', ');
}

function table(rows: JsonObject[], columns: string[]): string {
  const numeric = columns.map((c) => rows.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === 'number'));
  const head = `| ${columns.join(' | ')} |`;
  const rule = `|${numeric.map((n) => (n ? '---:' : '---')).join('|')}|`;
  return [head, rule, ...rows.map((r) => `| ${columns.map((c) => cell(r[c])).join(' | ')} |`)].join('\n');
}

/** Columns shown in a row table: every key whose values are scalars, scalar arrays or pair lists. */
function inlineColumns(rows: JsonObject[]): string[] {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return keys.filter((k) => rows.every((r) => r[k] === undefined || isScalar(r[k]) || (Array.isArray(r[k]) && ((r[k] as Json[]).every(isScalar) || isPairList(r[k])))));
}

function nameColumns(rows: JsonObject[]): string[] {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return keys.filter((k) => NAME_KEYS.has(k) || rows.every((r) => r[k] === undefined || typeof r[k] === 'string'));
}

/** One array of rows: its table, then a table per key holding objects or row arrays in the rows. */
function renderRows(title: string, rows: JsonObject[], out: string[]): void {
  out.push(`#### ${title}`, '', table(rows, inlineColumns(rows)), '');
  const names = nameColumns(rows);
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  for (const key of keys) {
    const nested = rows.map((r) => r[key]);
    if (nested.some(isObject) && nested.every((v) => v === undefined || v === null || isObject(v))) {
      const flat = rows.flatMap((r) => (isObject(r[key]) ? [{ ...Object.fromEntries(names.map((n) => [n, r[n] ?? null])), ...(r[key] as JsonObject) }] : []));
      if (flat.every((r) => Object.values(r).every((v) => isScalar(v) || (Array.isArray(v) && v.every(isScalar)) || isPairList(v)))) {
        out.push(`#### ${title}: \`${key}\``, '', table(flat, [...new Set(flat.flatMap((r) => Object.keys(r)))]), '');
      } else if (rows.length <= MAX_EXPANDED_ROWS) {
        rows.forEach((r, i) => isObject(r[key]) && renderObject(`${title} ${rowName(r, names, i)}: \`${key}\``, r[key] as JsonObject, out));
      }
    } else if (rows.length <= MAX_EXPANDED_ROWS && nested.some((v) => isTable(v) && !isPairList(v))) {
      rows.forEach((r, i) => isTable(r[key]) && !isPairList(r[key]) && renderRows(`${title} ${rowName(r, names, i)}: \`${key}\``, r[key] as JsonObject[], out));
    }
  }
}

function rowName(r: JsonObject, names: string[], i: number): string {
  const parts = names.filter((n) => r[n] !== undefined && r[n] !== null).map((n) => `${n} ${cell(r[n])}`);
  return parts.length > 0 ? `(${parts.join(', ')})` : `[${i}]`;
}

/** An object below the top level: its scalars as a list, its row arrays as tables, recursively. */
function renderObject(title: string, o: JsonObject, out: string[]): void {
  const fields = Object.entries(o).filter(([, v]) => !isTable(v) || isPairList(v)).filter(([, v]) => !isObject(v));
  if (fields.length > 0) out.push(`#### ${title}`, '', ...fields.map(([k, v]) => `- ${k}: ${cell(v)}`), '');
  for (const [k, v] of Object.entries(o)) {
    if (isObject(v)) renderObject(`${title} › ${k}`, v, out);
    else if (isTable(v) && !isPairList(v)) renderRows(`${title} › ${k}`, v, out);
  }
}

/** Every `backend` value anywhere in the file, in order of appearance. */
function backends(j: Json, found = new Set<string>()): string[] {
  if (Array.isArray(j)) j.forEach((v) => backends(v, found));
  else if (isObject(j)) {
    for (const [k, v] of Object.entries(j)) {
      if (k === 'backend' && typeof v === 'string') found.add(v);
      else if (k === 'backends' && Array.isArray(v)) v.forEach((b) => typeof b === 'string' && found.add(b));
      else backends(v, found);
    }
  }
  return [...found];
}

function codeVersion(code: Json | undefined): string {
  if (typeof code === 'string') return `\`${code}\``;
  if (isObject(code) && typeof code.commit === 'string') return `\`${code.commit.slice(0, 7)}\`${code.dirty ? ' with uncommitted changes' : ''}`;
  return 'not recorded';
}

/** The section of one results file. */
export function renderFile(name: string, j: Json): string {
  const o: JsonObject = isObject(j) ? j : { rows: j };
  const command = typeof o.command === 'string' ? o.command : COMMANDS_OF_OLDER_FILES[name];
  const machine = [o.machine, o.browser].filter((v): v is string => typeof v === 'string');
  const out = [
    `## ${name}`,
    '',
    `- date: ${typeof o.date === 'string' ? o.date : 'not recorded'}`,
    `- command: ${command ? `\`${command}\`${typeof o.command === 'string' ? '' : ' (not in the JSON: as the guides quoted it)'}` : 'not recorded'}`,
    `- backend: ${backends(o).join(', ') || 'not recorded'}`,
    `- machine: ${machine.length > 0 ? machine.join('; ') : 'not recorded'}`,
    `- code: ${codeVersion(o.code)}`,
  ];
  const skip = new Set(['date', 'command', 'machine', 'browser', 'code', 'notes', 'note', 'backend']);
  for (const [k, v] of Object.entries(o)) {
    if (!skip.has(k) && (isScalar(v) || (Array.isArray(v) && (v.every(isScalar) || isPairList(v))))) out.push(`- ${k}: ${cell(v)}`);
  }
  const notes = [o.notes, o.note].flat().filter((v): v is string => typeof v === 'string');
  if (notes.length > 0) out.push('', 'Notes:', '', ...notes.map((n) => `- ${n.replace(/\n/g, ' ')}`));
  out.push('');
  for (const [k, v] of Object.entries(o)) {
    if (skip.has(k)) continue;
    if (isObject(v)) renderObject(`\`${k}\``, v, out);
    else if (isTable(v) && !isPairList(v)) renderRows(`\`${k}\``, v, out);
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd();
}

/** The whole page, from every `*.json` in `dir`, newest first. */
export function renderResultsReadme(dir = RESULTS_DIR): string {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .reverse();
  const sections = files.map((f) => renderFile(f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as Json));
  return [
    '# Benchmark results',
    '',
    '<!-- Generated by `npm run bench:readme` (bench/results_readme.ts) from the JSON files in this folder. Do not edit by hand. -->',
    '',
    'Every JSON a bench wrote here, rendered as it is: the date, the command, the backends, the',
    'machine and the code it measured, then its rows. The guide pages (docs/performance.md and the',
    'others) quote the numbers a user needs and link here for the full record. To add a run, pass',
    '`--json bench/results/<date>-<what>.json` to the bench: `npm run bench`, `bench:scale`,',
    '`bench:adapt` and `bench:browser-tree` regenerate this page when they finish, and',
    '`npm run bench:readme` does it by hand (after `examples/browser/race.ts --out`, for instance).',
    '',
    '| file | date | command |',
    '|---|---|---|',
    ...files.map((f) => {
      const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Json;
      const o: JsonObject = isObject(j) ? j : {};
      const command = typeof o.command === 'string' ? o.command : COMMANDS_OF_OLDER_FILES[f];
      const anchor = f.toLowerCase().replace(/[^a-z0-9 -]/g, '');
      return `| [${f}](#${anchor}) | ${typeof o.date === 'string' ? o.date.slice(0, 10) : '–'} | ${command ? `\`${command.split(' --json')[0]!.replace(/ --$/, '')}\`` : 'not recorded'} |`;
    }),
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const page = renderResultsReadme();
  if (process.argv.includes('--check')) {
    const committed = readFileSync(README_PATH, 'utf8');
    if (committed !== page) {
      console.error('bench:readme: bench/results/README.md is out of date; run `npm run bench:readme`.');
      process.exit(1);
    }
    console.log('bench:readme: bench/results/README.md is up to date');
  } else {
    writeFileSync(README_PATH, page);
    console.log(`bench:readme: wrote ${README_PATH}`);
  }
}
