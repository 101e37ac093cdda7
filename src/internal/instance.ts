/**
 * Layers and symbolic tensors from another copy of tfjs-layers. An app that links this package
 * (`npm i ../tfjs-mtp`) or pins another tfjs version can load two copies of
 * `@tensorflow/tfjs-layers`; their layers look right but fail every `instanceof` check of this
 * package's copy, which would otherwise be reported as "got an object (Object)". The checks here
 * recognise such objects by shape and say what happened, naming the version this package uses
 * (and the other copy's, where the object records it: a `LayersModel` does, a layer does not).
 *
 * Tensors need no such check: tfjs-core keeps one engine and one `Tensor` class per page or
 * process (a global shared by every copy) and answers `instanceof Tensor` by duck typing, so a
 * tensor from another copy of tfjs-core is a tensor here. What remains is an object that has a
 * tensor's `dataId`, `shape` and `dtype` but none of its methods (a tfjs older than that sharing).
 */
import * as tf from '@tensorflow/tfjs-core';
import { layers, SymbolicTensor, version_layers } from '@tensorflow/tfjs-layers';

/** What a foreign object is and which package made it. */
interface Foreign {
  /** How the message names it, e.g. `a tensor (int32 [1, 3])`. */
  what: string;
  pkg: '@tensorflow/tfjs-core' | '@tensorflow/tfjs-layers';
  /** The version this package imports. */
  ours: string;
  /** The other copy's version, when the object records it. */
  theirs: string | null;
}

type Loose = Record<string, unknown>;

const isObject = (value: unknown): value is Loose => value !== null && typeof value === 'object';

/** The version a `LayersModel` writes into its JSON (`keras_version: 'tfjs-layers x.y.z'`), or null. */
function layersModelVersion(model: Loose): string | null {
  try {
    const json = (model['toJSON'] as (unused: null, returnString: false) => { keras_version?: unknown }).call(model, null, false);
    const match = /^tfjs-layers (\S+)$/.exec(String(json.keras_version));
    return match ? match[1]! : null;
  } catch {
    return null;
  }
}

/** Describes `value` when it is a tfjs tensor, symbolic tensor or layer from another copy of tfjs; null otherwise. */
export function foreignTfjs(value: unknown): Foreign | null {
  if (!isObject(value) || value instanceof tf.Tensor || value instanceof SymbolicTensor || value instanceof layers.Layer) return null;
  const shape = Array.isArray(value['shape']) ? `[${(value['shape'] as unknown[]).map(String).join(', ')}]` : null;
  if ('dataId' in value && shape !== null && typeof value['dtype'] === 'string') {
    return { what: `a tensor (${value['dtype']} ${shape})`, pkg: '@tensorflow/tfjs-core', ours: tf.version_core, theirs: null };
  }
  if (isObject(value['sourceLayer']) && shape !== null && typeof value['dtype'] === 'string') {
    return { what: `a symbolic tensor (${value['dtype']} ${shape})`, pkg: '@tensorflow/tfjs-layers', ours: version_layers, theirs: null };
  }
  if (typeof value['getClassName'] === 'function' && typeof value['apply'] === 'function') {
    const className = String((value['getClassName'] as () => unknown).call(value));
    const isModel = typeof value['predict'] === 'function' && typeof value['toJSON'] === 'function';
    return { what: `a ${isModel ? 'model' : 'layer'} (${className})`, pkg: '@tensorflow/tfjs-layers', ours: version_layers, theirs: isModel ? layersModelVersion(value) : null };
  }
  return null;
}

/**
 * Throws a `TypeError` when `value` is a tensor, symbolic tensor or layer from another copy of
 * tfjs than this package's, naming `fn`, `arg`, both versions (the other one where known) and
 * the fix; does nothing otherwise. Call it where a tfjs object enters, before the `instanceof`
 * check that would reject it as "an object".
 */
export function checkSameTfjs(fn: string, arg: string, value: unknown): void {
  const foreign = foreignTfjs(value);
  if (foreign === null) return;
  const { what, pkg, ours, theirs } = foreign;
  throw new TypeError(
    `${fn}: ${arg} is ${what} from another copy of ${pkg} (${theirs ?? 'version unknown'}; this package uses ${ours}): ` +
      'install one copy (npm dedupe, or list tfjs as peer dependencies; a linked checkout of tfjs-mtp brings its own: install its `npm pack` tarball instead).',
  );
}
