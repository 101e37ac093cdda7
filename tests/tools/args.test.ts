/**
 * tools/args.ts: the option table of the node-only commands parses typed values, rejects what it
 * does not know with a message naming the flag, and prints every option in `--help`; a camelCase
 * option is shown as a kebab-case flag and read under either spelling.
 */
import { describe, expect, it } from 'vitest';
import { helpText, parseOptions, UsageError } from '../../tools/args.js';

const COMMAND = {
  name: 'demo',
  usage: 'demo [options]',
  summary: 'A command for the tests.',
  options: {
    backend: { type: 'string', default: 'wasm', choices: ['wasm', 'cpu'], help: 'backend' },
    backends: { type: 'strings', default: ['wasm', 'cpu'], choices: ['wasm', 'cpu'], help: 'backends' },
    steps: { type: 'number', default: 3, integer: true, min: 1, help: 'steps' },
    rate: { type: 'number', default: 0.5, help: 'rate' },
    weights: { type: 'numbers', default: [1, 0.8], help: 'weights' },
    name: { type: 'string', default: '', help: 'name' },
    verbose: { type: 'boolean', help: 'more output' },
    reserveSeconds: { type: 'number', default: 90, min: 0, help: 'seconds kept back' },
    draftVocab: { type: 'strings', default: [], help: 'draft vocabularies' },
    dryRun: { type: 'boolean', help: 'do nothing' },
  },
} as const;

const DEFAULTS = { help: false, backend: 'wasm', backends: ['wasm', 'cpu'], steps: 3, rate: 0.5, weights: [1, 0.8], name: '', verbose: false, reserveSeconds: 90, draftVocab: [], dryRun: false };

describe('parseOptions', () => {
  it('fills in every default', () => {
    expect(parseOptions(COMMAND, [])).toEqual(DEFAULTS);
  });

  it('parses typed values and lists', () => {
    const values = parseOptions(COMMAND, ['--backend', 'cpu', '--backends', 'cpu', '--steps', '7', '--rate', '1e-3', '--weights', '1,0.5,0.25', '--name=x', '--verbose']);
    expect(values).toEqual({ ...DEFAULTS, backend: 'cpu', backends: ['cpu'], steps: 7, rate: 1e-3, weights: [1, 0.5, 0.25], name: 'x', verbose: true });
  });

  it.each([
    ['kebab-case, as --help shows them', ['--reserve-seconds', '30', '--draft-vocab=a,b', '--dry-run']],
    ['camelCase, as the option table names them', ['--reserveSeconds', '30', '--draftVocab=a,b', '--dryRun']],
    ['mixed', ['--reserve-seconds=30', '--draftVocab', 'a,b', '--dry-run']],
  ])('reads multi-word options spelt %s', (_, argv) => {
    expect(parseOptions(COMMAND, argv)).toEqual({ ...DEFAULTS, reserveSeconds: 30, draftVocab: ['a', 'b'], dryRun: true });
  });

  it('accepts every flag --help prints', () => {
    const flags = [...helpText(COMMAND).matchAll(/^ {2}(--[a-z-]+)( <)?/gm)].map((m) => ({ flag: m[1]!, takesValue: m[2] !== undefined }));
    expect(flags.map((f) => f.flag)).toEqual(['--backend', '--backends', '--steps', '--rate', '--weights', '--name', '--verbose', '--reserve-seconds', '--draft-vocab', '--dry-run', '--help']);
    for (const { flag, takesValue } of flags) {
      const argv = takesValue ? [`${flag}=${flag === '--backend' || flag === '--backends' ? 'cpu' : '1'}`] : [flag];
      expect(() => parseOptions(COMMAND, argv), flag).not.toThrow();
    }
  });

  it.each([
    [['--bogus', '1'], "Unknown option '--bogus'"],
    [['--steps'], "Option '--steps <value>' argument missing"],
    [['extra'], "Unexpected argument 'extra'"],
    [['--steps', 'ten'], '--steps must be a number, but got "ten".'],
    [['--steps', '2.5'], '--steps must be an integer, but got 2.5.'],
    [['--steps', '0'], '--steps must be at least 1, but got 0.'],
    [['--weights', '1,,2'], '--weights must be a number, but got "".'],
    [['--backend', 'gpu'], '--backend must be one of wasm, cpu, but got "gpu".'],
    [['--backends', 'wasm,gpu'], '--backends must be one of wasm, cpu, but got "gpu".'],
    [['--reserve-seconds=-1'], '--reserve-seconds must be at least 0, but got -1.'],
    [['--reserveSeconds', 'soon'], '--reserve-seconds must be a number, but got "soon".'],
    [['--reserve-seconds', '1', '--reserveSeconds', '2'], '--reserve-seconds must be given once, but got both --reserve-seconds and --reserveSeconds.'],
    [['--reserve_seconds', '1'], "Unknown option '--reserve_seconds'"],
  ])('rejects %j', (argv, message) => {
    expect(() => parseOptions(COMMAND, argv)).toThrow(UsageError);
    expect(() => parseOptions(COMMAND, argv)).toThrow(message);
  });

  it('reads --help and -h', () => {
    expect(parseOptions(COMMAND, ['--help']).help).toBe(true);
    expect(parseOptions(COMMAND, ['-h']).help).toBe(true);
  });
});

describe('helpText', () => {
  it('lists every option with its value form and default, and --help', () => {
    const text = helpText(COMMAND);
    expect(text.split('\n').slice(0, 3)).toEqual(['A command for the tests.', '', 'usage: demo [options]']);
    expect(text).toMatch(/--backend <wasm\|cpu>\s+backend \[default: wasm\]/);
    expect(text).toMatch(/--backends <wasm\|cpu,…>\s+backends \[default: wasm,cpu\]/);
    expect(text).toMatch(/--steps <number>\s+steps \[default: 3\]/);
    expect(text).toMatch(/--weights <number,…>\s+weights \[default: 1,0.8\]/);
    expect(text).toMatch(/--name <string>\s+name \[default: ""\]/);
    expect(text).toMatch(/--verbose\s+more output$/m);
    expect(text).toMatch(/--help\s+print this text and exit$/m);
  });

  it('shows multi-word options as kebab-case flags, never camelCase', () => {
    const text = helpText(COMMAND);
    expect(text).toMatch(/--reserve-seconds <number>\s+seconds kept back \[default: 90\]/);
    expect(text).toMatch(/--draft-vocab <string,…>\s+draft vocabularies \[default: ""\]/);
    expect(text).toMatch(/--dry-run\s+do nothing$/m);
    expect(text).not.toMatch(/--[a-z]+[A-Z]/);
  });
});
