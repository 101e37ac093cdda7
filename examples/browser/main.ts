/**
 * Browser example: loads a model — the reference byte-level transformer's checkpoint, a
 * llama2.c model such as stories260K through `loadLlama2c` and its BPE tokenizer, or a Hugging Face
 * model folder such as SmolLM2-135M through `loadHfLlama` (by the folder's URL) and its
 * tokenizer.json (`loadHfTokenizer`) — streams a
 * self-speculative continuation with every token coloured by how it was produced (the
 * verifier's own token, or a draft from offset j that verification kept), shows live tokens/s,
 * τ and per-offset acceptance, and races greedy decoding against speculative decoding with a
 * chain of drafts and with a dynamic draft tree on the same model. With a tree, the last step's
 * tree (`TokenChunk.tree`) is drawn next to the text (tree_view.ts). For a llama2.c model, the
 * "Train draft heads" panel (train_panel.ts) trains fresh draft heads on the running backend and
 * adds the trained model to the model select.
 *
 * The app owns the backend (`tf.setBackend`); the library never touches it. A backend that cannot
 * start in this browser (no WebGL, no WebGPU) is marked unavailable and the page falls back to the
 * next one in its list, saying so beside the controls. Served by serve.ts,
 * which also serves the wasm binaries under `wasm/`, the models under `checkpoint/` and
 * `llama2c/` and `hf/`, trained draft heads for those models under `heads/` (a model entry each,
 * chosen in the model select), and their list as `models.json`.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { defaultTree, greedyStream, speculativeStream, type DecodeResult, type DynamicTree, type TokenChunk } from 'tfjs-mtp';
import { byteTokenizer, CachedTransformer, loadHfLlama, loadHfTokenizer, loadLlama2c, loadTransformer, type Tokenizer } from 'tfjs-mtp/models';

/** Most draft nodes a tree may have (`DynamicTree.maxNodes`' bound): the page's node budget field stops there. */
const MAX_TREE_NODES = 256;
import { TreePanel } from './tree_view.js';
import { TrainPanel } from './train_panel.js';

type Backend = 'webgl' | 'webgpu' | 'wasm' | 'cpu';

/** The page's backends, in the order it falls back through when one cannot start (the backend select's order). */
const BACKENDS: readonly Backend[] = ['webgl', 'webgpu', 'wasm', 'cpu'];

/** One model the server offers (its `models.json`; URLs relative to the page). */
type ModelEntry =
  | { kind: 'layers'; name: string; modelJson: string }
  | { kind: 'llama2c'; name: string; checkpoint: string; tokenizer: string; draftHeads?: string }
  | { kind: 'hf'; name: string; folder: string; tokenizer: string; tokenizerConfig?: string; draftHeads?: string };

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

/** Openings for a general-purpose Hugging Face model. */
const TEXT_PRESETS: Record<string, string> = {
  Story: 'Once upon a time',
  Fact: 'The capital of France is',
  Code: 'def fibonacci(n):\n',
  List: 'Three tips for learning a language:\n1.',
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
  /** One token's own text, out of context (a tree node's label). */
  piece(token: number): string;
}

/** Bytes: the end of a long prompt; a streaming UTF-8 decoder keeps multi-byte characters whole. */
const BYTES: TextCodec = {
  describe: 'bytes',
  presets: CODE_PRESETS,
  encode: (text, limit) => byteTokenizer.encode(text || '\n').slice(-limit),
  show: (prompt) => byteTokenizer.decode(prompt),
  stream: () => {
    const decoder = new TextDecoder();
    return (token) => decoder.decode(Uint8Array.of(token), { stream: true });
  },
  piece: (token) => (token < 0x80 ? String.fromCharCode(token) : `\\x${token.toString(16)}`), // a lone byte of a multi-byte character reads as its value
};

/**
 * A BPE tokenizer (llama2.c's, or a Hugging Face tokenizer.json): the special tokens it adds to a
 * prompt (llama2.c: BOS first, kept when a long prompt is cut from the front); each token's text is
 * the decoded sequence minus what was there before (leading spaces and byte tokens come out as
 * run.c prints them).
 */
