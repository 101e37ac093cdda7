/**
 * Shared types and argument checks of the MTP layers: the offset-head kinds, the tfjs-layers
 * argument types re-expressed from the public `layers` namespace (no deep imports), and small
 * validators whose messages name the class, the argument, the constraint and the value.
 *
 * Reference: tfjs-layers `src/layers/embeddings.ts` (argument conventions).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers } from '@tensorflow/tfjs-layers';


/**
 * The hidden → hidden transform of one offset head.
 * - `identity`: `x` (no parameters).
 * - `linear`: `x·W + b`, `W` initialised to the identity.
 * - `residual`: `x + act(x·W + b)`, `W` and `b` zero-initialised (Medusa's ResBlock).
 * - `lowRank`: `x + act(x·A)·B`, `A` `[D, r]` random, `B` `[r, D]` zero-initialised (LoRA-style).
 */
export type OffsetHeadKind = 'identity' | 'linear' | 'residual' | 'lowRank';

/** All offset-head kinds, in documentation order. */
export const OFFSET_HEAD_KINDS: readonly OffsetHeadKind[] = ['identity', 'linear', 'residual', 'lowRank'];

/** Base arguments of every tfjs-layers `Layer` (`name`, `trainable`, `inputShape`, …). */
export type LayerArgs = NonNullable<ConstructorParameters<typeof layers.Layer>[0]>;

/** An activation name accepted by `tf.layers.activation` (`'swish'`, `'relu'`, `'gelu'`, …). */
export type ActivationIdentifier = NonNullable<NonNullable<Parameters<typeof layers.activation>[0]>['activation']>;

/** A tfjs-layers initializer object, e.g. `tf.initializers.randomNormal({})`. */
export type Initializer = ReturnType<typeof initializers.ones>;

/** An initializer name accepted by tfjs-layers (`'glorotUniform'`, `'zeros'`, …). */
export type InitializerIdentifier = Exclude<NonNullable<NonNullable<Parameters<typeof layers.dense>[0]>['kernelInitializer']>, Initializer>;

/** A tfjs-layers `Layer` instance. */
export type Layer = InstanceType<typeof layers.Layer>;

/** Throws unless `kind` is an {@link OffsetHeadKind}; returns it. */
export function checkKind(where: string, name: string, kind: unknown): OffsetHeadKind {
  if (!OFFSET_HEAD_KINDS.includes(kind as OffsetHeadKind)) {
    throw new TypeError(`${where}: ${name} must be one of ${OFFSET_HEAD_KINDS.map((k) => `'${k}'`).join(', ')}, but got ${JSON.stringify(kind)}.`);
  }
  return kind as OffsetHeadKind;
}

/** Builds a `tf.layers.activation` layer, rethrowing an unknown name with the caller's context. */
export function makeActivation(where: string, activation: ActivationIdentifier): Layer {
  try {
    return layers.activation({ activation });
  } catch {
    throw new TypeError(`${where}: activation must be a tfjs-layers activation name, but got ${JSON.stringify(activation)}.`);
  }
}

/**
 * Resolves an initializer name, object or serialized config to an `Initializer` with
 * tfjs-layers' own resolver (read off a throwaway `Dense`, since `getInitializer` is not public).
 */
export function resolveInitializer(where: string, init: InitializerIdentifier | Initializer | tf.serialization.ConfigDict): Initializer {
  try {
    const probe = layers.dense({ units: 1, kernelInitializer: init as InitializerIdentifier });
    return (probe as unknown as { kernelInitializer: Initializer }).kernelInitializer;
  } catch {
    throw new TypeError(`${where}: the initializer must be a tfjs-layers initializer name or object, but got ${JSON.stringify(init)}.`);
  }
}

/** Serializes an initializer as tfjs-layers does (`{className, config}`). */
export function serializeInitializer(init: Initializer): tf.serialization.ConfigDict {
  return { className: init.getClassName(), config: init.getConfig() };
}
