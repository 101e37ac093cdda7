/**
 * A clear error, before backpropagation starts, when the running backend cannot compute the
 * gradient of an embedding: tfjs differentiates `gather` with the `UnsortedSegmentSum` kernel,
 * which tfjs-backend-wasm does not ship, and the engine's own failure comes from deep inside
 * `model.fit` naming neither the cause nor the fix.
 *
 * The check runs inside a gradient computation only (`model.fit`, `optimizer.minimize`), on the
 * operations recorded so far: it fires when a `gather` reads a trainable variable (or a value
 * computed from one), so a frozen embedding, evaluation and inference never trigger it.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The operations recorded for the gradient being computed, as tfjs-core's engine keeps them. */
interface TapeNodeLike {
  kernelName: string;
  inputs: Record<string, tf.Tensor | undefined>;
  outputs: tf.Tensor[];
  /** Copies kept for the backward pass (the engine disposes them after backpropagation only). */
  saved?: tf.Tensor[];
}

/** Whether a `gather` recorded on the active tape reads a trainable variable or a value computed from one. */
function gathersTrainable(tape: readonly TapeNodeLike[]): boolean {
  const derived = new Set<number>(); // ids of tensors computed from a trainable variable
  const fromTrainable = (t: tf.Tensor | undefined) => t !== undefined && ((t instanceof tf.Variable && t.trainable) || derived.has(t.id));
  for (const node of tape) {
    if (node.kernelName === tf.GatherV2 && fromTrainable(node.inputs['x'])) return true;
    if (Object.values(node.inputs).some(fromTrainable)) for (const out of node.outputs) derived.add(out.id);
  }
  return false;
}

/**
 * Throws, naming `where`, the backend and the fix, when a gradient is being recorded that will
 * need `UnsortedSegmentSum` and the running backend has no such kernel. Free otherwise (one
 * registry lookup inside a gradient computation, nothing outside one).
 */
export function checkGatherGradient(where: string): void {
  const engine = tf.engine();
  if (!engine.isTapeOn()) return;
  const backend = tf.getBackend();
  if (tf.getKernel(tf.UnsortedSegmentSum, backend) !== undefined) return;
  const tape = engine.state.activeTape as unknown as TapeNodeLike[];
  if (!gathersTrainable(tape)) return;
  // The gradient is abandoned: free the copies the engine kept for it, which it would otherwise
  // leak (not inside a higher-order gradient, whose outer computation shares the tape).
  if (engine.state.gradientDepth === 1) for (const node of tape) tf.dispose(node.saved ?? []);
  const fix =
    backend === 'wasm'
      ? "call registerWasmTrainingKernels() (exported by 'tfjs-mtp') once before training"
      : 'freeze the embedding (e.g. freezeAllButDraftHeads(model)) or train on a backend that has the kernel';
  throw new Error(
    `${where}: training an embedding (a weight read by gather) needs the backend's 'UnsortedSegmentSum' kernel for its gradient, but the '${backend}' backend has none; ${fix}.`,
  );
}
