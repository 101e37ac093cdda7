/**
 * Browser entry of the parity suite: exposes `window.parity` to the Node test driving the page
 * (Playwright `page.evaluate`). One page = one backend, selected once.
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpu_util } from '@tensorflow/tfjs-backend-webgpu';
import { countSyncDownloads, useBackend, type BackendInfo, type BackendName } from './backend.js';
import { runCase, type CaseResult, type CaseSpec } from './cases.js';

/** The page's API. */
export interface ParityPage {
  /**
   * Selects the backend and installs the sync-download counter; on webgl, `counterSeesDataSync`
   * says whether a deliberate `dataSync` of GPU data was counted (the counter's own check). On
   * webgpu every matMul runs tfjs's small-output-size program: the one tfjs picks for outputs of
   * at most 128 values (a one-row step's projections here), its workgroup-reduction program, takes
   * ~25 ms a dispatch on SwiftShader, which made this page's decodes ~7× slower. (The stories260K
   * suite runs webgpu with tfjs's own choice.)
   */
  init(backend: BackendName): Promise<BackendInfo & { counterSeesDataSync: boolean }>;
  /** Runs a case, counting synchronous GPU→CPU reads during its decodes. */
  run(spec: CaseSpec): Promise<CaseResult>;
}

let downloads: () => number = () => 0;

const api: ParityPage = {
  async init(backend) {
    const info = await useBackend(backend);
    if (backend === 'webgpu') tf.env().set('WEBGPU_MATMUL_PROGRAM_TYPE', webgpu_util.MatMulProgramType.MatMulSmallOutputSizeProgram);
    downloads = countSyncDownloads();
    if (backend !== 'webgl') return { ...info, counterSeesDataSync: false };
    // WebGL only: on WebGPU (headless Chromium, SwiftShader) tfjs's emulated dataSync returns
    // zeros and every later async read throws ("mapAsync … A valid external Instance reference
    // no longer exists"), which would end the page.
    const before = downloads();
    tf.tidy(() => tf.square(tf.fill([4, 4], 3)).dataSync()); // computed on the device, then read synchronously
    return { ...info, counterSeesDataSync: downloads() === before + 1 };
  },
  run: (spec) => runCase(spec, downloads),
};

(globalThis as unknown as { parity: ParityPage }).parity = api;
