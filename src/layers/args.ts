/**
 * The arguments of the MTP layers: the offset-head kinds, the defaults of every optional
 * argument (one place, {@link LAYER_DEFAULTS}), the tfjs-layers argument types re-expressed from
 * the public `layers` namespace (no deep imports), and the validators whose messages name the
 * class, the argument, the constraint and the value. Every size is bounded (the errors state
 * each bound) and checked before anything is allocated.
 *
 * Reference: tfjs-layers `src/layers/embeddings.ts` (argument conventions).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers } from '@tensorflow/tfjs-layers';
import { checkBoolean, checkPositiveInteger, fail, show, SIZE_LIMITS } from '../internal/errors.js';

/**
 * The hidden → hidden transform of one offset head. Every kind starts as the identity function.
 * - `identity`: `x` (no parameters).
 * - `linear`: `x·W + b`, `W` initialised to the identity, `b` to zero.
 * - `residual`: `x + act(x·W + b)`, `W` and `b` zero-initialised (Medusa's ResBlock).
 * - `lowRank`: `x + act(x·A)·B`, `A` `[D, r]` random, `B` `[r, D]` zero-initialised (LoRA-style).
 * - `mlp`: `x + act(x·W1 + b1)·W2 + b2`, `W1` `[D, H]` random, `W2` `[H, D]` and both biases
 *   zero-initialised (a transformer-style MLP block with width `H = headHiddenSize`).
 * @inline
 */
export type OffsetHeadKind = 'identity' | 'linear' | 'residual' | 'lowRank' | 'mlp';

/** All offset-head kinds, in documentation order. */
export const OFFSET_HEAD_KINDS: readonly OffsetHeadKind[] = ['identity', 'linear', 'residual', 'lowRank', 'mlp'];

/** Base arguments of every tfjs-layers `Layer` (`name`, `trainable`, `inputShape`, …). (not exported from the package: the public args interfaces extend it) */
export type LayerArgs = NonNullable<ConstructorParameters<typeof layers.Layer>[0]>;

/** An activation name accepted by `tf.layers.activation` (`'swish'`, `'relu'`, `'gelu'`, …). @inline */
export type ActivationIdentifier = NonNullable<NonNullable<Parameters<typeof layers.activation>[0]>['activation']>;

/** A tfjs-layers initializer object, e.g. `tf.initializers.randomNormal({})`. */
export type Initializer = ReturnType<typeof initializers.ones>;

/** An initializer name accepted by tfjs-layers (`'glorotUniform'`, `'zeros'`, …). */
export type InitializerIdentifier = Exclude<NonNullable<NonNullable<Parameters<typeof layers.dense>[0]>['kernelInitializer']>, Initializer>;

/** A tfjs-layers `Layer` instance. */
export type Layer = InstanceType<typeof layers.Layer>;

/**
 * tfjs-layers' `Layer` class, read through a pure call. `class X extends layers.Layer` reads a
 * property when its module loads, which a bundler must keep, and with it the class; extending
 * this instead lets an app that never uses a layer class drop it (tests/package checks). For the
 * same reason the layers' `className` is a static getter: a static field compiles (for es2020)
 * to an assignment after the class, which a bundler must keep too.
 */
export const LayerBase: typeof layers.Layer = /* @__PURE__ */ (() => layers.Layer)();

/**
 * The default of every optional argument of the MTP layers and of `parameterReport`, each with
 * its reason. The layers and the docs refer here instead of repeating a value.
 */
export const LAYER_DEFAULTS = {
  /** Kind of offsets 1…k-1: Medusa's zero-initialised ResBlock, cheap and identity at the start. */
  headKind: 'residual',
  /** Kind of offset 0: the identity, so attaching MTP leaves next-token predictions exact. */
  offset0Kind: 'identity',
  /** Activation of the `residual`, `lowRank` and `mlp` kinds: SiLU, as Medusa's ResBlock. */
  activation: 'swish',
  /** No bias on the unembedding: a tied embedding matrix has none to share. */
  useBias: false,
  /** Initializer of an untied unembedding matrix: `tf.layers.dense`'s kernel default (glorot is symmetric in fan-in/fan-out, so the transposed layout does not matter). */
  unembeddingInitializer: 'glorotUniform',
} as const satisfies {
  headKind: OffsetHeadKind;
  offset0Kind: OffsetHeadKind;
  activation: ActivationIdentifier;
  useBias: boolean;
  unembeddingInitializer: InitializerIdentifier;
};

