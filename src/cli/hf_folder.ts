/**
 * A Hugging Face model folder on disk, as `save_pretrained` writes it, read into what
 * `loadHfLlama` takes: config.json, then model.safetensors.index.json and the shards it names
 * (else model.safetensors), and generation_config.json when present. Node only: the `tfjs-mtp`
 * command and `npm run train:heads` read local folders with it (a page passes the folder's URL).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HfLlamaFiles } from '../models/hf_llama.js';

/** Whether `dir` holds a Hugging Face checkpoint (its config.json). */
export function isHfFolder(dir: string): boolean {
  return existsSync(join(dir, 'config.json'));
}

/** The files of the checkpoint in `dir`, read (every shard the index names, each once). */
export function hfFolderFiles(dir: string): HfLlamaFiles {
  const read = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
  const generation = existsSync(join(dir, 'generation_config.json')) ? { generationConfig: read('generation_config.json') } : {};
  const config = read('config.json');
  if (!existsSync(join(dir, 'model.safetensors.index.json'))) return { config, safetensors: read('model.safetensors'), ...generation };
  const index = read('model.safetensors.index.json');
  const map = (JSON.parse(new TextDecoder().decode(index)) as { weight_map?: unknown }).weight_map;
  const names = map !== null && typeof map === 'object' ? new Set(Object.values(map as Record<string, unknown>)) : new Set<unknown>();
  const shards: Record<string, Uint8Array> = {};
  for (const name of names) {
    if (typeof name !== 'string' || !/^[^/\\]+$/.test(name) || name === '.' || name === '..') {
      throw new Error(`${join(dir, 'model.safetensors.index.json')}: weight_map must name shard files inside the folder, but got ${JSON.stringify(name)}.`);
    }
    shards[name] = read(name);
  }
  return { config, index, shards, ...generation }; // loadHfLlama checks the index against config.json and the shards
}
