/**
 * tfjs-mtp: multi-token prediction heads and lossless self-speculative decoding for
 * TensorFlow.js. Named exports only; the reference transformer lives in `tfjs-mtp/models`.
 *
 * @packageDocumentation
 */
export * from './layers/index.js';
export * from './training/index.js';
export * from './decoding/index.js';
export { SIZE_LIMITS } from './internal/errors.js';
