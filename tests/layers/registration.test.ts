/**
 * Registration is lazy: importing the package registers nothing (it has no side effects, so
 * bundlers can drop unused classes), constructing a layer registers its class (and a
 * MultiTokenHead its sub-layers'), so a model built in this process saves and loads back without
 * a call; `registerMtpLayers()` registers all of them for a process that only loads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { LightweightOffsetHead, MultiTokenHead, registerMtpLayers, SequentialMtpHead, SharedUnembedding } from '../../src/index.js';
import { useCpu } from '../helpers/backend.js';
import { loadFromMemory, saveToMemory, tinyModel } from '../helpers/layers.js';

beforeAll(useCpu);

const NAMES = ['MultiTokenHead', 'LightweightOffsetHead', 'SharedUnembedding'];
const registered = (): (unknown | undefined)[] => NAMES.map((n) => tf.serialization.SerializationMap.getMap().classNameMap[n]?.[0]);
const forget = (): void => NAMES.forEach((n) => delete tf.serialization.SerializationMap.getMap().classNameMap[n]);

describe('lazy registration', () => {
  it('importing the package registers no layer class', () => {
    expect(registered()).toEqual([undefined, undefined, undefined]); // this file has constructed nothing yet
  });

  it('constructing a MultiTokenHead registers it and its sub-layers; save → load needs no call', async () => {
    const { model } = tinyModel({ vocabSize: 10, hidden: 4 });
    expect(registered()).toEqual([MultiTokenHead, LightweightOffsetHead, SharedUnembedding]);
    const loaded = await loadFromMemory(await saveToMemory(model));
    expect(loaded.layers.at(-1)).toBeInstanceOf(MultiTokenHead);
    model.dispose();
    loaded.dispose();
  });

  it('registerMtpLayers registers all three for a process that only loads, idempotently', async () => {
    const { model } = tinyModel({ vocabSize: 10, hidden: 4 });
    const artifacts = await saveToMemory(model);
    model.dispose();
    forget();
    await expect(loadFromMemory(artifacts)).rejects.toThrow(/MultiTokenHead/); // unknown class
    registerMtpLayers();
    registerMtpLayers();
    expect(registered()).toEqual([MultiTokenHead, LightweightOffsetHead, SharedUnembedding]);
    expect(tf.serialization.SerializationMap.getMap().classNameMap['SequentialMtpHead']?.[0]).toBe(SequentialMtpHead); // the sequential head too
    const loaded = await loadFromMemory(artifacts);
    expect(loaded.layers.at(-1)).toBeInstanceOf(MultiTokenHead);
    loaded.dispose();
  });
});
