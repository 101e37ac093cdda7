/**
 * Runs doc snippets one after another in this one process (`node --import tsx run_snippets.ts
 * <file.mts>…`), as tests/docs/snippets.test.ts asks: each is imported as a module (its top-level
 * awaits finish before the next starts), and what it writes to stderr — console.error / warn and
 * process.stderr — and any error it throws or leaves unhandled is recorded as its own. Prints one
 * JSON line, after a marker, with a result per file.
 */
import { pathToFileURL } from 'node:url';

/** One snippet's outcome. */
export interface SnippetResult {
  file: string;
  /** The error it threw (or left unhandled while it ran), as text; null when none. */
  error: string | null;
  /** Everything it wrote to stderr. */
  stderr: string;
  /** Wall time in ms. */
  ms: number;
}

/** The line that precedes the JSON results on stdout. */
export const RESULTS_MARKER = '--- snippet results ---';

const describe = (e: unknown) => (e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e));

async function main(files: string[]): Promise<void> {
  const results: SnippetResult[] = [];
  let current: SnippetResult | null = null;
  const write = process.stderr.write.bind(process.stderr);
  // stderr and console.error / warn are recorded against the snippet that is running (and still echoed)
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (current) current.stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  const unhandled = (e: unknown) => {
    if (current) current.error ??= `unhandled: ${describe(e)}`;
    else throw e;
  };
  process.on('unhandledRejection', unhandled);
  process.on('uncaughtException', unhandled);
  for (const file of files) {
    current = { file, error: null, stderr: '', ms: 0 };
    const start = performance.now();
    results.push(current);
    try {
      await import(pathToFileURL(file).href);
    } catch (e) {
      current.error = describe(e);
    }
    await new Promise((resolve) => setImmediate(resolve)); // rejections left behind surface now, against this snippet
    current.ms = Math.round(performance.now() - start);
  }
  current = null;
  process.stdout.write(`\n${RESULTS_MARKER}\n${JSON.stringify(results)}\n`);
}

await main(process.argv.slice(2));
