/**
 * The browser example's "Train draft heads" panel: trains the draft heads of the page's llama2.c
 * model (e.g. stories260K) on the running backend with `trainDraftHeads` — on pasted text (one
 * story per paragraph) or on text the model writes itself (self-distillation) — and shows the
 * loss and the held-out τ estimate live: a line of text and a sparkline of τ per evaluation.
 * Stop ends training at the next step and keeps the best heads evaluated so far. The trained
 * model then joins the page's Model list (so the page's race and Generate use it), and its heads
 * file (`writeDraftHeads`) is offered for download.
 *
 * The panel owns its card (index.html's `#train-card`) and the training; main.ts lends it the
 * backend, the busy state with the Stop buttons, the status line, the Model list and the race
 * through a {@link TrainPanelHost}. The card's `data-state` is the {@link TrainPanelState} as
 * JSON (tests/browser/train_heads.test.ts reads it).
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3 (heads trained on a frozen base by self-distillation).
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels } from 'tfjs-mtp';
import { loadLlama2c, TRAIN_HEADS_DEFAULTS, trainDraftHeads, writeDraftHeads, type DraftHeads, type Llama2cTokenizer, type TrainDraftHeadsOptions } from 'tfjs-mtp/models';

/** What `onProgress` is told after every step and corpus batch. */
type TrainDraftHeadsProgress = Parameters<NonNullable<TrainDraftHeadsOptions['onProgress']>>[0];

/** A llama2.c model the page serves (URLs relative to the page), as in its `models.json`. */
export interface Llama2cEntry {
  kind: 'llama2c';
  name: string;
  checkpoint: string;
  tokenizer: string;
  /** A draft-heads file's URL (here: a `blob:` URL of the trained heads, `#` the file's name). */
  draftHeads?: string;
}

/** What the page lends the panel (main.ts). */
export interface TrainPanelHost {
  /** The llama2.c model whose heads the panel trains (its checkpoint and tokenizer), or null when the page serves none. */
  baseModel(): Llama2cEntry | null;
  /** Starts the backend chosen in the page (as loading its chosen model does); resolves to its name. */
  startBackend(): Promise<string>;
  /** Runs `action` with the page's controls locked and its Stop buttons aborting `signal`; errors go to the status line. */
  run(action: (signal: AbortSignal) => Promise<void>): Promise<void>;
  /** Aborts what `run` runs. */
  stop(): void;
  status(text: string): void;
  /** Adds a trained model to the Model list under `entry` and makes it the page's model (no reload). */
  adopt(entry: Llama2cEntry, model: LayersModel, tokenizer: Llama2cTokenizer): Promise<void>;
  /** Selects `entry` in the Model list and runs the page's race on it. */
  race(entry: Llama2cEntry): Promise<void>;
}

/** What the panel shows; its card's `data-state` JSON. */
export interface TrainPanelState {
  /** `loading`: the model with fresh heads; then `trainDraftHeads`' phases; then how it ended. */
  phase: 'idle' | 'loading' | TrainDraftHeadsProgress['phase'] | 'done' | 'stopped' | 'error';
  /** The backend training runs on. */
  backend: string;
  /** The wall-time budget (seconds). */
  budget: number;
  /** Seconds since training started. */
  seconds: number;
  step: number;
  /** Mean loss over offsets 1…k−1 of the last step (null before the first). */
  loss: number | null;
  lossPerOffset: number[];
  /** Corpus: tokens written per second; training: positions trained per second. */
  tokensPerSecond: number;
  corpusTokens: number;
  /** The held-out τ of every evaluation, in order: the first is the untrained heads'. */
  taus: { seconds: number; tau: number }[];
  /** How training ended: why, its steps, the held-out τ of the heads kept, the file's name and size. */
  result: { stoppedBy: string; steps: number; tau: number | null; file: string; bytes: number } | null;
  /** The panel's line of text. */
  message: string;
}

/** What the user asked for. */
interface Settings {
  seconds: number;
  kind: 'mlp' | 'sequential';
  width: number;
  numHeads: number;
  /** Stories, one per paragraph; null: self-distillation. */
  texts: string[] | null;
  /** What the user set of the library's options (the others keep `TRAIN_HEADS_DEFAULTS`). */
  tuning: Pick<TrainDraftHeadsOptions, 'corpusTokens' | 'sequenceTokens' | 'batchSize' | 'learningRate'>;
}

