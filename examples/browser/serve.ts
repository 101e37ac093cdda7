/**
 * `npm run example:browser`: bundles main.ts with esbuild and serves the example on 127.0.0.1,
 * with the wasm backend's binaries under `wasm/` and a checkpoint under `checkpoint/`. The page
 * is cross-origin isolated (COOP/COEP) so the wasm backend can use threads.
 *
 *     npm run example:browser -- [--port 8080] [--checkpoint fixtures/<name>] [--help]
 *
 * The checkpoint defaults to the first `fixtures/<name>/model.json` in the repository.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundlePage, ROOT, WASM_DIR } from '../../tools/browser/bundle.js';
import { startStaticServer, type StaticServer } from '../../tools/browser/server.js';
import { parseCommandLine } from '../../tools/args.js';

/** Options of {@link startExampleServer}. */
export interface ExampleServerOptions {
  /** Directory with `model.json` + `weights.bin`. Default: {@link defaultCheckpoint}. */
  checkpoint?: string;
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
export async function startExampleServer(options: ExampleServerOptions = {}): Promise<StaticServer & { checkpoint: string; bundleBytes: number }> {
  const checkpoint = options.checkpoint ? resolve(options.checkpoint) : defaultCheckpoint();
  if (checkpoint === null || !existsSync(join(checkpoint, 'model.json'))) {
    throw new Error(
      `example:browser: no checkpoint (a directory with model.json + weights.bin) at ${checkpoint ?? join(ROOT, 'fixtures/<name>')}; pass --checkpoint DIR.`,
    );
  }
  const here = join(ROOT, 'examples/browser');
  const bundle = await bundlePage(join(here, 'main.ts'), { minify: true });
  const server = await startStaticServer({
    routes: { '/index.html': readFileSync(join(here, 'index.html'), 'utf8'), '/main.js': bundle.code },
    mounts: { '/wasm/': WASM_DIR, '/checkpoint/': checkpoint },
    crossOriginIsolated: true,
    port: options.port ?? 0,
  });
  return { ...server, checkpoint, bundleBytes: bundle.bytes };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { port, checkpoint } = parseCommandLine({
    name: 'example:browser',
    usage: 'npm run example:browser -- [options]',
    summary: 'Bundles the browser example and serves it on 127.0.0.1 (cross-origin isolated, so the wasm backend can use threads).',
    options: {
      port: { type: 'number', default: 0, integer: true, min: 0, help: 'port on 127.0.0.1 (0: any free port)' },
      checkpoint: { type: 'string', default: '', help: 'folder with model.json + weights.bin ("": the first fixtures/<name>/ holding one)' },
    },
  } as const);
  const server = await startExampleServer({ ...(checkpoint ? { checkpoint } : {}), port });
  console.log(`tfjs-mtp browser example (checkpoint ${basename(server.checkpoint)}, bundle ${(server.bundleBytes / 1e6).toFixed(2)} MB)`);
  console.log(`open ${server.url}  (Ctrl-C to stop)`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
