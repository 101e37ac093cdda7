/**
 * Backend choice for the node-only commands: the app (here the command) chooses the backend,
 * the library never does. Node without tfjs-node has two: wasm and cpu.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

/** The backends the commands accept, the default first. */
export const NODE_BACKENDS = ['wasm', 'cpu'] as const;

/** One of {@link NODE_BACKENDS}. */
export type NodeBackend = (typeof NODE_BACKENDS)[number];

/** Sets and initializes `name` (throws if it cannot start). */
export async function useBackend(name: NodeBackend): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`useBackend: could not initialize the ${name} backend.`);
  await tf.ready();
}
