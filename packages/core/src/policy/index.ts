/** The replication policy: documents (parse), facts about documents, decisions. */
export {
  type DocFacts,
  quarantineTag,
  originTagPrefix,
  reservedTagPrefixes,
  policyRegionNameLengthMax,
  isReservedTag,
  checkUserTags,
  originTag,
  factsOf,
  normalizeTags,
} from './facts.js';
export {
  type RegionSpec,
  type Placement,
  type UnlistedPlacement,
  type DatasetPriority,
  type DatasetRate,
  type DatasetPolicy,
  type RuleEffect,
  type PolicyRule,
  type PolicySpec,
  unlistedPlacements,
  datasetPriorities,
  cadenceMsMin,
  cadenceMsMax,
  ruleEffects,
  parseDurationMs,
  formatDurationMs,
  canonicalJson,
} from './model.js';
export { type Decision, type DecisionReason, Policy, assertMayHold } from './policy.js';
export { parsePolicy } from './parse.js';
export {
  type PolicySignature,
  type PolicyStampRef,
  policySignatureFormat,
  policySignatureBytesMax,
  policyVersionJumpMax,
  policyContentHash,
  policySigningInput,
  keyIdOf,
  signPolicy,
  formatPolicySignature,
  parsePolicySignature,
  verifyPolicySignature,
  checkPolicySuccession,
} from './signature.js';
