/**
 * Where a decoding step's time goes, for `npm run bench` (issue #10 §5): a timing proxy around
 * the `MultiTokenModel` the decoders drive, a readback timer and a kernel counter.
 *
 * - {@link instrument} wraps a model: every call of `forward`, `headLogits`, `truncate` and the
 *   optional members (`forwardTree`, `keepRows`, the head passes, `beginDecode` / `endDecode`) is
 *   timed and charged to the current step. A step starts at a `forward` or `forwardTree` call (one
 *   per step) and ends at the next one or at the decode's end. Optional members are passed on only when the model has them, so the decoder
 *   takes the same path through the proxy as without it.
 * - {@link timeReadbacks} times every `await tensor.data()` (the decoders' one readback per step).
 * - {@link countKernels} counts kernel dispatches through the engine (`runKernelFunc`). It costs
 *   time itself, so a bench counts kernels in a pass of its own and times in another.
 *
 * On cpu and wasm every kernel runs when its op is called, so the wall time of a model call is
 * its compute. What a step spends outside the model calls and the readback (the decoder's own
 * ops and bookkeeping, yielding to the event loop) is reported as `other`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MultiTokenModel } from '../src/index.js';
import { median } from './stats.js';

/** What one step spent, in ms (and kernels, in a counting pass). */
export interface StepSample {
  /** `performance.now()` when the step's forward was called. */
  start: number;
  /** Wall time of the step (until the next forward or the decode's end). */
  total: number;
  forward: number;
  /** `headLogits` + `headArgmax`. */
  heads: number;
  readback: number;
  /** `truncate`. */
  rollback: number;
  /** `beginDecode` + `endDecode`. */
  prepare: number;
  kernels: number;
}

type Category = 'forward' | 'heads' | 'readback' | 'rollback' | 'prepare';

/** Collects {@link StepSample}s: one list per decode, the first entry is what ran before the prompt's forward. */
export class StepRecorder {
  private decodes: StepSample[][] = [];
  private current: StepSample[] | null = null;

  /** Starts recording one decode. */
  begin(): void {
    this.current = [sample(performance.now())];
    this.decodes.push(this.current);
  }

  /** Ends the current decode (the last step ends now). */
  end(): void {
    const steps = this.current!;
    const now = performance.now();
    steps.forEach((s, i) => (s.total = (steps[i + 1]?.start ?? now) - s.start));
    this.current = null;
  }

  /** A new step starts (called by the proxy's `forward`). */
  newStep(): void {
    this.current?.push(sample(performance.now()));
  }

  /** Adds `ms` to the current step's `category`. */
  charge(category: Category, ms: number): void {
    const step = this.current?.at(-1);
    if (step) step[category] += ms;
  }

  /** One more kernel in the current step. */
  kernel(): void {
    const step = this.current?.at(-1);
    if (step) step.kernels++;
  }

  /**
   * Every recorded step after the prompt's forward (the prompt's forward covers many positions
   * and the setup before it is per decode, not per step).
   */
  steps(): StepSample[] {
    return this.decodes.flatMap((steps) => steps.slice(2));
  }

  /** Per-decode setup (`beginDecode`, validation) and the prompt's forward are left out; medians over steps. */
  summary(): StepCost {
    const steps = this.steps();
    const m = (pick: (s: StepSample) => number) => median(steps.map(pick));
    const total = m((s) => s.total);
    const parts = { forward: m((s) => s.forward), heads: m((s) => s.heads), readback: m((s) => s.readback), rollback: m((s) => s.rollback) };
    return { steps: steps.length, msPerStep: total, ...parts, other: m((s) => s.total - s.forward - s.heads - s.readback - s.rollback), kernelsPerStep: m((s) => s.kernels) };
  }
}

/** Medians over steps, in ms (the parts are medians of their own and need not add up to `msPerStep`). */
export interface StepCost {
  steps: number;
  msPerStep: number;
  forward: number;
  heads: number;
  readback: number;
  rollback: number;
  /** Step time outside the model calls and the readback: the decoder's own ops, its JS, yielding. */
  other: number;
  kernelsPerStep: number;
}

