/**
 * `npm run example:browser`: bundles main.ts with esbuild and serves the example on 127.0.0.1,
 * with the wasm backend's binaries under `wasm/`, a saved checkpoint under `checkpoint/`, and,
 * with `--llama2c DIR`, a llama2.c model (e.g. stories260K: `stories260K.bin` + `tok512.bin`)
 * under `llama2c/`, and, with `--heads a.bin,b.bin`, draft-heads files for that model (made by
 * `npm run train:heads`, e.g. fixtures/stories260k-heads/sequential-k4.bin) under `heads/`, and,
 * with `--hf DIR`, a Hugging Face model folder (config.json, model.safetensors or the index and
 * its shards, tokenizer.json, optionally tokenizer_config.json and generation_config.json; e.g.
 * SmolLM2-135M) under `hf/`, with `--hfHeads a.bin,…` draft-heads files for it.
 * `models.json` lists what the page can load (each model with each of its heads files first, then
 * without heads: the llama2.c model, the Hugging Face model, then the checkpoint). The page is
 * cross-origin isolated (COOP/COEP) so the wasm backend can use threads.
 *
 *     npm run example:browser -- [--port 8080] [--checkpoint fixtures/<name>] [--llama2c DIR] [--heads FILE,…] [--hf DIR] [--hfHeads FILE,…] [--help]
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
  | { kind: 'llama2c'; name: string; checkpoint: string; tokenizer: string; draftHeads?: string }
  | { kind: 'hf'; name: string; folder: string; tokenizer: string; tokenizerConfig?: string; draftHeads?: string };

/** Options of {@link startExampleServer}. */
export interface ExampleServerOptions {
  /** Directory with `model.json` + `weights.bin`. Default: {@link defaultCheckpoint}. */
  checkpoint?: string;
  /** Directory with a llama2.c model: a `.bin` checkpoint and its `tok*.bin` tokenizer. Default: none. */
  llama2c?: string;
  /** Draft-heads files (`exportDraftHeads`) for the `llama2c` model: one more model entry each. Default: none. */
  heads?: string[];
  /** Directory with a Hugging Face model: config.json, model.safetensors (or the index and its shards), tokenizer.json. Default: none. */
  hf?: string;
  /** Draft-heads files for the `hf` model (`npm run train:heads -- --model <hf>`): one more model entry each. Default: none. */
  hfHeads?: string[];
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
  const headRoutes: Record<string, Uint8Array> = {};
  /** Serves each heads file under `heads/<prefix><i>/` (by index: two files may share a name); returns their URLs and names. */
  const serveHeads = (files: string[], prefix: string) =>
    files.map((file, i) => {
      const path = resolve(file);
      if (!existsSync(path)) throw new Error(`example:browser: --${prefix === '' ? 'heads' : 'hfHeads'} must name draft-heads files, but ${path} does not exist.`);
      const url = `heads/${prefix}${i}/${basename(path)}`;
      headRoutes[`/${url}`] = new Uint8Array(readFileSync(path));
      return { url, name: basename(path, '.bin') };
    });
  if ((options.hfHeads?.length ?? 0) > 0 && !options.hf) throw new Error('example:browser: --hfHeads needs --hf (the model the heads were trained on), but got no --hf.');
  if (options.hf) {
    const dir = resolve(options.hf);
    const has = (file: string) => existsSync(join(dir, file));
    if (!has('config.json') || !has('tokenizer.json') || !(has('model.safetensors') || has('model.safetensors.index.json'))) {
      throw new Error(`example:browser: --hf must be a Hugging Face model folder with config.json, model.safetensors (or model.safetensors.index.json and its shards) and tokenizer.json, but ${dir} lacks some.`);
    }
    const base = { kind: 'hf' as const, name: basename(dir), folder: 'hf/', tokenizer: 'hf/tokenizer.json', ...(has('tokenizer_config.json') ? { tokenizerConfig: 'hf/tokenizer_config.json' } : {}) };
    models.unshift(...serveHeads(options.hfHeads ?? [], 'hf').map((h) => ({ ...base, name: `${base.name} + ${h.name}`, draftHeads: h.url })), base);
    mounts['/hf/'] = dir;
  }
  if ((options.heads?.length ?? 0) > 0 && !options.llama2c) throw new Error('example:browser: --heads needs --llama2c (the model the heads were trained on), but got no --llama2c.');
  if (options.llama2c) {
    const dir = resolve(options.llama2c);
    const files = existsSync(dir) ? llama2cFiles(dir) : null;
    if (files === null) throw new Error(`example:browser: --llama2c must be a directory with a llama2.c .bin and its tok*.bin, but ${dir} has neither.`);
    const base = { kind: 'llama2c' as const, name: basename(files.checkpoint, '.bin'), checkpoint: `llama2c/${basename(files.checkpoint)}`, tokenizer: `llama2c/${basename(files.tokenizer)}` };
    const withHeads = serveHeads(options.heads ?? [], '').map((h) => ({ ...base, name: `${base.name} + ${h.name}`, draftHeads: h.url }));
    models.unshift(...withHeads, base);
    mounts['/llama2c/'] = dir;
  }
  const here = join(ROOT, 'examples/browser');
  const bundle = await bundlePage(join(here, 'main.ts'), { minify: true });
  const server = await startStaticServer({
    routes: { '/index.html': readFileSync(join(here, 'index.html'), 'utf8'), '/main.js': bundle.code, '/models.json': JSON.stringify(models), ...headRoutes },
    mounts,
    crossOriginIsolated: true,
    port: options.port ?? 0,
  });
  return { ...server, checkpoint, models, bundleBytes: bundle.bytes };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { port, checkpoint, llama2c, heads, hf, hfHeads } = parseCommandLine({
    name: 'example:browser',
    usage: 'npm run example:browser -- [options]',
    summary: 'Bundles the browser example and serves it on 127.0.0.1 (cross-origin isolated, so the wasm backend can use threads).',
    options: {
      port: { type: 'number', default: 0, integer: true, min: 0, help: 'port on 127.0.0.1 (0: any free port)' },
      checkpoint: { type: 'string', default: '', help: 'folder with model.json + weights.bin ("": the first fixtures/<name>/ holding one)' },
      llama2c: { type: 'string', default: '', help: 'folder with a llama2.c model, e.g. stories260K.bin + tok512.bin ("": none)' },
      heads: { type: 'strings', default: [], help: 'draft-heads files for the --llama2c model (npm run train:heads), e.g. fixtures/stories260k-heads/sequential-k4.bin' },
      hf: { type: 'string', default: '', help: 'folder with a Hugging Face model: config.json, model.safetensors (or its index and shards), tokenizer.json ("": none)' },
      hfHeads: { type: 'strings', default: [], help: 'draft-heads files for the --hf model (npm run train:heads -- --model <folder>)' },
    },
  } as const);
  const server = await startExampleServer({ ...(checkpoint ? { checkpoint } : {}), ...(llama2c ? { llama2c } : {}), heads, ...(hf ? { hf } : {}), hfHeads, port });
  console.log(`tfjs-mtp browser example (models ${server.models.map((m) => m.name).join(', ')}; bundle ${(server.bundleBytes / 1e6).toFixed(2)} MB)`);
  console.log(`open ${server.url}  (Ctrl-C to stop)`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
