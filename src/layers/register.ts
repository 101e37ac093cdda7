/**
 * `registerMtpLayers`: registers the three MTP layer classes for `tf.loadLayersModel`. Each
 * module also registers its class when loaded, as tfjs-layers does, but bundlers may drop
 * that side effect (`sideEffects: false`), so apps that load saved models call this first.
 */
import { MultiTokenHead } from './multi_token_head.js';
import { LightweightOffsetHead } from './offset_head.js';
import { registerOnce } from './registration.js';
import { SharedUnembedding } from './shared_unembedding.js';

/**
 * Registers `SharedUnembedding`, `LightweightOffsetHead` and `MultiTokenHead` with
 * `tf.serialization.registerClass`. Idempotent: calling it again does nothing.
 *
 * @example
 * registerMtpLayers();
 * const model = await tf.loadLayersModel('file://model/model.json');
 */
export function registerMtpLayers(): void {
  registerOnce(SharedUnembedding);
  registerOnce(LightweightOffsetHead);
  registerOnce(MultiTokenHead);
}
