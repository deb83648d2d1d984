/** Validation of the names that address data: datasets, keys, node ids, regions, tags. */
import { TesseraError } from './errors.js';
import { describeValue } from './json.js';
import { datasetNameLengthMax, keyBytesMax, nodeIdLengthMax, regionNameLengthMax, tagLengthMax, tagsPerDocMax } from './limits.js';

const datasetPattern = /^[a-z][a-z0-9_-]*$/;
const nodeIdPattern = /^[a-z0-9][a-z0-9._-]*$/;
const regionPattern = /^[a-z][a-z0-9_-]*$/;
const tagPattern = /^[a-z0-9][a-z0-9:._-]*$/;
// C0 and C1 controls, DEL, and lone surrogates (which UTF-8 cannot carry).
/**
 * Control characters, lone surrogates, and U+10FFFF: the store bounds key ranges with U+10FFFF, whose UTF-8
 * bytes (F4 8F BF BF) sort after every other character's, so no key may contain it.
 */
const keyForbidden = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\udbff\udfff/;

function describe(value: unknown): string {
  return describeValue(value);
}

/** Throws `ERR_DATASET_NAME_INVALID` unless `name` is a valid dataset name. */
export function checkDatasetName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > datasetNameLengthMax || !datasetPattern.test(name)) {
    throw new TesseraError(
      'ERR_DATASET_NAME_INVALID',
      `dataset name ${describe(name)} is invalid: use 1 to ${datasetNameLengthMax} characters [a-z0-9_-], starting with a letter`,
    );
  }
}

/** Throws `ERR_KEY_INVALID` unless `key` is a valid document key. */
export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new TesseraError('ERR_KEY_INVALID', `document key ${describe(key)} is invalid: it must be a non-empty string`);
  }
  if (keyForbidden.test(key)) {
    throw new TesseraError('ERR_KEY_INVALID', `document key ${describe(key)} contains a control character, a lone surrogate or U+10FFFF`);
  }
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > keyBytesMax) {
    throw new TesseraError('ERR_KEY_INVALID', `document key of ${bytes} bytes exceeds the limit of ${keyBytesMax} bytes`);
  }
}

/** Throws `ERR_NODE_ID_INVALID` unless `node` is a valid node id. */
export function checkNodeId(node: unknown): asserts node is string {
  if (typeof node !== 'string' || node.length === 0 || node.length > nodeIdLengthMax || !nodeIdPattern.test(node)) {
    throw new TesseraError(
      'ERR_NODE_ID_INVALID',
      `node id ${describe(node)} is invalid: use 1 to ${nodeIdLengthMax} characters [a-z0-9._-], starting with a letter or digit`,
    );
  }
}

/** Throws `ERR_REGION_INVALID` unless `region` is a valid region name. */
export function checkRegion(region: unknown): asserts region is string {
  if (typeof region !== 'string' || region.length === 0 || region.length > regionNameLengthMax || !regionPattern.test(region)) {
    throw new TesseraError(
      'ERR_REGION_INVALID',
      `region ${describe(region)} is invalid: use 1 to ${regionNameLengthMax} characters [a-z0-9_-], starting with a letter`,
    );
  }
}

/** Throws `ERR_TAG_INVALID` unless `tag` is a valid tag. */
export function checkTag(tag: unknown): asserts tag is string {
  if (typeof tag !== 'string' || tag.length === 0 || tag.length > tagLengthMax || !tagPattern.test(tag)) {
    throw new TesseraError(
      'ERR_TAG_INVALID',
      `tag ${describe(tag)} is invalid: use 1 to ${tagLengthMax} characters [a-z0-9:._-], starting with a letter or digit`,
    );
  }
}

/** Throws `ERR_TAG_INVALID` unless `tags` is an array of valid tags within the per-document limit. */
export function checkTags(tags: unknown): asserts tags is string[] {
  if (!Array.isArray(tags)) throw new TesseraError('ERR_TAG_INVALID', `tags must be an array of strings, got ${describe(tags)}`);
  if (tags.length > tagsPerDocMax) {
    throw new TesseraError('ERR_TAG_INVALID', `${tags.length} tags exceed the limit of ${tagsPerDocMax} tags per document`);
  }
  for (const tag of tags) checkTag(tag);
}
