/**
 * What the policy knows about a document: its dataset, key, user-visible tags and origin region. The store
 * records the origin as a reserved tag, `origin:<region>`, when it creates a document; `factsOf` reads it back.
 */
import { TesseraError } from '../errors.js';
import { tagLengthMax } from '../limits.js';
import { checkRegion, checkTag, checkTags } from '../names.js';

/** The facts a decision reads. `tags` are the user-visible tags; the policy treats them as a set. */
export interface DocFacts {
  readonly dataset: string;
  readonly key: string;
  readonly tags: readonly string[];
  /** The region where the document was created; null when unknown (every region is then denied). */
  readonly origin: string | null;
}

/** The tag that keeps a document in its origin region until a `release` rule matches it. */
export const quarantineTag = 'quarantine';
/** The prefix of the tag that records a document's origin region. */
export const originTagPrefix = 'origin:';
/** Tag prefixes only the store writes; the API refuses user tags that start with one of them. */
export const reservedTagPrefixes: readonly string[] = Object.freeze([originTagPrefix]);
/** Region names in a policy: at most this many characters, so that `origin:<region>` is a valid tag. */
export const policyRegionNameLengthMax = tagLengthMax - originTagPrefix.length;

/** True when `tag` starts with a reserved prefix (it is the store's, not the user's). */
export function isReservedTag(tag: string): boolean {
  for (const prefix of reservedTagPrefixes) if (tag.startsWith(prefix)) return true;
  return false;
}

/** Throws `ERR_TAG_INVALID` unless `tags` are valid tags, within the limit, none of them reserved. */
export function checkUserTags(tags: unknown): asserts tags is string[] {
  checkTags(tags);
  for (const tag of tags) {
    if (isReservedTag(tag)) {
      throw new TesseraError(
        'ERR_TAG_INVALID',
        `tag ${JSON.stringify(tag)} is reserved: tags starting with ${reservedTagPrefixes.join(', ')} are written by the store`,
      );
    }
  }
}

/** The tag that records `region` as a document's origin. Throws `ERR_REGION_INVALID` for a bad or too long name. */
export function originTag(region: string): string {
  checkRegion(region);
  if (region.length > policyRegionNameLengthMax) {
    throw new TesseraError(
      'ERR_REGION_INVALID',
      `region ${JSON.stringify(region)} is invalid: an origin region is at most ${policyRegionNameLengthMax} characters, so that its tag ${originTagPrefix}<region> is at most ${tagLengthMax}`,
    );
  }
  const tag = `${originTagPrefix}${region}`;
  checkTag(tag);
  return tag;
}

/**
 * The facts of a stored document from its tags as the store keeps them: `origin` is the region of the
 * lexicographically smallest `origin:` tag (two regions that created the document concurrently both record
 * one; every replica picks the same), null when there is none; `tags` are the other tags, sorted, without
 * duplicates.
 */
export function factsOf(dataset: string, key: string, tags: readonly string[]): DocFacts {
  let origin: string | null = null;
  const user: string[] = [];
  for (const tag of tags) {
    if (tag.startsWith(originTagPrefix)) {
      const region = tag.slice(originTagPrefix.length);
      if (origin === null || region < origin) origin = region;
    } else if (!isReservedTag(tag)) {
      user.push(tag);
    }
  }
  return { dataset, key, tags: normalizeTags(user), origin };
}

/** `tags` sorted and without duplicates; the same array when it already is. */
export function normalizeTags(tags: readonly string[]): readonly string[] {
  for (let i = 1; i < tags.length; i++) {
    if (!(tags[i - 1]! < tags[i]!)) return [...new Set(tags)].sort();
  }
  return tags;
}
