/**
 * Idempotent class registration for tfjs serialization. Registering a class twice silently
 * overwrites in tfjs 4.22 and throws on newer tfjs, so a class already registered is skipped.
 *
 * Nothing here runs at module load: layers call {@link registerOnce} from their constructors
 * (and `registerMtpLayers()` / the model loaders call it before `tf.loadLayersModel`), so no
 * module has a top-level side effect and a bundler can drop every class an app does not use.
 */
import * as tf from '@tensorflow/tfjs-core';

/** A serializable class with a static `className`. */
export type SerializableClass = tf.serialization.SerializableConstructor<tf.serialization.Serializable>;

/** Whether `cls` is the class currently registered under its `className`. */
export function isRegistered(cls: SerializableClass): boolean {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[cls.className];
  return entry !== undefined && entry[0] === cls;
}

/** Registers `cls` with `tf.serialization.registerClass` unless it is already registered. */
export function registerOnce(cls: SerializableClass): void {
  if (!isRegistered(cls)) tf.serialization.registerClass(cls);
}
