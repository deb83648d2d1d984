/** Residency: the facts of a document and the plans that follow from them (pure; the store carries them out). */
export * from './facts.js';
export * from './plans.js';
export * from './marker.js';