function sample(start: number): StepSample {
  return { start, total: 0, forward: 0, heads: 0, readback: 0, rollback: 0, prepare: 0, kernels: 0 };
}

/** `inner` with every call timed into `recorder` (see the module header). */
export function instrument(inner: MultiTokenModel, recorder: StepRecorder): MultiTokenModel {
  const timed = <T>(category: Category, run: () => T): T => {
    const t0 = performance.now();
    try {
      return run();
    } finally {
      recorder.charge(category, performance.now() - t0);
    }
  };
  const proxy: MultiTokenModel = {
    get numHeads() {
      return inner.numHeads;
    },
    get vocabSize() {
      return inner.vocabSize;
    },
    get maxLength() {
      return inner.maxLength;
    },
    get length() {
      return inner.length;
    },
    forward(tokenIds) {
      recorder.newStep();
      return timed('forward', () => inner.forward(tokenIds));
    },
    headLogits: (states, offsets) => timed('heads', () => inner.headLogits(states, offsets)),
    truncate: (length) => timed('rollback', () => inner.truncate(length)),
  };
  // optional members are passed on only when the model has them, so the decoder takes the same path through the proxy
  if (inner.headArgmax) proxy.headArgmax = (states, n) => timed('heads', () => inner.headArgmax!(states, n));
  if (inner.headTopK) proxy.headTopK = (states, n, k) => timed('heads', () => inner.headTopK!(states, n, k));
  if (inner.headTree) proxy.headTree = (states, roots, depth, k) => timed('heads', () => inner.headTree!(states, roots, depth, k));
  if (inner.draftArgmax) proxy.draftArgmax = (states, roots, n) => timed('heads', () => inner.draftArgmax!(states, roots, n));
  if (inner.draftTopK) proxy.draftTopK = (states, roots, n, k) => timed('heads', () => inner.draftTopK!(states, roots, n, k));
  if (inner.draftLogits) proxy.draftLogits = (states, roots, n, choose) => timed('heads', () => inner.draftLogits!(states, roots, n, choose));
  if (inner.forwardTree) {
    proxy.forwardTree = (tokenIds, parents) => {
      recorder.newStep();
      return timed('forward', () => inner.forwardTree!(tokenIds, parents));
    };
  }
  if (inner.keepRows) proxy.keepRows = (rows) => timed('rollback', () => inner.keepRows!(rows));
  if (inner.draftVocab !== undefined) Object.defineProperty(proxy, 'draftVocab', { get: () => inner.draftVocab });
  if (inner.beginDecode) proxy.beginDecode = () => timed('prepare', () => inner.beginDecode!());
  if (inner.endDecode) proxy.endDecode = () => timed('prepare', () => inner.endDecode!());
  return proxy;
}

/** Runs `run` with every `tensor.data()` timed (call to resolution) into `recorder`'s readback. */
export async function timeReadbacks<T>(recorder: StepRecorder, run: () => Promise<T>): Promise<T> {
  const proto = tf.Tensor.prototype as { data: (this: tf.Tensor) => Promise<unknown> };
  const original = proto.data;
  proto.data = async function (this: tf.Tensor) {
    const t0 = performance.now();
    try {
      return await original.call(this);
    } finally {
      recorder.charge('readback', performance.now() - t0);
    }
  };
  try {
    return await run();
  } finally {
    proto.data = original;
  }
}

/** Runs `run` counting every kernel the engine dispatches into `recorder`'s current step. */
export async function countKernels<T>(recorder: StepRecorder, run: () => Promise<T>): Promise<T> {
  const engine = tf.engine() as unknown as { runKernelFunc: (params: unknown) => unknown };
  const original = engine.runKernelFunc;
  engine.runKernelFunc = function (this: unknown, params: unknown) {
    recorder.kernel();
    return original.call(this, params);
  };
  try {
    return await run();
  } finally {
    engine.runKernelFunc = original;
  }
}
