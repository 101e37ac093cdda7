/**
 * `npm run example:browser`: bundles main.ts with esbuild and serves the example on 127.0.0.1,
 * with the wasm backend's binaries under `wasm/`, a saved checkpoint under `checkpoint/`, and,
 * with `--llama2c DIR`, a llama2.c model (e.g. stories260K: `stories260K.bin` + `tok512.bin`)
 * under `llama2c/`. `models.json` lists what the page can load (the llama2.c model first). The
 * page is cross-origin isolated (COOP/COEP) so the wasm backend can use threads.
 *
 *     npm run example:browser -- [--port 8080] [--checkpoint fixtures/<name>] [--llama2c DIR] [--help]
 *
 * The checkpoint defaults to the first `fixtures/<name>/model.json` in the repository.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundlePage, ROOT, WASM_DIR } from '../../tools/browser/bundle.js';
import { startStaticServer, type StaticServer } from '../../tools/browser/server.js';
import { parseCommandLine } from '../../tools/args.js';
import { llama2cFiles } from '../../tools/llama2c_files.js';

/** One model the page can load (`models.json`), by URLs relative to the page. */
export type ExampleModel =
  | { kind: 'layers'; name: string; modelJson: string }
  | { kind: 'llama2c'; name: string; checkpoint: string; tokenizer: string };

/** Options of {@link startExampleServer}. */
export interface ExampleServerOptions {
  /** Directory with `model.json` + `weights.bin`. Default: {@link defaultCheckpoint}. */
  checkpoint?: string;
  /** Directory with a llama2.c model: a `.bin` checkpoint and its `tok*.bin` tokenizer. Default: none. */
  llama2c?: string;
  /** Port on 127.0.0.1 (default 0: any free port). */
  port?: number;
}

/** The first `fixtures/<name>/` holding a `model.json`, or null. */
export function defaultCheckpoint(): string | null {
  const fixtures = join(ROOT, 'fixtures');
  if (!existsSync(fixtures)) return null;
  const names = readdirSync(fixtures).sort();
  const name = names.find((n) => existsSync(join(fixtures, n, 'model.json')));
  return name === undefined ? null : join(fixtures, name);
}

/** Bundles and serves the example; resolves once it is listening. */
export async function startExampleServer(options: ExampleServerOptions = {}): Promise<StaticServer & { checkpoint: string; models: ExampleModel[]; bundleBytes: number }> {
  const checkpoint = options.checkpoint ? resolve(options.checkpoint) : defaultCheckpoint();
  if (checkpoint === null || !existsSync(join(checkpoint, 'model.json'))) {
    throw new Error(
      `example:browser: no checkpoint (a directory with model.json + weights.bin) at ${checkpoint ?? join(ROOT, 'fixtures/<name>')}; pass --checkpoint DIR.`,
    );
  }
  const models: ExampleModel[] = [{ kind: 'layers', name: basename(checkpoint), modelJson: 'checkpoint/model.json' }];
  const mounts: Record<string, string> = { '/wasm/': WASM_DIR, '/checkpoint/': checkpoint };
  if (options.llama2c) {
    const dir = resolve(options.llama2c);
    const files = existsSync(dir) ? llama2cFiles(dir) : null;
    if (files === null) throw new Error(`example:browser: --llama2c must be a directory with a llama2.c .bin and its tok*.bin, but ${dir} has neither.`);
    models.unshift({ kind: 'llama2c', name: basename(files.checkpoint, '.bin'), checkpoint: `llama2c/${basename(files.checkpoint)}`, tokenizer: `llama2c/${basename(files.tokenizer)}` });
    mounts['/llama2c/'] = dir;
  }
  const here = join(ROOT, 'examples/browser');
  const bundle = await bundlePage(join(here, 'main.ts'), { minify: true });
  const server = await startStaticServer({
    routes: { '/index.html': readFileSync(join(here, 'index.html'), 'utf8'), '/main.js': bundle.code, '/models.json': JSON.stringify(models) },
    mounts,
    crossOriginIsolated: true,
    port: options.port ?? 0,
  });
  return { ...server, checkpoint, models, bundleBytes: bundle.bytes };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { port, checkpoint, llama2c } = parseCommandLine({
    name: 'example:browser',
    usage: 'npm run example:browser -- [options]',
    summary: 'Bundles the browser example and serves it on 127.0.0.1 (cross-origin isolated, so the wasm backend can use threads).',
    options: {
      port: { type: 'number', default: 0, integer: true, min: 0, help: 'port on 127.0.0.1 (0: any free port)' },
      checkpoint: { type: 'string', default: '', help: 'folder with model.json + weights.bin ("": the first fixtures/<name>/ holding one)' },
      llama2c: { type: 'string', default: '', help: 'folder with a llama2.c model, e.g. stories260K.bin + tok512.bin ("": none)' },
    },
  } as const);
  const server = await startExampleServer({ ...(checkpoint ? { checkpoint } : {}), ...(llama2c ? { llama2c } : {}), port });
  console.log(`tfjs-mtp browser example (models ${server.models.map((m) => m.name).join(', ')}; bundle ${(server.bundleBytes / 1e6).toFixed(2)} MB)`);
  console.log(`open ${server.url}  (Ctrl-C to stop)`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
