/**
 * Browser entry of the parity suite: exposes `window.parity` to the Node test driving the page
 * (Playwright `page.evaluate`). One page = one backend, selected once.
 */
import { countSyncDownloads, useBackend, type BackendInfo, type BackendName } from './backend.js';
import { runCase, type CaseResult, type CaseSpec } from './cases.js';

/** The page's API. */
export interface ParityPage {
  init(backend: BackendName): Promise<BackendInfo>;
  /** Runs a case, counting synchronous GPU→CPU reads during its decodes. */
  run(spec: CaseSpec): Promise<CaseResult>;
}

let downloads: () => number = () => 0;

const api: ParityPage = {
  async init(backend) {
    const info = await useBackend(backend);
    downloads = countSyncDownloads();
    return info;
  },
  run: (spec) => runCase(spec, downloads),
};

(globalThis as unknown as { parity: ParityPage }).parity = api;
