/**
 * The test pages in one bundle, built once for the browser tier (tests/browser/global_setup.ts):
 * each page only exposes its API on `globalThis` when loaded (`parity`, `llama`, `treeWebgl`) and
 * does nothing until its test calls `init`, so one script serves every suite. The modules are
 * imported as namespaces and exported: the package is marked side-effect free, so bare imports
 * would be dropped from the bundle.
 */
import * as llama from './llama_page.js';
import * as parity from './parity_page.js';
import * as treeWebgl from './tree_webgl_page.js';

export const pages = { llama, parity, treeWebgl };
