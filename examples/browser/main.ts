/**
 * Browser example: loads a model — the reference byte-level transformer's checkpoint, or a
 * llama2.c model such as stories260K through `loadLlama2c` and its BPE tokenizer — streams a
 * self-speculative continuation with every token coloured by how it was produced (the
 * verifier's own token, or a draft from offset j that verification kept), shows live tokens/s,
 * τ and per-offset acceptance, and races greedy decoding against speculative decoding on the
 * same model.
 *
 * The app owns the backend (`tf.setBackend`); the library never touches it. Served by serve.ts,
 * which also serves the wasm binaries under `wasm/`, the models under `checkpoint/` and
 * `llama2c/`, trained draft heads for the llama2.c model under `heads/` (a model entry each, chosen
 * in the model select), and their list as `models.json`.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { greedyStream, speculativeStream, type DecodeResult, type TokenChunk } from 'tfjs-mtp';
import { CachedTransformer, decodeBytes, encodeBytes, loadLlama2c, loadTransformer, type Llama2cTokenizer } from 'tfjs-mtp/models';

type Backend = 'webgl' | 'webgpu' | 'wasm' | 'cpu';

/** One model the server offers (its `models.json`; URLs relative to the page). */
type ModelEntry = { kind: 'layers'; name: string; modelJson: string } | { kind: 'llama2c'; name: string; checkpoint: string; tokenizer: string; draftHeads?: string };

/** Byte-level prompts from the held-out part of the corpus's domain (TypeScript declaration files). */
const CODE_PRESETS: Record<string, string> = {
  Promise: 'interface PromiseConstructor {\n    /**\n     * Creates a new Promise.\n',
  Map: 'interface Map<K, V> {\n    clear(): void;\n',
  Array: 'interface Array<T> {\n    /**\n     * Returns the value of the first element',
  WeakRef: 'interface WeakRef<T extends WeakKey> {\n    readonly [Symbol.toStringTag]: "WeakRef";\n',
};

/** Story openings for a TinyStories model such as stories260K. */
const STORY_PRESETS: Record<string, string> = {
  'Once upon a time': 'Once upon a time',
  Tom: 'One day, a little boy named Tom',
  Park: 'Lily and her mom went to the park',
  Cat: 'A little cat wanted to find a friend',
};

/**
 * How a model's tokens read: text → prompt ids (fitting `limit` tokens) and a streaming view that
 * turns each new token into the text it adds.
 */
interface TextCodec {
  /** What the model info line says about the vocabulary. */
  describe: string;
  presets: Record<string, string>;
  encode(text: string, limit: number): number[];
  /** The prompt's text. */
  show(prompt: number[]): string;
  /** A function giving the text each next token adds after `prompt`. */
  stream(prompt: number[]): (token: number) => string;
}

/** Bytes: the end of a long prompt; a streaming UTF-8 decoder keeps multi-byte characters whole. */
const BYTES: TextCodec = {
  describe: 'bytes',
  presets: CODE_PRESETS,
  encode: (text, limit) => encodeBytes(text || '\n').slice(-limit),
  show: (prompt) => decodeBytes(prompt),
  stream: () => {
    const decoder = new TextDecoder();
    return (token) => decoder.decode(Uint8Array.of(token), { stream: true });
  },
};

/**
 * A llama2.c BPE tokenizer: BOS first (kept when a long prompt is cut from the front); each token's
 * text is the decoded sequence minus what was there before (leading spaces and byte tokens come
 * out as run.c prints them).
 */
function bpe(tokenizer: Llama2cTokenizer, file: string): TextCodec {
  return {
    describe: `BPE, ${file}`,
    presets: STORY_PRESETS,
    encode: (text, limit) => {
      const ids = tokenizer.encode(text, { bos: true });
      return ids.length <= limit ? ids : [ids[0]!, ...ids.slice(ids.length - limit + 1)];
    },
    show: (prompt) => tokenizer.decode(prompt),
    stream: (prompt) => {
      const ids = [...prompt];
      let before = tokenizer.decode(ids);
      return (token) => {
        ids.push(token);
        const now = tokenizer.decode(ids);
        const piece = now.slice(before.length);
        before = now;
        return piece;
      };
    },
  };
}

/** Bar colour of offset j (a stronger shade of the token colour s{j} in the stylesheet). */
const BAR_COLOURS = ['#868e96', '#4c6ef5', '#37b24d', '#f59f00', '#ae3ec9', '#f03e3e', '#1098ad', '#7048e8'];

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

/** The loaded model, the backend it lives on and how its tokens read. */
interface Loaded {
  backend: Backend;
  entry: ModelEntry;
  layers: LayersModel;
  model: CachedTransformer;
  codec: TextCodec;
}