/** Held-out evaluations per budget: enough points for the sparkline, few enough to cost a few percent. */
const EVALUATIONS_PER_BUDGET = 15;
/** …but at least this many seconds apart, at most the library's own interval. */
const EVALUATE_EVERY = { min: 1.5, max: 10 };
/** Sparkline size in px. */
const SPARK = { width: 260, height: 56, pad: 4 };
const SVG = 'http://www.w3.org/2000/svg';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const fixed = (x: number | null | undefined, digits: number) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));

/** Paragraphs of `text` (blank lines between), trimmed, empty ones dropped. */
export function paragraphs(text: string): string[] {
  return text
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/** The "Train draft heads" card: settings, Train, the live readout and sparkline, the race and the download. */
export class TrainPanel {
  private state: TrainPanelState = TrainPanel.idle('');
  private drawPending = false;
  private trainedCount = 0;
  /** Stop was clicked during this run. */
  private stopping = false;

  constructor(private readonly host: TrainPanelHost) {
    const base = host.baseModel();
    $('train-card').classList.toggle('unavailable', base === null);
    if (base === null) {
      this.set({ message: 'Serve the page with a llama2.c model (npm run example:browser -- --llama2c DIR) to train draft heads for it.' });
      return;
    }
    $('train-base').textContent = base.name;
    // empty fields keep the library's defaults, shown as placeholders
    $<HTMLInputElement>('train-corpus').placeholder = String(TRAIN_HEADS_DEFAULTS.corpusTokens);
    $<HTMLInputElement>('train-length').placeholder = String(TRAIN_HEADS_DEFAULTS.sequenceTokens);
    $<HTMLInputElement>('train-batch').placeholder = String(TRAIN_HEADS_DEFAULTS.batchSize);
    $<HTMLInputElement>('train-lr').placeholder = String(TRAIN_HEADS_DEFAULTS.learningRate);
    const self = $<HTMLInputElement>('train-self');
    const sync = () => {
      $<HTMLTextAreaElement>('train-text').disabled = self.checked;
      $<HTMLInputElement>('train-corpus').disabled = !self.checked;
    };
    self.onchange = sync;
    sync();
    $('train').onclick = () => void host.run((signal) => this.train(base, signal));
    $('train-stop').onclick = () => {
      host.stop();
      if (!['loading', 'corpus', 'training', 'evaluating'].includes(this.state.phase)) return;
      this.stopping = true; // seen at the next step (or after the batch of text being written)
      this.set({ message: `Stopping… ${this.state.message}` });
    };
    this.set({ message: 'Pick a budget and press Train: the held-out τ (tokens per forward) rises as the heads learn.' });
  }

  private static idle(message: string): TrainPanelState {
    return { phase: 'idle', backend: '', budget: 0, seconds: 0, step: 0, loss: null, lossPerOffset: [], tokensPerSecond: 0, corpusTokens: 0, taus: [], result: null, message };
  }

  private settings(): Settings {
    const number = (id: string, min: number, max: number, fallback: number) => Math.min(max, Math.max(min, Math.floor(Number($<HTMLInputElement>(id).value)) || fallback));
    const given = (id: string) => $<HTMLInputElement>(id).value.trim() !== '';
    const self = $<HTMLInputElement>('train-self').checked;
    const texts = self ? null : paragraphs($<HTMLTextAreaElement>('train-text').value);
    if (texts !== null && texts.length === 0) throw new Error('Train draft heads: paste some text (one story per paragraph), or tick "let the model write its own text".');
    const tuning: Settings['tuning'] = {};
    if (self && given('train-corpus')) tuning.corpusTokens = number('train-corpus', 1, 2 ** 31 - 1, 1);
    if (given('train-length')) tuning.sequenceTokens = number('train-length', 8, 65_536, TRAIN_HEADS_DEFAULTS.sequenceTokens);
    if (given('train-batch')) tuning.batchSize = number('train-batch', 1, 65_536, 1);
    if (given('train-lr')) tuning.learningRate = Math.min(1, Math.max(1e-6, Number($<HTMLInputElement>('train-lr').value) || TRAIN_HEADS_DEFAULTS.learningRate));
    return {
      seconds: number('train-seconds', 5, 3600, 60),
      kind: $<HTMLSelectElement>('train-kind').value === 'sequential' ? 'sequential' : 'mlp',
      width: number('train-width', 4, 1024, 64),
      numHeads: Number($<HTMLSelectElement>('train-k').value),
      texts,
      tuning,
    };
  }

  /** Runs {@link trainRun}; a failure is shown in the card (and, rethrown, in the page's status line). */
  private async train(base: Llama2cEntry, signal: AbortSignal): Promise<void> {
    try {
      await this.trainRun(base, signal);
    } catch (error) {
      this.set({ phase: 'error', message: `Training failed: ${(error as Error).message}` });
      throw error;
    }
  }

  /** Loads the base model with fresh heads, trains them, then hands the model to the page and offers the file. */
  private async trainRun(base: Llama2cEntry, signal: AbortSignal): Promise<void> {
    const s = this.settings();
    this.clearResult();
    this.stopping = false;
    const backend = await this.host.startBackend();
    if (backend === 'wasm') registerWasmTrainingKernels(); // the gradient of a gather (UnsortedSegmentSum) and faster kernels; idempotent
    const what = `${s.kind} heads, k = ${s.numHeads}, width ${s.width}`;
    this.state = { ...TrainPanel.idle(`Loading ${base.name} with fresh ${what} on ${backend}…`), phase: 'loading', backend, budget: s.seconds };
    this.draw();
    this.host.status(`Training draft heads on ${backend}…`);
    // mlp heads start as the identity (each offset drafts what offset 0 would: τ ≈ 1); sequential modules start random
    const { model, tokenizer } = await loadLlama2c(base.checkpoint, { tokenizer: base.tokenizer, mtpHeads: s.numHeads, headKind: s.kind, headHiddenSize: s.width });
    let handedOver = false;
    const reading = s.texts !== null ? `Reading the ${s.texts.length} pasted ${s.texts.length === 1 ? 'story' : 'stories'}` : 'The model is writing its training text';
    this.set({ phase: 'corpus', message: `${reading} on ${backend}… (progress after each batch)` });
    try {
      const heads = await trainDraftHeads(model, {
        ...(s.texts !== null ? { texts: s.texts, tokenizer: tokenizer! } : {}),
        ...s.tuning,
        seconds: s.seconds,
        evaluateEvery: Math.min(EVALUATE_EVERY.max, Math.max(EVALUATE_EVERY.min, s.seconds / EVALUATIONS_PER_BUDGET)),
        signal,
        onProgress: (p) => this.progress(p),
      });
      const entry = this.offer(base, s, heads);
      await this.host.adopt(entry, model, tokenizer!);
      handedOver = true;
      this.host.status(`${this.state.message} Ready on ${backend}.`);
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
      this.set({ phase: 'stopped', message: 'Stopped before training began: no heads were trained.' }); // during training an abort resolves with the best heads
      this.host.status('Stopped before training began.');
    } finally {
      if (!handedOver) model.dispose();
    }
  }

  /** One progress report: the phase, the loss, τ when an evaluation ran. */
  private progress(p: TrainDraftHeadsProgress): void {
    const taus = p.phase === 'evaluating' && p.heldOutTau !== undefined ? [...this.state.taus, { seconds: p.seconds, tau: p.heldOutTau }] : this.state.taus;
    const loss = Number.isFinite(p.loss) ? p.loss : null;
    Object.assign(this.state, { phase: p.phase, step: p.step, loss, lossPerOffset: p.lossPerOffset, tokensPerSecond: p.tokensPerSecond, corpusTokens: p.corpusTokens, seconds: p.seconds, taus });
    this.state.message = `${this.stopping ? 'Stopping… ' : ''}${this.liveMessage()}`;
    this.schedule();
  }

  private liveMessage(): string {
    const s = this.state;
    const clock = `${s.seconds.toFixed(0)} s of ${s.budget} s on ${s.backend}`;
    if (s.phase === 'corpus') return `Reading the training text: ${(s.corpusTokens / 1000).toFixed(1)}k tokens (${s.tokensPerSecond.toFixed(0)} tokens/s) · ${clock}`;
    const perOffset = s.lossPerOffset.map((l) => l.toFixed(2)).join(' / ');
    const tau = s.taus.length === 0 ? 'held-out τ –' : `held-out τ ${s.taus[0]!.tau.toFixed(2)} → ${s.taus.at(-1)!.tau.toFixed(2)} (best ${Math.max(...s.taus.map((t) => t.tau)).toFixed(2)})`;
    const loss = s.loss === null ? '' : `, loss ${s.loss.toFixed(3)} (offsets ${perOffset})`;
    return `Step ${s.step}${loss}, ${(s.tokensPerSecond / 1000).toFixed(1)}k positions/s · ${tau} · ${clock}`;
  }

  /** Writes the heads file, offers it for download, and returns the Model entry of the trained model. */
  private offer(base: Llama2cEntry, s: Settings, heads: DraftHeads): Llama2cEntry {
    const training = (heads.manifest.training ?? {}) as { stoppedBy?: string; steps?: number; heldOut?: { tau?: number } | null };
    const bytes = writeDraftHeads(heads);
    this.trainedCount += 1;
    const tag = `${s.kind}-k${s.numHeads}-w${s.width}${this.trainedCount > 1 ? `-${this.trainedCount}` : ''}`;
    const file = `${base.name}-${tag}.bin`;
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' })); // kept: the Model entry reloads from it after a backend switch
    const link = $<HTMLAnchorElement>('train-download');
    link.href = url;
    link.download = file;
    link.textContent = `Download ${file} (${(bytes.length / 1024).toFixed(0)} KiB)`;
    link.hidden = false;
    const tau = training.heldOut?.tau ?? null;
    const steps = training.steps ?? this.state.step;
    const stopped = training.stoppedBy === 'signal';
    const start = this.state.taus[0]?.tau;
    const change = tau === null ? 'no held-out text to estimate τ: paste more stories for one' : `held-out τ ${fixed(start, 2)} → ${tau.toFixed(2)}`;
    this.set({
      phase: stopped ? 'stopped' : 'done',
      result: { stoppedBy: training.stoppedBy ?? 'unknown', steps, tau, file, bytes: bytes.length },
      message: stopped
        ? `Stopped after ${steps} steps: the best heads so far are kept (${change}).`
        : `Done: ${steps} steps in ${this.state.seconds.toFixed(0)} s (${change}).`,
    });
    const entry: Llama2cEntry = { kind: 'llama2c', name: `${base.name} + trained ${tag}`, checkpoint: base.checkpoint, tokenizer: base.tokenizer, draftHeads: `${url}#${file}` };
    const race = $<HTMLButtonElement>('train-race');
    race.hidden = false;
    race.onclick = () => void this.host.race(entry);
    return entry;
  }

  /** Before a new run: the previous run's race button and file go (its Model entry stays, its file with it). */
  private clearResult(): void {
    $('train-race').hidden = true;
    $('train-download').hidden = true;
  }

  private set(change: Partial<TrainPanelState>): void {
    Object.assign(this.state, change);
    this.draw();
  }

  /** Draws at the next animation frame at most once (progress arrives after every step). */
  private schedule(): void {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.draw();
    });
  }

  private draw(): void {
    const card = $('train-card');
    card.dataset.state = JSON.stringify(this.state);
    card.dataset.phase = this.state.phase;
    $('train-readout').textContent = this.state.message;
    drawSparkline($('train-spark') as unknown as SVGSVGElement, this.state.taus);
  }
}

