/**
 * Idempotent class registration for tfjs serialization. Registering a class twice silently
 * overwrites in tfjs 4.22 and throws on newer tfjs, so a class already registered is skipped.
 */
import * as tf from '@tensorflow/tfjs-core';

/** A serializable class with a static `className`. */
type SerializableClass = tf.serialization.SerializableConstructor<tf.serialization.Serializable>;

/** Whether `cls` is the class currently registered under its `className`. */
export function isRegistered(cls: SerializableClass): boolean {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[cls.className];
  return entry !== undefined && entry[0] === cls;
}

/** Registers `cls` with `tf.serialization.registerClass` unless it is already registered. */
export function registerOnce(cls: SerializableClass): void {
  if (!isRegistered(cls)) tf.serialization.registerClass(cls);
}
