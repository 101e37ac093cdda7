/**
 * Command-line options for the node-only commands (`npm run train`, `npm run bench`, …): Node's
 * `util.parseArgs` (unknown flags and missing values rejected), plus typed numbers, lists and
 * choices, and a `--help` text built from the same table that parses. Tables name options in
 * camelCase (`reserveSeconds`); the command line takes the kebab-case flag that `--help` shows
 * (`--reserve-seconds`) or the camelCase one (`--reserveSeconds`).
 */
import { numberFlag, strictArgs, UsageError } from '../src/cli/args.js';

export { UsageError }; // one error class for bad command lines, the package's command's and these

/** One option: its type, default and one line of help. */
export type OptionSpec =
  | { type: 'string'; default: string; help: string; choices?: readonly string[] }
  | { type: 'strings'; default: readonly string[]; help: string; choices?: readonly string[] }
  | { type: 'number'; default: number; help: string; integer?: boolean; min?: number }
  | { type: 'numbers'; default: readonly number[]; help: string }
  | { type: 'boolean'; help: string };

/** The parsed value of each option of a table. */
export type OptionValues<T extends Record<string, OptionSpec>> = {
  -readonly [K in keyof T]: T[K] extends { type: 'number' }
    ? number
    : T[K] extends { type: 'numbers' }
      ? number[]
      : T[K] extends { type: 'strings'; choices: readonly (infer C)[] }
        ? C[]
        : T[K] extends { type: 'strings' }
          ? string[]
          : T[K] extends { type: 'boolean' }
            ? boolean
            : T[K] extends { choices: readonly (infer C)[] }
              ? C
              : string;
};

/** What a command says about itself in `--help`. */
export interface CommandInfo<T extends Record<string, OptionSpec>> {
  /** Short name for error messages, e.g. `bench`. */
  name: string;
  /** How it is typed, e.g. `npm run bench -- [options]`. */
  usage: string;
  /** A sentence or two: what the command does. */
  summary: string;
  options: T;
}

/** The kebab-case flag name of an option: `reserveSeconds` → `reserve-seconds`. */
export function flagName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The `--help` text of a command (flags in kebab-case). */
export function helpText<T extends Record<string, OptionSpec>>(info: CommandInfo<T>): string {
  const rows = Object.entries(info.options).map(([key, spec]) => {
    const name = flagName(key);
    const choices = 'choices' in spec && spec.choices ? spec.choices.join('|') : undefined;
    const list = spec.type === 'strings' || spec.type === 'numbers';
    const value = list ? `${choices ?? spec.type.slice(0, -1)},…` : (choices ?? spec.type);
    const flag = spec.type === 'boolean' ? `--${name}` : `--${name} <${value}>`;
    const fallback = spec.type === 'boolean' ? '' : ` [default: ${String(spec.default) || '""'}]`;
    return [flag, `${spec.help}${fallback}`] as const;
  });
  rows.push(['--help', 'print this text and exit']);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return [`${info.summary}`, '', `usage: ${info.usage}`, '', ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`)].join('\n');
}

function convert(name: string, spec: OptionSpec, raw: string | boolean | undefined): unknown {
  if (spec.type === 'boolean') return raw === true;
  if (raw === undefined) return Array.isArray(spec.default) ? [...spec.default] : spec.default;
  const text = String(raw);
  const items = text.split(',').map((s) => s.trim());
  if (spec.type === 'numbers') return items.map((item) => numberFlag(name, item));
  if (spec.type === 'number') return numberFlag(name, text, spec);
  const values = spec.type === 'strings' ? items : [text];
  const bad = values.find((v) => spec.choices !== undefined && !spec.choices.includes(v));
  if (bad !== undefined) throw new UsageError(`--${name} must be one of ${spec.choices!.join(', ')}, but got ${JSON.stringify(bad)}.`);
  return spec.type === 'strings' ? values : text;
}

/**
 * Parses `argv` against `info.options` and returns typed values under the table's camelCase keys
 * (defaults filled in). Each option is read from its kebab-case flag or its camelCase one. Throws
 * a {@link UsageError} for an unknown flag, a missing value, a positional argument, a bad value or
 * an option given under both spellings.
 */
export function parseOptions<T extends Record<string, OptionSpec>>(info: CommandInfo<T>, argv: readonly string[]): OptionValues<T> & { help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [key, spec] of Object.entries(info.options)) {
    const type = spec.type === 'boolean' ? ('boolean' as const) : ('string' as const);
    options[key] = { type };
    options[flagName(key)] = { type };
  }
  const values = strictArgs(argv, options);
  const out: Record<string, unknown> = { help: values['help'] === true };
  for (const [key, spec] of Object.entries(info.options)) {
    const flag = flagName(key);
    if (flag !== key && values[flag] !== undefined && values[key] !== undefined) {
      throw new UsageError(`--${flag} must be given once, but got both --${flag} and --${key}.`);
    }
    out[key] = convert(flag, spec, values[flag] ?? values[key]);
  }
  return out as OptionValues<T> & { help: boolean };
}

/**
 * {@link parseOptions} on `process.argv`, for a command's entry point: prints the help text and
 * exits 0 on `--help`; prints the error and exits 2 on a bad command line.
 */
export function parseCommandLine<T extends Record<string, OptionSpec>>(info: CommandInfo<T>, argv = process.argv.slice(2)): OptionValues<T> {
  try {
    const { help, ...values } = parseOptions(info, argv);
    if (help) {
      console.log(helpText(info));
      process.exit(0);
    }
    return values as OptionValues<T>;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${info.name}: ${error.message}\nRun with --help for the options.`);
    process.exit(2);
  }
}