/** The held-out τ per evaluation as a polyline, the untrained heads' τ dashed, the latest a dot. */
function drawSparkline(svg: SVGSVGElement, taus: TrainPanelState['taus']): void {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${SPARK.width} ${SPARK.height}`);
  if (taus.length === 0) return;
  const values = taus.map((t) => t.tau);
  const low = Math.min(1, ...values);
  const high = Math.max(low + 0.5, ...values);
  const x = (i: number) => SPARK.pad + (taus.length === 1 ? 0 : (i * (SPARK.width - 2 * SPARK.pad)) / (taus.length - 1));
  const y = (tau: number) => SPARK.height - SPARK.pad - ((tau - low) / (high - low)) * (SPARK.height - 2 * SPARK.pad);
  const add = (tag: string, attributes: Record<string, string | number>) => {
    const element = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, String(v));
    svg.append(element);
    return element;
  };
  add('line', { x1: 0, x2: SPARK.width, y1: y(values[0]!), y2: y(values[0]!), class: 'start' });
  add('polyline', { points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '), class: 'tau' });
  add('circle', { cx: x(values.length - 1), cy: y(values.at(-1)!), r: 2.5, class: 'tau' });
  // labels in the corners the line rarely crosses (it starts low on the left and rises to the right)
  add('text', { x: SPARK.pad, y: 11 }).textContent = `τ ${values.at(-1)!.toFixed(2)}`;
  add('text', { x: SPARK.width - SPARK.pad, y: SPARK.height - SPARK.pad - 2, 'text-anchor': 'end' }).textContent = low.toFixed(1); // the axis floor
}
