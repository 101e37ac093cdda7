/**
 * `registerMtpLayers`: registers the MTP layer classes for `tf.loadLayersModel`. Each
 * class also registers itself when first constructed (so a model built in this process saves
 * and loads back without a call); an app that loads a saved model before constructing any MTP
 * layer calls this first. Nothing registers at module load, so bundlers can drop unused classes.
 */
import { registerOnce } from '../internal/registration.js';
import { MultiTokenHead } from './multi_token_head.js';
import { LightweightOffsetHead } from './offset_head.js';
import { SequentialMtpHead } from './sequential_mtp.js';
import { SharedUnembedding } from './shared_unembedding.js';

export { isRegistered, registerOnce } from '../internal/registration.js';

/**
 * Registers `SharedUnembedding`, `LightweightOffsetHead`, `MultiTokenHead` and `SequentialMtpHead` with
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
  registerOnce(SequentialMtpHead);
}
