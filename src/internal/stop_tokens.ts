/**
 * The stop tokens a loader read from a checkpoint (llama2.c: BOS and EOS; Hugging Face:
 * `eos_token_id`), remembered per `LayersModel` so that every view of the model built later
 * (`new CachedTransformer(model)`) carries them without the caller passing them along. A WeakMap:
 * the entry goes when the model does; a model no loader saw has none.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';

const STOP_TOKENS = new WeakMap<LayersModel, readonly number[]>();

/** Records `ids` as the token ids that end a text for `model` (a frozen copy). @internal set by the loaders */
export function setModelStopTokens(model: LayersModel, ids: readonly number[]): void {
  STOP_TOKENS.set(model, Object.freeze([...ids]));
}

/** The stop tokens a loader recorded for `model`, or undefined. @internal read by `CachedTransformer` */
export function modelStopTokens(model: LayersModel): readonly number[] | undefined {
  return STOP_TOKENS.get(model);
}
