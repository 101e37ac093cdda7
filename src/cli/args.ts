/**
 * The command line of the `tfjs-mtp` bin: Node's `util.parseArgs` (unknown flags, positionals and
 * missing values refused) under a table of kebab-case flags with typed values, and a `--help`
 * text built from the same table.
 */
import { parseArgs } from 'node:util';

/** One flag: its type, its default (none: the library's own default applies) and one line of help. */
export type FlagSpec =
  | { type: 'string'; help: string; default?: string; choices?: readonly string[] }
  | { type: 'number'; help: string; default?: number; integer?: boolean; min?: number }
  | { type: 'boolean'; help: string };

/** The parsed value of each flag (undefined when not given and without a default). */
export type FlagValues<T extends Record<string, FlagSpec>> = {
  -readonly [K in keyof T]: T[K] extends { type: 'number' } ? number | undefined : T[K] extends { type: 'boolean' } ? boolean : string | undefined;
};

/** A subcommand: its usage line, what it does, its flags. */
export interface Command<T extends Record<string, FlagSpec>> {
  usage: string;
  summary: string;
  flags: T;
}

/** A bad command line: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {}

/** The `--help` text of a command. */
export function helpText<T extends Record<string, FlagSpec>>(command: Command<T>): string {
  const rows = Object.entries(command.flags).map(([name, spec]) => {
    const value = spec.type === 'boolean' ? '' : ` <${spec.type === 'string' && spec.choices ? spec.choices.join('|') : spec.type}>`;
    const fallback = 'default' in spec && spec.default !== undefined ? ` [default: ${spec.default}]` : '';
    return [`--${name}${value}`, `${spec.help}${fallback}`] as const;
  });
  rows.push(['--help', 'print this text and exit']);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return [command.summary, '', `usage: ${command.usage}`, '', ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`)].join('\n');
}

function convert(name: string, spec: FlagSpec, raw: string | boolean | undefined): unknown {
  if (spec.type === 'boolean') return raw === true;
  if (raw === undefined) return spec.default;
  const text = String(raw);
  if (spec.type === 'string') {
    if (spec.choices && !spec.choices.includes(text)) throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}, but got ${JSON.stringify(text)}.`);
    return text;
  }
  return numberFlag(name, text, spec);
}

/** The number `text` of flag `--name`, checked (a number; an integer, at least `min` when asked). Throws a {@link UsageError}. */
export function numberFlag(name: string, text: string, rules: { integer?: boolean; min?: number } = {}): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, but got ${JSON.stringify(text)}.`);
  if (rules.integer && !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, but got ${text}.`);
  if (rules.min !== undefined && n < rules.min) throw new UsageError(`--${name} must be at least ${rules.min}, but got ${text}.`);
  return n;
}

/** `node:util`'s `parseArgs` over `argv`, strict (no unknown flag, no positional argument), its errors as {@link UsageError}s. */
export function strictArgs(argv: readonly string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Parses `argv` against the command's flags; `help` is true when `--help` (or `-h`) was given. */
export function parseFlags<T extends Record<string, FlagSpec>>(command: Command<T>, argv: readonly string[]): FlagValues<T> & { help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, spec] of Object.entries(command.flags)) options[name] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  const values = strictArgs(argv, options);
  const out: Record<string, unknown> = { help: values['help'] === true };
  for (const [name, spec] of Object.entries(command.flags)) out[name] = convert(name, spec, values[name]);
  return out as FlagValues<T> & { help: boolean };
}