function bpe(tokenizer: Tokenizer, file: string, presets = STORY_PRESETS): TextCodec {
  return {
    describe: `BPE, ${file}`,
    presets,
    encode: (text, limit) => {
      const ids = tokenizer.encode(text);
      if (ids.length === 0) ids.push(...tokenizer.encode('\n')); // an empty prompt without BOS: a prompt needs a token
      const keep = ids[0] === tokenizer.bosId ? 1 : 0;
      return ids.length <= limit ? ids : [...ids.slice(0, keep), ...ids.slice(ids.length - limit + keep)];
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
    piece: (token) => tokenizer.decode([token]),
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
/** Backends that could not start in this browser, and why. */
const unavailable = new Map<Backend, string>();

function status(text: string, error = false): void {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

function busy(on: boolean): void {
  for (const id of ['generate', 'race', 'backend', 'model', 'draft', 'drafting', 'tree-nodes', 'train', 'train-race']) ($(id) as HTMLButtonElement).disabled = on;
  for (const id of ['stop', 'train-stop']) ($(id) as HTMLButtonElement).disabled = !on;
}

/** The model chosen in the page. */
function chosenModel(): ModelEntry {
  return models[Number(($('model') as HTMLSelectElement).value)] ?? models[0]!;
}

/** The backend chosen in the page. */
function chosenBackend(): Backend {
  return ($('backend') as HTMLSelectElement).value as Backend;
}

/** Models the train panel handed over, by their entry: loaded from memory once (then from their heads file). */
const trained = new Map<ModelEntry, { layers: LayersModel; codec: TextCodec }>();

/** Reads a model entry on the current backend: its layers and how its tokens read. */
async function loadEntry(entry: ModelEntry): Promise<{ layers: LayersModel; codec: TextCodec }> {
  const handedOver = trained.get(entry);
  if (handedOver) {
    trained.delete(entry);
    return handedOver;
  }
  if (entry.kind === 'layers') return { layers: await loadTransformer(entry.modelJson), codec: BYTES }; // registers the layer classes, then tf.loadLayersModel
  if (entry.kind === 'hf') return loadHf(entry);
  // fetched by URL; trained draft heads (when the entry has them) set k, their kind and width
  const { model, tokenizer } = await loadLlama2c(entry.checkpoint, { tokenizer: entry.tokenizer, ...(entry.draftHeads ? { draftHeads: entry.draftHeads } : {}) });
  return { layers: model, codec: bpe(tokenizer!, entry.tokenizer.split('/').at(-1)!) };
}

/** A file's bytes by URL (an HTTP error throws naming it). */
async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url} failed with HTTP ${response.status}.`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * A Hugging Face folder by URL: `loadHfLlama` reads config.json, the safetensors (one file or the
 * index and its shards, a shard at a time) and generation_config.json (the EOS it stops at), with
 * trained draft heads when the entry has them; the tokenizer is its tokenizer.json (+ config).
 */
async function loadHf(entry: Extract<ModelEntry, { kind: 'hf' }>): Promise<{ layers: LayersModel; codec: TextCodec }> {
  const [json, config] = await Promise.all([fetchBytes(entry.tokenizer), entry.tokenizerConfig ? fetchBytes(entry.tokenizerConfig) : undefined]);
  const tokenizer = loadHfTokenizer(json, config);
  const { model } = await loadHfLlama(new URL(entry.folder, location.href).href, {
    ...(entry.draftHeads ? { draftHeads: entry.draftHeads } : {}),
    onProgress: (p) => status(`Loading ${entry.name}: ${p.file} (${p.filesLoaded} of ${p.filesTotal}, ${(p.bytesLoaded / 1e6).toFixed(0)} MB)…`),
  });
  return { layers: model, codec: bpe(tokenizer, 'tokenizer.json', TEXT_PRESETS) };
}

/** Marks `backend` unavailable: the reason is kept, its option disabled and labelled. */
function markUnavailable(backend: Backend, reason: string): void {
  unavailable.set(backend, reason);
  const option = ($('backend') as HTMLSelectElement).querySelector<HTMLOptionElement>(`option[value=${backend}]`)!;
  option.disabled = true;
  option.textContent = `${backend} (unavailable)`;
  option.title = reason;
}

/**
 * Starts `wanted` (the app's call, not the library's), or else the first backend of
 * {@link BACKENDS} that starts, skipping those known to be unavailable; says on the page which
 * could not start and which one is used, and shows it in the backend select.
 */
async function startBackend(wanted: Backend): Promise<Backend> {
  const failed: Backend[] = [];
  for (const backend of [wanted, ...BACKENDS.filter((b) => b !== wanted)]) {
    if (unavailable.has(backend)) continue;
    status(`Starting ${backend}…`);
    // Decoding changes shapes every step (the KV cache grows): with shape uniforms WebGL reuses one
    // compiled program per op instead of compiling one per sequence length.
    if (backend === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
    const started = await tf.setBackend(backend).catch(() => false); // false (or a throw): tfjs could not create it here
    if (started && tf.getBackend() === backend) {
      await tf.ready();
      ($('backend') as HTMLSelectElement).value = backend;
      if (backend !== wanted) {
        const names = failed.length === 1 ? `${failed[0]} is` : `${failed.join(' and ')} are`;
        $('backend-note').textContent = `${names} not available in this browser (tfjs could not start ${failed.length === 1 ? 'it' : 'them'}), so the page uses ${backend}.`;
      }
      return backend;
    }
    markUnavailable(backend, 'tfjs could not start it');
    failed.push(backend);
  }
  throw new Error(`No backend could start in this browser: tried ${failed.join(', ')}.`);
}

/** Switches the backend (falling back when it cannot start) and (re)loads the chosen model on it. */
async function load(wanted: Backend, entry: ModelEntry): Promise<Loaded> {
  if (loaded?.backend === wanted && loaded.entry === entry) return loaded;
  const previous = loaded?.entry;
  const previousBackend = loaded?.backend;
  if (loaded) {
    loaded.model.dispose();
    loaded.layers.dispose();
    loaded = null;
  }
  const backend = await startBackend(wanted);
  status(`Loading ${entry.name} on ${backend}…`);
  const { layers, codec } = await loadEntry(entry);
  const model = new CachedTransformer(layers);
  const params = layers.countParams();
  const untrained = entry.kind === 'layers' ? '' : entry.draftHeads ? ` (trained draft heads ${entry.draftHeads.split(/[/#]/).at(-1)!})` : ' (offsets 1…k−1 untrained: drafts are rarely kept)';
  $('model-info').innerHTML =
    `${entry.name}: ${(params / 1e3).toFixed(0)}k parameters, k = ${model.numHeads} heads${untrained}, ` +
    `vocabulary ${model.vocabSize} (${codec.describe}), context ${model.maxLength} tokens.<br>Backend: <b>${tf.getBackend()}</b>.`;
  fillDraftChoices(model.numHeads);
  if (previousBackend !== backend) ($('tree-nodes') as HTMLInputElement).value = String(defaultTree(backend).maxNodes); // a new backend: its measured default budget
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

/** What the page's inputs ask for. */
interface Inputs {
  /** Prompt ids, fitting the context with room for 16 new tokens. */
  prompt: number[];
  /** The requested token budget, cut to what fits the context. */
  maxNewTokens: number;
  draftLength: number;
  /** The dynamic tree of the node budget in the page (`topK` from the backend's `defaultTree()`); null without drafts. */
  tree: DynamicTree | null;
  /** Whether Generate decodes with `tree` (else with a chain). */
  useTree: boolean;
}

function readInputs({ model, codec }: Loaded): Inputs {
  const text = ($('prompt') as HTMLTextAreaElement).value;
  const requested = Math.max(1, Math.floor(Number(($('max-new') as HTMLInputElement).value) || 1));
  const prompt = codec.encode(text, model.maxLength - 16);
  const draftLength = Number(($('draft') as HTMLSelectElement).value);
  const suggested = defaultTree(); // the library's measured tree for the running backend
  const nodes = Math.min(MAX_TREE_NODES, Math.max(1, Math.floor(Number(($('tree-nodes') as HTMLInputElement).value) || suggested.maxNodes)));
  const tree = draftLength > 0 ? { topK: Math.min(suggested.topK, model.vocabSize), maxNodes: nodes } : null; // a tree needs at least one draft depth
  return { prompt, maxNewTokens: Math.min(requested, model.maxLength - prompt.length), draftLength, tree, useTree: ($('drafting') as HTMLSelectElement).value === 'tree' && tree !== null };
}

/** Appends one chunk's tokens as coloured spans (`text` gives the text each token adds). */
function appendChunk(output: HTMLElement, text: (token: number) => string, chunk: TokenChunk): void {
  chunk.tokens.forEach((token, i) => {
    const span = document.createElement('span');
    span.className = `t s${chunk.sources[i] % 8}`;
    span.textContent = text(token);
    span.dataset.step = String(chunk.step);
    span.dataset.token = String(token);
    const where = chunk.tree ? `tree depth ${chunk.sources[i]}` : `offset ${chunk.sources[i]}`;
    span.title = chunk.sources[i] === 0 ? `step ${chunk.step}: verifier (offset 0)` : `step ${chunk.step}: kept draft from ${where}`;
    output.append(span);
  });
  output.scrollTop = output.scrollHeight;
}

/** Live per-offset acceptance, from what each chunk says it drafted and kept (the same counts as the final stats). */
class LiveStats {
  tokens = 0;
  steps = 0;
  private nodes = 0;
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
    this.nodes += chunk.tree?.tokens.length ?? chunk.drafted; // a chain feeds its drafts (a cut step: what it committed)
    for (let j = 0; j < chunk.drafted; j++) this.drafted[j]++;
    for (const s of chunk.sources) if (s > 0) this.kept[s - 1]++;
    const seconds = (performance.now() - this.start) / 1000;
    const rates = this.kept.map((k, j) => (this.drafted[j] > 0 ? k / this.drafted[j] : NaN));
    showStats({ tps: this.tokens / seconds, tokens: this.tokens, forwards: this.steps, nodes: this.nodes, kept: this.kept.reduce((a, b) => a + b, 0) }, rates);
  }
}

/** The stat boxes' figures. */
interface Figures {
  tps: number;
  tokens: number;
  forwards: number;
  /** Draft nodes fed. */
  nodes: number;
  /** Drafts kept. */
  kept: number;
}

function showStats(f: Figures, rates: number[]): void {
  const fixed = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '–');
  $('stat-tps').textContent = fixed(f.tps, 1);
  $('stat-tau').textContent = fixed(f.tokens / f.forwards, 2);
  $('stat-tokens').textContent = String(f.tokens);
  $('stat-forwards').textContent = String(f.forwards);
  $('stat-nodes').textContent = fixed(f.nodes / f.forwards, 1);
  $('stat-kept').textContent = fixed(f.kept / f.forwards, 2);
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
  const { prompt, maxNewTokens, draftLength, tree, useTree } = readInputs(current);
  const output = $('output');
  output.innerHTML = '';
  const head = document.createElement('span');
  head.className = 'prompt';
  head.textContent = codec.show(prompt);
  output.append(head);
  const text = codec.stream(prompt);
  const live = new LiveStats(draftLength);
  const panel = new TreePanel($('tree-view'), $('tree-caption'));
  $('view').classList.toggle('chain', !useTree);
  panel.reset(useTree ? 'The last step’s draft tree appears here.' : '');
  let root = prompt.at(-1)!; // the token before the next step: a tree hangs under it
  running = new AbortController();
  const how = useTree ? `a dynamic tree of up to ${tree!.maxNodes} nodes (top-${tree!.topK} per depth, ${draftLength} deep)` : `${draftLength} draft${draftLength === 1 ? '' : 's'}`;
  status(`Decoding on ${tf.getBackend()} with ${how} per step…`);
  // The decoders give the event loop a turn between steps (every DECODE_DEFAULTS.yieldEveryMs), so
  // the Stop button's click and the repaints of the coloured text run while this loop decodes; the
  // tree is drawn at most once per animation frame.
  const options = { maxNewTokens, draftLength, signal: running.signal, ...(useTree ? { tree: tree! } : {}) };
  let result: DecodeResult;
  try {
    result = await consume(speculativeStream(model, prompt, options), (chunk) => {
      appendChunk(output, text, chunk);
      live.add(chunk);
      if (chunk.tree && chunk.tree.tokens.length > 0) panel.show({ chunk: chunk as Parameters<TreePanel['show']>[0]['chunk'], root, text: codec.piece });
      root = chunk.tokens.at(-1) ?? root;
    });
  } catch (error) {
    if ((error as Error).name !== 'AbortError') throw error;
    panel.flush();
    status(`Stopped after ${live.tokens} of ${maxNewTokens} tokens (${live.steps} forwards) on ${tf.getBackend()}.`);
    return;
  }
  panel.flush();
  const s = result.stats;
  showStats({ tps: s.tokensPerSecond, tokens: s.tokens, forwards: s.forwards, nodes: s.draftNodes ?? s.drafted, kept: s.accepted }, s.acceptanceRates.slice(0, draftLength));
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
  meta.textContent = `${s.tokens} tokens, ${s.forwards} forwards, ${s.wallTimeMs.toFixed(0)} ms`;
  return result;
}

/** One lane's row of the race table (also the table's `data-results` JSON, read by tests and race.ts). */
export interface LaneResult {
  lane: 'greedy' | 'chain' | 'tree';
  /** The tfjs backend the lane ran on. */
  backend: string;
  tokens: number;
  forwards: number;
  /** τ: tokens per forward. */
  tau: number;
  tokensPerSecond: number;
  wallTimeMs: number;
  /** Greedy's wall time over this lane's. */
  speedup: number;
  /** Draft nodes fed per forward (0 for greedy). */
  nodesPerStep: number;
  /** Output identical to the greedy lane's, token for token. */
  identical: boolean;
}

function showRace(rows: LaneResult[], skipped: string): void {
  const table = $('race-table');
  table.dataset.results = JSON.stringify(rows);
  table.innerHTML =
    '<tr><th>lane</th><th>τ</th><th>tok/s</th><th>speedup</th><th>nodes/step</th><th>= greedy</th></tr>' +
    rows
      .map((r) => `<tr data-lane="${r.lane}"><td>${r.lane}</td><td>${r.tau.toFixed(2)}</td><td>${r.tokensPerSecond.toFixed(1)}</td><td>${r.speedup.toFixed(2)}×</td><td>${r.nodesPerStep.toFixed(1)}</td><td>${r.identical ? '✓' : '✗'}</td></tr>`)
      .join('') +
    (skipped ? `<tr><td>tree</td><td colspan="5">${skipped}</td></tr>` : '');
  const greedy = rows[0]!;
  const others = rows.slice(1);
  const same = others.every((r) => r.identical);
  $('race-verdict').innerHTML =
    others.map((r) => `${r.lane} <b>${r.speedup.toFixed(2)}×</b> (${greedy.forwards} → ${r.forwards} forwards)`).join(', ') +
    ' vs greedy; ' +
    (same ? 'outputs <b>identical</b> ✓' : '<b style="color:#c92a2a">outputs differ</b>');
}

async function race(): Promise<void> {
  const current = await load(chosenBackend(), chosenModel());
  const { model } = current;
  const { prompt, maxNewTokens, draftLength, tree } = readInputs(current);
  running = new AbortController();
  const signal = running.signal;
  const lanes: { lane: LaneResult['lane']; run: () => AsyncGenerator<TokenChunk, DecodeResult> }[] = [
    { lane: 'greedy', run: () => greedyStream(model, prompt, { maxNewTokens, signal }) },
    { lane: 'chain', run: () => speculativeStream(model, prompt, { maxNewTokens, draftLength, signal }) },
    ...(tree ? [{ lane: 'tree' as const, run: () => speculativeStream(model, prompt, { maxNewTokens, draftLength, tree, signal }) }] : []),
  ];
  for (const id of ['lane-greedy', 'lane-chain', 'lane-tree']) $(id).style.width = '0';
  for (const id of ['meta-greedy', 'meta-chain', 'meta-tree']) $(id).textContent = '–';
  $('race-table').innerHTML = '';
  delete $('race-table').dataset.results;
  $('race-verdict').textContent = '';
  // A fair race: the first run of each input shape compiles GPU programs (a tree step feeds other
  // shapes than a chain step), so every lane runs once untimed on the same prompt and budget first.
  // That takes a while on a GPU backend: the status line counts the lanes and their tokens.
  const which = (i: number) => `lane ${i + 1} of ${lanes.length} (${lanes[i]!.lane})`;
  for (const [i, l] of lanes.entries()) {
    let tokens = 0;
    status(`Warming up ${which(i)}: an untimed run, so that compiling GPU programs is not timed…`);
    $(`meta-${l.lane}`).textContent = 'warming up…';
    await consume(l.run(), (chunk) => {
      tokens += chunk.tokens.length;
      status(`Warming up ${which(i)}: ${tokens} of ${maxNewTokens} tokens (untimed)…`);
    });
    $(`meta-${l.lane}`).textContent = 'warmed up';
  }
  const results: DecodeResult[] = [];
  for (const [i, l] of lanes.entries()) {
    status(`Racing ${which(i)}…`);
    results.push(await lane(l.run(), $(`lane-${l.lane}`), $(`meta-${l.lane}`), maxNewTokens));
  }
  const greedy = results[0]!;
  const backend = tf.getBackend();
  const rows = lanes.map(({ lane: name }, i): LaneResult => {
    const s = results[i]!.stats;
    const tokens = results[i]!.tokens;
    return {
      lane: name,
      backend,
      tokens: s.tokens,
      forwards: s.forwards,
      tau: s.meanAcceptedLength,
      tokensPerSecond: s.tokensPerSecond,
      wallTimeMs: s.wallTimeMs,
      speedup: greedy.stats.wallTimeMs / s.wallTimeMs,
      nodesPerStep: (s.draftNodes ?? s.drafted) / s.forwards,
      identical: tokens.length === greedy.tokens.length && tokens.every((t, j) => t === greedy.tokens[j]),
    };
  });
  showRace(rows, tree ? '' : 'needs drafts per step ≥ 1');
  status(`Race done on ${backend}.`);
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
  const kinds = { llama2c: 'llama2.c', hf: 'Hugging Face', layers: 'byte-level' } as const;
  models.forEach((m, i) => select.add(new Option(`${m.name} (${kinds[m.kind]})`, String(i))));
  if (!('gpu' in navigator)) markUnavailable('webgpu', 'no navigator.gpu');
  ($('tree-nodes') as HTMLInputElement).max = String(MAX_TREE_NODES);
  $('drafting').onchange = () => $('view').classList.toggle('chain', ($('drafting') as HTMLSelectElement).value !== 'tree');
  $('generate').onclick = () => void guarded(generate);
  $('race').onclick = () => void guarded(race);
  $('stop').onclick = () => running?.abort(new DOMException('stopped by the user', 'AbortError'));
  const reload = () => void guarded(async () => {
    const l = await load(chosenBackend(), chosenModel());
    status(`Ready on ${l.backend}.`);
  });
  $('backend').onchange = reload;
  select.onchange = reload;
  new TrainPanel({
    baseModel: () => models.find((m): m is Extract<ModelEntry, { kind: 'llama2c' }> => m.kind === 'llama2c' && m.draftHeads === undefined) ?? null, // serve.ts lists it with and without heads files
    startBackend: async () => (await load(chosenBackend(), chosenModel())).backend,
    run: (action) => guarded(() => action((running = new AbortController()).signal)),
    stop: () => running?.abort(new DOMException('stopped by the user', 'AbortError')),
    status,
    adopt: async (entry, layers, tokenizer) => {
      models.push(entry);
      select.add(new Option(`${entry.name} (llama2.c)`, String(models.length - 1)));
      select.value = String(models.length - 1);
      trained.set(entry, { layers, codec: bpe(tokenizer, entry.tokenizer.split('/').at(-1)!) });
      await load(chosenBackend(), entry);
    },
    race: (entry) => {
      select.value = String(models.indexOf(entry));
      return guarded(race);
    },
  });
  await guarded(async () => {
    const l = await load(chosenBackend(), chosenModel());
    status(`Ready on ${l.backend}. Type a prompt and press Generate.`);
  });
}

void init().catch((error: unknown) => status(`Error: ${(error as Error).message}`, true));
