/**
 * In-page backend setup shared by the browser test pages: registers cpu, wasm, webgl and webgpu,
 * points the wasm backend at the binaries the test server mounts under `/wasm/`, turns off the
 * "run tiny ops on the CPU" shortcuts so the GPU kernels really run, and selects one backend —
 * failing loudly if tfjs silently kept another.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export type BackendName = 'cpu' | 'wasm' | 'webgl' | 'webgpu';

/** What `useBackend` found out. */
export interface BackendInfo {
  backend: string;
  /** WebGL: the WEBGL_VERSION in use; WebGPU: the adapter's description when the browser gives one. */
  detail: string;
}

/** Selects `name` (the page's only call to `tf.setBackend`). */
export async function useBackend(name: BackendName, wasmPrefix = '/wasm/'): Promise<BackendInfo> {
  if (name === 'wasm') setWasmPaths(wasmPrefix);
  if (name === 'webgl') tf.env().set('WEBGL_CPU_FORWARD', false);
  if (name === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
  if (name === 'webgpu') tf.env().set('WEBGPU_CPU_FORWARD', false);
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) {
    throw new Error(`useBackend: tf.setBackend('${name}') failed; the backend is '${tf.getBackend()}'.`);
  }
  let detail = '';
  if (name === 'webgl') detail = `WebGL ${tf.env().getNumber('WEBGL_VERSION')}`;
  if (name === 'webgpu') {
    const adapter = (tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }).adapterInfo;
    detail = adapter ? `${adapter.vendor ?? ''} ${adapter.architecture ?? ''}`.trim() : '';
  }
  if (name === 'wasm') detail = `simd=${String(tf.env().getBool('WASM_HAS_SIMD_SUPPORT'))} threads=${String(tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'))}`;
  return { backend: tf.getBackend(), detail };
}

/**
 * Counts synchronous GPU→CPU downloads (`readSync` of a tensor whose data is not already on the
 * CPU). The decoders promise none: on WebGL they stall the pipeline, and WebGPU has no real
 * synchronous readback (tfjs emulates it through a canvas). Reads of CPU-resident data are free
 * and not counted. Returns a function reading the count. No-op on cpu and wasm.
 */
export function countSyncDownloads(): () => number {
  const backend = tf.backend() as unknown as {
    readSync: (dataId: object) => unknown;
    texData?: { get(id: object): { values?: unknown } | undefined };
    tensorMap?: { get(id: object): { values?: unknown } | undefined };
  };
  const store = tf.getBackend() === 'webgl' ? backend.texData : tf.getBackend() === 'webgpu' ? backend.tensorMap : undefined;
  let count = 0;
  if (store !== undefined) {
    const readSync = backend.readSync.bind(backend);
    backend.readSync = (dataId: object) => {
      if (store.get(dataId)?.values == null) count++;
      return readSync(dataId);
    };
  }
  return () => count;
}
