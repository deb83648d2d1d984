/**
 * Named bounds. Every name, value, batch and loop that takes input from outside has one here, so the limits
 * are documented in one place (README "Limits") and tested at their edges.
 */
export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Dataset names: `[a-z][a-z0-9_-]*`, at most this many characters. */
export const datasetNameLengthMax = 64;
/** Document keys: UTF-8 text without control characters, at most this many bytes. */
export const keyBytesMax = 512;
/** Node ids: `[a-z0-9][a-z0-9._-]*`, at most this many characters. */
export const nodeIdLengthMax = 64;
/** Region names: `[a-z][a-z0-9_-]*`, at most this many characters. */
export const regionNameLengthMax = 64;
/** Tags: `[a-z0-9][a-z0-9:._-]*`, at most this many characters. */
export const tagLengthMax = 64;
/** Tags on one document. */
export const tagsPerDocMax = 32;
/** One written value (a put, a field, a set element, a Yjs update, an Automerge change), encoded. */
export const valueBytesMax = 1 * MiB;
/** A whole document state, encoded (it grows with history for Yjs and Automerge). */
export const docBytesMax = 16 * MiB;
/** Nesting of JSON values (objects and arrays). */
export const jsonDepthMax = 32;
/** Field paths in map operations. */
export const fieldPathLengthMax = 32;
/** Field names in maps, in UTF-8 bytes. */
export const fieldNameBytesMax = 256;
/** Entries in one `deltasSince` answer or one `applyDeltas` batch. */
export const deltaBatchEntriesMax = 10_000;
/** Bytes in one `applyDeltas` batch (sum of encoded deltas). */
export const deltaBatchBytesMax = 64 * MiB;
/** Items in one `list` page. */
export const listLimitMax = 1_000;
/** Conflict records in one `conflicts` answer. */
export const conflictsLimitMax = 10_000;
/** Distinct nodes named in one causal context. */
export const contextNodesMax = 4_096;
/** Gap dots (the dot cloud) in one causal context. */
export const contextCloudDotsMax = 65_536;
/** Counter amounts and totals stay within the safe-integer range. */
export const counterAbsMax = Number.MAX_SAFE_INTEGER;
/** Discarded Yjs/Automerge content up to this size is kept whole in its conflict record. */
export const discardedBytesInlineMax = 256 * KiB;

/** A replication policy's text, in UTF-8 bytes. */
export const policyBytesMax = 1 * MiB;
/** Regions in one policy. */
export const policyRegionsMax = 64;
/** Datasets one policy lists. */
export const policyDatasetsMax = 1_024;
/** Rules in one policy. */
export const policyRulesMax = 256;
/** Problems listed in one `ERR_POLICY_INVALID` message; the rest are counted. */
export const policyProblemsMax = 20;
/** A rule's name, in characters. */
export const ruleNameLengthMax = 128;
/** A jurisdiction: `[a-z0-9-]`, at most this many characters. */
export const jurisdictionLengthMax = 32;
/** One CEL expression (a rule or a home placement), in characters. */
export const expressionLengthMax = 4_096;
/** Nodes in one CEL expression's syntax tree. */
export const expressionAstNodesMax = 2_000;
/** Nesting of one CEL expression (calls, selections, indexes, aggregates). */
export const expressionDepthMax = 64;
/** Policy decisions cached per policy (two generations of half this size; the older is dropped when the newer fills). */
export const decisionCacheEntriesMax = 65_536;