/** Throws unless `kind` is an `OffsetHeadKind`; returns it. */
export function checkKind(where: string, name: string, kind: unknown): OffsetHeadKind {
  if (!OFFSET_HEAD_KINDS.includes(kind as OffsetHeadKind)) {
    fail(TypeError, where, name, `must be one of ${OFFSET_HEAD_KINDS.map((k) => `'${k}'`).join(', ')}`, kind);
  }
  return kind as OffsetHeadKind;
}

/** `useBias` resolved: the default when absent, else it must be a boolean. */
export function resolveUseBias(where: string, useBias: unknown): boolean {
  return useBias === undefined || useBias === null ? LAYER_DEFAULTS.useBias : checkBoolean(where, 'useBias', useBias);
}

/** The kind-dependent sizes of offset heads: `rank` (`lowRank`) and `headHiddenSize` (`mlp`). */
export interface HeadSizes {
  /** Rank r of `lowRank` heads, `undefined` when no head is `lowRank`. */
  rank: number | undefined;
  /** Width H of `mlp` heads, `undefined` when no head is `mlp`. */
  headHiddenSize: number | undefined;
}

/**
 * `args.headHiddenSize`, or the value given under its deprecated name `mlpHiddenSize` (accepted
 * until the next minor release, so code and saved layer configs from before the rename work).
 * Both given: they must be equal. The result is unchecked (the caller checks it).
 */
export function headHiddenSizeArg(where: string, args: { headHiddenSize?: unknown; mlpHiddenSize?: unknown }, prefix = ''): unknown {
  const current = args.headHiddenSize;
  const old = args.mlpHiddenSize;
  if (old === undefined || old === null) return current;
  if (current !== undefined && current !== null && current !== old) {
    fail(RangeError, where, `${prefix}mlpHiddenSize`, `is the deprecated name of ${prefix}headHiddenSize (${show(current)}) and must equal it or be omitted`, old);
  }
  return old;
}

/**
 * Resolves `rank` and `headHiddenSize` for heads of `kinds`: required (a positive integer at
 * most `SIZE_LIMITS.hiddenSize`) when a head of that kind is present; when no head uses it, a
 * given value is still checked (a malformed config is rejected, never saved back out) and then
 * dropped.
 */
export function resolveHeadSizes(where: string, kinds: readonly OffsetHeadKind[], args: { rank?: unknown; headHiddenSize?: unknown; mlpHiddenSize?: unknown }): HeadSizes {
  const given = { rank: args.rank, headHiddenSize: headHiddenSizeArg(where, args) };
  const size = (kind: OffsetHeadKind, name: 'rank' | 'headHiddenSize'): number | undefined => {
    const value = given[name];
    if (!kinds.includes(kind) && (value === undefined || value === null)) return undefined;
    const oldOnly = (args.headHiddenSize === undefined || args.headHiddenSize === null) && args.mlpHiddenSize !== undefined && args.mlpHiddenSize !== null;
    const label = name === 'headHiddenSize' && oldOnly ? 'mlpHiddenSize' : name; // as the caller wrote it
    const checked = checkPositiveInteger(where, label, value, SIZE_LIMITS.hiddenSize);
    return kinds.includes(kind) ? checked : undefined;
  };
  return { rank: size('lowRank', 'rank'), headHiddenSize: size('mlp', 'headHiddenSize') };
}

/** Builds a `tf.layers.activation` layer, rethrowing an unknown name with the caller's context. */
export function makeActivation(where: string, activation: ActivationIdentifier): Layer {
  try {
    if (typeof activation !== 'string') throw new TypeError();
    return layers.activation({ activation });
  } catch {
    return fail(TypeError, where, 'activation', 'must be a tfjs-layers activation name', activation);
  }
}

/**
 * Resolves an initializer name, object or serialized config to an `Initializer` with
 * tfjs-layers' own resolver (read off a throwaway `Dense`, since `getInitializer` is not public).
 */
export function resolveInitializer(where: string, name: string, init: InitializerIdentifier | Initializer | tf.serialization.ConfigDict): Initializer {
  try {
    const probe = layers.dense({ units: 1, kernelInitializer: init as InitializerIdentifier });
    return (probe as unknown as { kernelInitializer: Initializer }).kernelInitializer;
  } catch {
    return fail(TypeError, where, name, 'must be a tfjs-layers initializer name or object', init);
  }
}

/** Serializes an initializer as tfjs-layers does (`{className, config}`). */
export function serializeInitializer(init: Initializer): tf.serialization.ConfigDict {
  return { className: init.getClassName(), config: init.getConfig() };
}