let models: ModelEntry[] = [];
let loaded: Loaded | null = null;
let running: AbortController | null = null;

function status(text: string, error = false): void {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

function busy(on: boolean): void {
  for (const id of ['generate', 'race', 'backend', 'model', 'draft']) ($(id) as HTMLButtonElement).disabled = on;
  ($('stop') as HTMLButtonElement).disabled = !on;
}

/** The model chosen in the page. */
function chosenModel(): ModelEntry {
  return models[Number(($('model') as HTMLSelectElement).value)] ?? models[0]!;
}

/** The backend chosen in the page. */
function chosenBackend(): Backend {
  return ($('backend') as HTMLSelectElement).value as Backend;
}

/** Reads a model entry on the current backend: its layers and how its tokens read. */
async function loadEntry(entry: ModelEntry): Promise<{ layers: LayersModel; codec: TextCodec }> {
  if (entry.kind === 'layers') return { layers: await loadTransformer(entry.modelJson), codec: BYTES }; // registers the layer classes, then tf.loadLayersModel
  // fetched by URL; trained draft heads (when the entry has them) set k, their kind and width
  const { model, tokenizer } = await loadLlama2c(entry.checkpoint, { tokenizer: entry.tokenizer, ...(entry.draftHeads ? { draftHeads: entry.draftHeads } : {}) });
  return { layers: model, codec: bpe(tokenizer!, entry.tokenizer.split('/').at(-1)!) };
}

/** Switches the backend (the app's call, not the library's) and (re)loads the chosen model on it. */
async function load(backend: Backend, entry: ModelEntry): Promise<Loaded> {
  if (loaded?.backend === backend && loaded.entry === entry) return loaded;
  const previous = loaded?.entry;
  if (loaded) {
    loaded.model.dispose();
    loaded.layers.dispose();
    loaded = null;
  }
  status(`Starting ${backend}…`);
  // Decoding changes shapes every step (the KV cache grows): with shape uniforms WebGL reuses one
  // compiled program per op instead of compiling one per sequence length.
  if (backend === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
  if (!(await tf.setBackend(backend)) || tf.getBackend() !== backend) {
    throw new Error(`The ${backend} backend is not available in this browser (tfjs kept '${tf.getBackend()}').`);
  }
  await tf.ready();
  status(`Loading ${entry.name} on ${backend}…`);
  const { layers, codec } = await loadEntry(entry);
  const model = new CachedTransformer(layers);
  const params = layers.countParams();
  const untrained = entry.kind !== 'llama2c' ? '' : entry.draftHeads ? ` (trained draft heads ${entry.draftHeads.split('/').at(-1)!})` : ' (offsets 1…k−1 untrained: drafts are rarely kept)';
  $('model-info').innerHTML =
    `${entry.name}: ${(params / 1e3).toFixed(0)}k parameters, k = ${model.numHeads} heads${untrained}, ` +
    `vocabulary ${model.vocabSize} (${codec.describe}), context ${model.maxLength} tokens.<br>Backend: <b>${tf.getBackend()}</b>.`;
  fillDraftChoices(model.numHeads);
  if (previous !== entry) fillPresets(codec.presets); // a new model: its kind of prompts (a backend switch keeps the prompt)
  loaded = { backend, entry, layers, model, codec };
  return loaded;
}

function fillDraftChoices(numHeads: number): void {
  const select = $('draft') as HTMLSelectElement;
  const previous = select.value;
  select.innerHTML = '';
  for (let d = 0; d < numHeads; d++) select.add(new Option(d === 0 ? '0 (greedy)' : String(d), String(d)));
  select.value = previous !== '' && Number(previous) < numHeads ? previous : String(numHeads - 1);
  renderLegend(numHeads);
}

function renderLegend(numHeads: number): void {
  const items = [`<span><span class="sw s0"></span>verifier's own token (offset 0)</span>`];
  for (let j = 1; j < numHeads; j++) items.push(`<span><span class="sw s${j % 8}"></span>kept draft, offset ${j}</span>`);
  $('legend').innerHTML = items.join('');
}

/** The preset buttons of a model's kind of text; the first fills the prompt. */
function fillPresets(presets: Record<string, string>): void {
  const box = $('presets');
  box.innerHTML = '';
  for (const [name, text] of Object.entries(presets)) {
    const b = document.createElement('button');
    b.textContent = name;
    b.onclick = () => (($('prompt') as HTMLTextAreaElement).value = text);
    box.append(b);
  }
  ($('prompt') as HTMLTextAreaElement).value = Object.values(presets)[0]!;
}

/** Prompt ids (fitting the context with room for 16 new tokens) and a token budget that fits the context. */
function readInputs({ model, codec }: Loaded): { prompt: number[]; maxNewTokens: number; draftLength: number } {
  const text = ($('prompt') as HTMLTextAreaElement).value;
  const requested = Math.max(1, Math.floor(Number(($('max-new') as HTMLInputElement).value) || 1));
  const prompt = codec.encode(text, model.maxLength - 16);
  return { prompt, maxNewTokens: Math.min(requested, model.maxLength - prompt.length), draftLength: Number(($('draft') as HTMLSelectElement).value) };
}

/** Appends one chunk's tokens as coloured spans (`text` gives the text each token adds). */
function appendChunk(output: HTMLElement, text: (token: number) => string, chunk: TokenChunk): void {
  chunk.tokens.forEach((token, i) => {
    const span = document.createElement('span');
    span.className = `t s${chunk.sources[i] % 8}`;
    span.textContent = text(token);
    span.title = chunk.sources[i] === 0 ? `step ${chunk.step}: verifier (offset 0)` : `step ${chunk.step}: kept draft from offset ${chunk.sources[i]}`;
    output.append(span);
  });
  output.scrollTop = output.scrollHeight;
}

/** Live per-offset acceptance, from what each chunk says it drafted and kept (the same counts as the final stats). */
class LiveStats {
  tokens = 0;
  steps = 0;
  private readonly drafted: number[];
  private readonly kept: number[];
  private readonly start = performance.now();

  constructor(draftLength: number) {
    this.drafted = new Array<number>(draftLength).fill(0);
    this.kept = new Array<number>(draftLength).fill(0);
  }

  add(chunk: TokenChunk): void {
    this.tokens += chunk.tokens.length;
    this.steps = chunk.step + 1;
    for (let j = 0; j < chunk.drafted; j++) this.drafted[j]++;
    for (const s of chunk.sources) if (s > 0) this.kept[s - 1]++;
    const seconds = (performance.now() - this.start) / 1000;
    showStats(this.tokens / seconds, this.tokens / this.steps, this.tokens, this.steps, this.kept.map((k, j) => (this.drafted[j] > 0 ? k / this.drafted[j] : NaN)));
  }
}

function showStats(tps: number, tau: number, tokens: number, forwards: number, rates: number[]): void {
  $('stat-tps').textContent = Number.isFinite(tps) ? tps.toFixed(1) : '–';
  $('stat-tau').textContent = Number.isFinite(tau) ? tau.toFixed(2) : '–';
  $('stat-tokens').textContent = String(tokens);
  $('stat-forwards').textContent = String(forwards);
  $('bars').innerHTML = rates
    .map((r, i) => {
      const pct = Number.isFinite(r) ? `${(100 * r).toFixed(0)}%` : '–';
      const width = Number.isFinite(r) ? 100 * r : 0;
      return `<div class="bar"><span>offset ${i + 1}</span><div class="track"><div class="fill" style="width:${width}%;background:${BAR_COLOURS[(i + 1) % 8]}"></div></div><span class="pct">${pct}</span></div>`;
    })
    .join('');
}

/** Drives a decoding stream to its end, calling `each` per chunk; returns the final result. */
async function consume(stream: AsyncGenerator<TokenChunk, DecodeResult>, each: (c: TokenChunk) => void): Promise<DecodeResult> {
  for (;;) {
    const r = await stream.next();
    if (r.done) return r.value;
    each(r.value);
  }
}

async function generate(): Promise<void> {
  const current = await load(chosenBackend(), chosenModel());
  const { model, codec } = current;
  const { prompt, maxNewTokens, draftLength } = readInputs(current);
  const output = $('output');
  output.innerHTML = '';
  const head = document.createElement('span');
  head.className = 'prompt';
  head.textContent = codec.show(prompt);
  output.append(head);
  const text = codec.stream(prompt);
  const live = new LiveStats(draftLength);
  running = new AbortController();
  status(`Decoding on ${tf.getBackend()} with ${draftLength} draft${draftLength === 1 ? '' : 's'} per step…`);
  // The decoders give the event loop a turn between steps (every DECODE_DEFAULTS.yieldEveryMs), so
  // the Stop button's click and the repaints of the coloured text run while this loop decodes.
  let result: DecodeResult;
  try {
    result = await consume(speculativeStream(model, prompt, { maxNewTokens, draftLength, signal: running.signal }), (chunk) => {
      appendChunk(output, text, chunk);
      live.add(chunk);
    });
  } catch (error) {
    if ((error as Error).name !== 'AbortError') throw error;
    status(`Stopped after ${live.tokens} of ${maxNewTokens} tokens (${live.steps} forwards) on ${tf.getBackend()}.`);
    return;
  }
  const s = result.stats;
  showStats(s.tokensPerSecond, s.meanAcceptedLength, s.tokens, s.forwards, s.acceptanceRates.slice(0, draftLength));
  status(`Done: ${s.tokens} tokens in ${s.forwards} forwards (${s.wallTimeMs.toFixed(0)} ms, ${s.accepted}/${s.drafted} drafts kept) on ${tf.getBackend()}.`);
}

/** Times one decode, moving its progress bar. */
async function lane(stream: AsyncGenerator<TokenChunk, DecodeResult>, bar: HTMLElement, meta: HTMLElement, total: number): Promise<DecodeResult> {
  let tokens = 0;
  const start = performance.now();
  const result = await consume(stream, (chunk) => {
    tokens += chunk.tokens.length;
    bar.style.width = `${(100 * tokens) / total}%`;
    meta.textContent = `${tokens} tokens, ${(performance.now() - start).toFixed(0)} ms`;
  });
  const s = result.stats;
  meta.textContent = `${s.tokens} tokens, ${s.forwards} forwards, ${s.wallTimeMs.toFixed(0)} ms, ${s.tokensPerSecond.toFixed(1)} tok/s`;
  return result;
}

async function race(): Promise<void> {
  const current = await load(chosenBackend(), chosenModel());
  const { model } = current;
  const { prompt, maxNewTokens, draftLength } = readInputs(current);
  running = new AbortController();
  const signal = running.signal;
  for (const id of ['lane-greedy', 'lane-spec']) $(id).style.width = '0';
  $('race-verdict').textContent = '';
  // A fair race: the first run of each input shape compiles GPU programs, so both decoders run
  // once untimed on the same prompt and budget first.
  status('Warming up: one untimed run of each decoder (the first run of each shape compiles GPU programs)…');
  await consume(greedyStream(model, prompt, { maxNewTokens, signal }), () => undefined);
  await consume(speculativeStream(model, prompt, { maxNewTokens, draftLength, signal }), () => undefined);
  status('Racing: greedy first, then speculative, on the same model…');
  const greedy = await lane(greedyStream(model, prompt, { maxNewTokens, signal }), $('lane-greedy'), $('meta-greedy'), maxNewTokens);
  const spec = await lane(speculativeStream(model, prompt, { maxNewTokens, draftLength, signal }), $('lane-spec'), $('meta-spec'), maxNewTokens);
  const same = greedy.tokens.length === spec.tokens.length && greedy.tokens.every((t, i) => t === spec.tokens[i]);
  const speedup = greedy.stats.wallTimeMs / spec.stats.wallTimeMs;
  $('race-verdict').innerHTML =
    `<b>${(speedup >= 1 ? speedup : 1 / speedup).toFixed(2)}×</b> ${speedup >= 1 ? 'faster' : 'slower'}, ${greedy.stats.forwards} → ${spec.stats.forwards} forwards; ` +
    (same ? 'outputs <b>identical</b> ✓' : '<b style="color:#c92a2a">outputs differ</b>');
  status(`Race done on ${tf.getBackend()}.`);
}

/** Runs an action with the controls locked; shows errors in the status line. */
async function guarded(action: () => Promise<void>): Promise<void> {
  busy(true);
  try {
    await action();
  } catch (error) {
    const e = error as Error;
    status(e.name === 'AbortError' ? 'Stopped.' : `Error: ${e.message}`, e.name !== 'AbortError');
    if (e.name !== 'AbortError') console.error(error);
  } finally {
    running = null;
    busy(false);
  }
}

async function init(): Promise<void> {
  setWasmPaths(new URL('wasm/', location.href).href);
  models = (await (await fetch('models.json')).json()) as ModelEntry[];
  const select = $('model') as HTMLSelectElement;
  models.forEach((m, i) => select.add(new Option(m.kind === 'llama2c' ? `${m.name} (llama2.c)` : `${m.name} (byte-level)`, String(i))));
  if (!('gpu' in navigator)) ($('backend') as HTMLSelectElement).querySelector<HTMLOptionElement>('option[value=webgpu]')!.disabled = true;
  $('generate').onclick = () => void guarded(generate);
  $('race').onclick = () => void guarded(race);
  $('stop').onclick = () => running?.abort(new DOMException('stopped by the user', 'AbortError'));
  const reload = () => void guarded(async () => {
    const l = await load(chosenBackend(), chosenModel());
    status(`Ready on ${l.backend}.`);
  });
  $('backend').onchange = reload;
  select.onchange = reload;
  await guarded(async () => {
    const l = await load(chosenBackend(), chosenModel());
    status(`Ready on ${l.backend}. Type a prompt and press Generate.`);
  });
}

void init().catch((error: unknown) => status(`Error: ${(error as Error).message}`, true));
