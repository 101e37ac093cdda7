/**
 * Finding a llama2.c model in a directory (as Karpathy's `tinyllamas` ship them, e.g.
 * `stories260K.bin` + `tok512.bin`): the checkpoint is the `.bin` not named `tok*`, the
 * tokenizer the `tok*.bin`. Shared by the bench and the browser example's server.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The llama2.c files of `dir` (absolute paths), or null when it lacks either. */
export function llama2cFiles(dir: string): { checkpoint: string; tokenizer: string } | null {
  const bins = readdirSync(dir).filter((f) => f.endsWith('.bin')).sort();
  const tokenizer = bins.find((f) => f.startsWith('tok'));
  const checkpoint = bins.find((f) => !f.startsWith('tok'));
  return tokenizer && checkpoint ? { checkpoint: join(dir, checkpoint), tokenizer: join(dir, tokenizer) } : null;
}
