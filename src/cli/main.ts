/**
 * The `tfjs-mtp` command (the package's `bin`): `tfjs-mtp train-heads …` trains draft heads for a
 * frozen model (./train_heads.ts). Exit codes: 0 done, 1 failed, 2 a bad command line.
 */
import { trainHeadsCommand } from './train_heads.js';
import { UsageError } from './args.js';

const COMMANDS: Record<string, { summary: string; run: (argv: readonly string[]) => Promise<number> }> = {
  'train-heads': { summary: 'train draft heads for a frozen llama2.c or Hugging Face model (self-distillation); writes heads.bin + training.json', run: trainHeadsCommand },
};

const USAGE = ['usage: tfjs-mtp <command> [options]', '', 'commands:', ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`), '', 'Run tfjs-mtp <command> --help for its options.'].join('\n');

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    console.error(`tfjs-mtp: unknown command ${JSON.stringify(name)}.\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`tfjs-mtp ${name}: ${error.message}\nRun tfjs-mtp ${name} --help for the options.`);
      return 2;
    }
    console.error(`tfjs-mtp ${name}: ${(error as Error).message ?? String(error)}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
