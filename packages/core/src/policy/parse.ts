/**
 * Reads a replication policy from YAML or JSON text (JSON is YAML). The tree is walked with positions, and
 * every problem is reported together, each as `source:line:col: path value: rule`:
 *
 *     policy.yaml:7:13: datasets.orders.placement.regions[1] "eu-north": not a region of this policy (regions: eu-west, us-east)
 *
 * Structural problems throw `ERR_POLICY_INVALID`; when the only problems are CEL expressions (a parse or type
 * error, a wrong result type, a size limit) it is `ERR_POLICY_RULE_INVALID`, naming the rule or dataset and
 * the expression's position in the file.
 */
import { type Node as YamlNode, type Pair, Scalar, type YAMLMap, type YAMLSeq, isMap, isScalar, isSeq } from 'yaml';
import { type CrdtTypeName, crdtTypeNames } from '../crdt/type.js';
import {
  expressionLengthMax,
  jurisdictionLengthMax,
  policyBytesMax,
  policyDatasetsMax,
  policyProblemsMax,
  policyRegionsMax,
  policyRulesMax,
  ruleNameLengthMax,
} from '../limits.js';
import { checkDatasetName, checkRegion } from '../names.js';
import { type YamlDocumentKind, type YamlField, YamlChecker, type YamlPosition, parseYamlMap, ruleOfError } from '../yaml.js';
import { type ExpressionKind, compileExpression, isCompiled } from './cel.js';
import { policyRegionNameLengthMax } from './facts.js';
import {
  type DatasetPolicy,
  type DatasetPriority,
  type DatasetRate,
  type Placement,
  type PolicyRule,
  type RegionSpec,
  type RuleEffect,
  type UnlistedPlacement,
  cadenceMsMax,
  cadenceMsMin,
  datasetPriorities,
  parseDurationMs,
  ruleEffects,
  unlistedPlacements,
} from './model.js';
import { Policy } from './policy.js';

const policyKind: YamlDocumentKind = { code: 'ERR_POLICY_INVALID', noun: 'a policy', problemsMax: policyProblemsMax };

const topFields = ['version', 'unlisted', 'regions', 'datasets', 'rules'] as const;
const regionFields = ['jurisdiction', 'location'] as const;
const datasetFields = ['type', 'placement', 'priority', 'cadence', 'rate'] as const;
const placementFields = ['regions', 'home', 'within'] as const;
const rateFields = ['bytesPerSecond', 'entriesPerSecond'] as const;
const ruleFields = ['name', ...ruleEffects] as const;

const jurisdictionPattern = new RegExp(`^[a-z0-9-]{1,${jurisdictionLengthMax}}$`);
// C0 and C1 controls: rule names go into messages, logs and the audit log.
const controlPattern = /[\u0000-\u001f\u007f-\u009f]/;
/** Characters a problem line shows as escapes: controls and the Unicode line and paragraph separators. */
const messageControlPattern = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const placementRule = 'a placement is global, local, { regions: [...] } or { home: <CEL expression>, within: jurisdiction | [...] }';
/** Region names listed in one message. */
const regionsShownMax = 16;

/**
 * Parses and validates a policy; `source` names it in messages (a file name). Compiles and type-checks every
 * expression. Throws `ERR_POLICY_INVALID` or `ERR_POLICY_RULE_INVALID` listing every problem found.
 */
export function parsePolicy(text: string, source: string): Policy {
  const { checker, root } = parseYamlMap(text, source, policyKind, {
    bytesMax: policyBytesMax,
    emptyRule: 'the policy is empty: expected a map with version, regions, datasets and rules',
    rootRule: `a policy is a map with the fields ${topFields.join(', ')}`,
    checker: (lines) => new PolicyChecker(policyKind, source, lines, text),
  });
  const top = checker.fields(root, '', topFields);
  const version = readVersion(checker, top.get('version'), root);
  const unlisted = readUnlisted(checker, top.get('unlisted'), root);
  const regions = readRegions(checker, top.get('regions'), root);
  const datasets = readDatasets(checker, top.get('datasets'), regions);
  const rules = readRules(checker, top.get('rules'));
  checker.throwIfAny(checker.problemsCount === checker.expressionProblemsCount ? 'ERR_POLICY_RULE_INVALID' : 'ERR_POLICY_INVALID');
  return new Policy({ version: version!, unlisted, regions: [...regions.specs.values()], datasets: datasets!, rules: rules! }, text, source);
}

// ---------------------------------------------------------------- sections

function readVersion(checker: PolicyChecker, field: YamlField | undefined, root: YAMLMap): number | undefined {
  const rule = 'version is a positive integer; raise it with every change';
  if (field === undefined) {
    checker.add(root, '', undefined, `missing field "version": ${rule}`);
    return undefined;
  }
  const node = field.value;
  if (isScalar(node) && typeof node.value === 'number' && Number.isSafeInteger(node.value) && node.value >= 1) return node.value;
  checker.add(node ?? field.key, 'version', isScalar(node) ? node.value : node, rule);
  return undefined;
}

function readUnlisted(checker: PolicyChecker, field: YamlField | undefined, root: YAMLMap): UnlistedPlacement {
  const value = checker.string(field, root, 'unlisted', false);
  if (value === undefined) return 'global';
  if ((unlistedPlacements as readonly string[]).includes(value)) return value as UnlistedPlacement;
  checker.add(field!.value, 'unlisted', value, `unlisted is one of ${unlistedPlacements.join(', ')}: the placement of datasets the policy does not list`);
  return 'global';
}

interface Regions {
  /** Every region the policy names, valid or not (so that one bad region does not make every reference to it a problem too). */
  readonly names: readonly string[];
  /** The valid regions. */
  readonly specs: ReadonlyMap<string, RegionSpec>;
}

function readRegions(checker: PolicyChecker, field: YamlField | undefined, root: YAMLMap): Regions {
  const names: string[] = [];
  const specs = new Map<string, RegionSpec>();
  const out = { names, specs };
  if (field === undefined) {
    checker.add(root, '', undefined, 'missing field "regions": a map from region name to { jurisdiction, location }');
    return out;
  }
  const map = field.value;
  if (!isMap(map)) {
    checker.add(map ?? field.key, 'regions', map, 'regions must be a map from region name to { jurisdiction, location }');
    return out;
  }
  const pairs = (map as YAMLMap).items as Pair<YamlNode | null, YamlNode | null>[];
  if (pairs.length === 0 || pairs.length > policyRegionsMax) {
    checker.addRaw(map, 'regions', `(${pairs.length} regions)`, `a policy has 1 to ${policyRegionsMax} regions`);
    return out;
  }
  for (const pair of pairs) {
    const name = checker.key(pair, 'regions');
    if (name === undefined) continue;
    names.push(name);
    const path = `regions.${name}`;
    try {
      checkRegion(name);
    } catch (error) {
      checker.add(pair.key, path, name, ruleOfError(error));
      continue;
    }
    if (name.length > policyRegionNameLengthMax) {
      checker.add(pair.key, path, name, `a region of a policy is at most ${policyRegionNameLengthMax} characters (its origin tag, origin:<region>, is a tag)`);
      continue;
    }
    const settings = pair.value;
    if (!isMap(settings)) {
      checker.add(
        settings ?? pair.key,
        path,
        settings,
        'a region is a map { jurisdiction, location }, for example { jurisdiction: eu, location: [53.3, -6.3] }',
      );
      continue;
    }
    const fields = checker.fields(settings as YAMLMap, path, regionFields);
    const jurisdiction = checker.string(fields.get('jurisdiction'), settings, `${path}.jurisdiction`, true);
    let valid = jurisdiction !== undefined;
    if (jurisdiction !== undefined && !jurisdictionPattern.test(jurisdiction)) {
      checker.add(
        fields.get('jurisdiction')!.value,
        `${path}.jurisdiction`,
        jurisdiction,
        `a jurisdiction is 1 to ${jurisdictionLengthMax} characters [a-z0-9-]`,
      );
      valid = false;
    }
    const location = readLocation(checker, fields.get('location'), `${path}.location`);
    if (location === undefined) valid = false;
    if (valid) specs.set(name, Object.freeze({ name, jurisdiction: jurisdiction!, location: location! }));
  }
  return out;
}

/** `[lat, lon]` in degrees; null when absent, undefined (with a problem) when malformed. */
function readLocation(checker: PolicyChecker, field: YamlField | undefined, path: string): readonly [number, number] | null | undefined {
  if (field === undefined) return null;
  const rule = 'a location is [latitude, longitude] in degrees: latitude -90 to 90, longitude -180 to 180';
  const node = field.value;
  if (!isSeq(node) || (node as YAMLSeq).items.length !== 2) {
    checker.add(node ?? field.key, path, isScalar(node) ? node.value : node, rule);
    return undefined;
  }
  const items = (node as YAMLSeq).items as (YamlNode | null)[];
  const bounds = [90, 180];
  const values: number[] = [];
  for (const [i, item] of items.entries()) {
    const value = isScalar(item) ? item.value : undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > bounds[i]!) {
      checker.add(item ?? node, `${path}[${i}]`, isScalar(item) ? item.value : item, rule);
      return undefined;
    }
    values.push(value);
  }
  return Object.freeze([values[0]!, values[1]!] as const);
}

function readDatasets(checker: PolicyChecker, field: YamlField | undefined, regions: Regions): DatasetPolicy[] | undefined {
  const out: DatasetPolicy[] = [];
  if (field === undefined || (isScalar(field.value) && field.value.value === null)) return out;
  const map = field.value;
  if (!isMap(map)) {
    checker.add(map ?? field.key, 'datasets', map, 'datasets must be a map from dataset name to { type, placement, priority, cadence, rate }');
    return undefined;
  }
  const pairs = (map as YAMLMap).items as Pair<YamlNode | null, YamlNode | null>[];
  if (pairs.length > policyDatasetsMax) {
    checker.addRaw(map, 'datasets', `(${pairs.length} datasets)`, `a policy lists at most ${policyDatasetsMax} datasets`);
    return undefined;
  }
  for (const pair of pairs) {
    const name = checker.key(pair, 'datasets');
    if (name === undefined) continue;
    const path = `datasets.${name}`;
    try {
      checkDatasetName(name);
    } catch (error) {
      checker.add(pair.key, path, name, ruleOfError(error));
      continue;
    }
    const settings = pair.value;
    if (!isMap(settings)) {
      checker.add(
        settings ?? pair.key,
        path,
        settings,
        'a dataset is a map { type, placement, priority, cadence, rate }, for example { type: map, placement: global }',
      );
      continue;
    }
    const dataset = readDataset(checker, settings as YAMLMap, name, path, regions);
    if (dataset !== undefined) out.push(dataset);
  }
  return out;
}

function readDataset(checker: PolicyChecker, settings: YAMLMap, name: string, path: string, regions: Regions): DatasetPolicy | undefined {
  const fields = checker.fields(settings, path, datasetFields);
  let valid = true;
  const typeName = checker.string(fields.get('type'), settings, `${path}.type`, false) ?? 'map';
  if (!(crdtTypeNames as readonly string[]).includes(typeName)) {
    checker.add(fields.get('type')!.value, `${path}.type`, typeName, `the type is one of ${crdtTypeNames.join(', ')}`);
    valid = false;
  }
  const placementField = fields.get('placement');
  let placement: Placement | undefined;
  if (placementField === undefined) {
    checker.add(settings, path, undefined, `missing field "placement": ${placementRule}`);
  } else {
    placement = readPlacement(checker, placementField, `${path}.placement`, name, regions);
  }
  const priority = checker.string(fields.get('priority'), settings, `${path}.priority`, false) ?? 'normal';
  if (!(datasetPriorities as readonly string[]).includes(priority)) {
    checker.add(fields.get('priority')!.value, `${path}.priority`, priority, `the priority is one of ${datasetPriorities.join(', ')}`);
    valid = false;
  }
  let cadenceMs: number | null = null;
  const cadenceField = fields.get('cadence');
  if (cadenceField !== undefined) {
    const node = cadenceField.value;
    const text = isScalar(node) && typeof node.value === 'string' ? node.value : undefined;
    const parsed = text === undefined ? null : parseDurationMs(text);
    if (parsed === null || parsed < cadenceMsMin || parsed > cadenceMsMax) {
      checker.add(
        node ?? cadenceField.key,
        `${path}.cadence`,
        isScalar(node) ? node.value : node,
        `a cadence is a duration from ${cadenceMsMin}ms to 1h, such as 500ms, 30s or 5m (leave it out for the adaptive cadence)`,
      );
      valid = false;
    } else {
      cadenceMs = parsed;
    }
  }
  let rate: DatasetRate | null = null;
  if (fields.has('rate')) {
    const parsed = readRate(checker, fields.get('rate')!, `${path}.rate`);
    if (parsed === undefined) valid = false;
    else rate = parsed;
  }
  if (!valid || placement === undefined) return undefined;
  return Object.freeze({
    name,
    listed: true,
    type: typeName as CrdtTypeName,
    placement,
    priority: priority as DatasetPriority,
    cadenceMs,
    rate,
  });
}

function readPlacement(checker: PolicyChecker, field: YamlField, path: string, dataset: string, regions: Regions): Placement | undefined {
  const node = field.value;
  if (isScalar(node) && (node.value === 'global' || node.value === 'local')) return Object.freeze({ kind: node.value });
  if (!isMap(node)) {
    checker.add(node ?? field.key, path, isScalar(node) ? node.value : node, placementRule);
    return undefined;
  }
  const fields = checker.fields(node as YAMLMap, path, placementFields);
  if (fields.has('regions')) {
    for (const other of ['home', 'within'] as const) {
      if (fields.has(other)) {
        checker.add(fields.get(other)!.key, `${path}.${other}`, undefined, `a placement has either regions or home (with within), not both`);
        return undefined;
      }
    }
    const list = readRegionList(checker, fields.get('regions')!, `${path}.regions`, regions);
    return list === undefined ? undefined : Object.freeze({ kind: 'regions', regions: list });
  }
  if (!fields.has('home')) {
    if (fields.size > 0 || (node as YAMLMap).items.length === 0) checker.add(node, path, undefined, placementRule);
    return undefined;
  }
  const home = checker.expression(fields.get('home'), node as YamlNode, `${path}.home`, 'home', `(dataset ${dataset})`);
  let within: 'jurisdiction' | readonly string[] | null = null;
  const withinField = fields.get('within');
  if (withinField !== undefined) {
    const value = withinField.value;
    if (isScalar(value) && value.value === 'jurisdiction') {
      within = 'jurisdiction';
    } else if (isSeq(value)) {
      const list = readRegionList(checker, withinField, `${path}.within`, regions);
      if (list === undefined) return undefined;
      within = list;
    } else {
      checker.add(
        value ?? withinField.key,
        `${path}.within`,
        isScalar(value) ? value.value : value,
        "within is jurisdiction (every region of the home's jurisdiction) or a list of regions",
      );
      return undefined;
    }
  }
  return home === undefined ? undefined : Object.freeze({ kind: 'home', home, within });
}

/** A non-empty list of known regions without duplicates, sorted. */
function readRegionList(checker: PolicyChecker, field: YamlField, path: string, regions: Regions): readonly string[] | undefined {
  const node = field.value;
  if (!isSeq(node) || (node as YAMLSeq).items.length === 0) {
    checker.add(node ?? field.key, path, isScalar(node) ? node.value : node, 'a non-empty list of regions of this policy');
    return undefined;
  }
  const seen = new Map<string, number>();
  let valid = true;
  ((node as YAMLSeq).items as (YamlNode | null)[]).forEach((item, i) => {
    const itemPath = `${path}[${i}]`;
    if (!isScalar(item) || typeof item.value !== 'string') {
      checker.add(item ?? node, itemPath, isScalar(item) ? item.value : item, 'a region name');
      valid = false;
      return;
    }
    const name = item.value;
    if (!regions.names.includes(name)) {
      checker.add(item, itemPath, name, `not a region of this policy (regions: ${listRegions(regions.names)})`);
      valid = false;
      return;
    }
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      checker.add(item, itemPath, name, `listed twice (also ${path}[${earlier}])`);
      valid = false;
      return;
    }
    seen.set(name, i);
  });
  return valid ? Object.freeze([...seen.keys()].sort()) : undefined;
}

function listRegions(names: readonly string[]): string {
  if (names.length <= regionsShownMax) return names.join(', ');
  return `${names.slice(0, regionsShownMax).join(', ')} and ${names.length - regionsShownMax} more`;
}

function readRate(checker: PolicyChecker, field: YamlField, path: string): DatasetRate | undefined {
  const node = field.value;
  const rule = 'a rate is { bytesPerSecond, entriesPerSecond }, one or both, positive integers';
  if (!isMap(node) || (node as YAMLMap).items.length === 0) {
    checker.add(node ?? field.key, path, isScalar(node) ? node.value : node, rule);
    return undefined;
  }
  const fields = checker.fields(node as YAMLMap, path, rateFields);
  let valid = fields.size > 0;
  const read = (name: (typeof rateFields)[number]): number | null => {
    const item = fields.get(name);
    if (item === undefined) return null;
    const value = isScalar(item.value) ? item.value.value : undefined;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1) return value;
    checker.add(item.value ?? item.key, `${path}.${name}`, isScalar(item.value) ? item.value.value : item.value, `${name} is a positive integer`);
    valid = false;
    return null;
  };
  const bytesPerSecondMax = read('bytesPerSecond');
  const entriesPerSecondMax = read('entriesPerSecond');
  return valid ? Object.freeze({ bytesPerSecondMax, entriesPerSecondMax }) : undefined;
}

function readRules(checker: PolicyChecker, field: YamlField | undefined): PolicyRule[] | undefined {
  const out: PolicyRule[] = [];
  if (field === undefined || (isScalar(field.value) && field.value.value === null)) return out;
  const list = field.value;
  if (!isSeq(list)) {
    checker.add(list ?? field.key, 'rules', list, 'rules must be a list of { name, allow | deny | release }');
    return undefined;
  }
  const items = (list as YAMLSeq).items as (YamlNode | null)[];
  if (items.length > policyRulesMax) {
    checker.addRaw(list, 'rules', `(${items.length} rules)`, `a policy has at most ${policyRulesMax} rules`);
    return undefined;
  }
  const names = new Map<string, string>();
  items.forEach((item, i) => {
    const path = `rules[${i}]`;
    if (!isMap(item)) {
      checker.add(item ?? list, path, item, 'a rule is a map { name, allow | deny | release: <CEL expression> }');
      return;
    }
    const fields = checker.fields(item as YAMLMap, path, ruleFields);
    const nameField = fields.get('name');
    const name = checker.string(nameField, item, `${path}.name`, true);
    let nameValid = name !== undefined;
    if (name !== undefined) {
      if (name.length > ruleNameLengthMax || controlPattern.test(name)) {
        checker.add(nameField!.value, `${path}.name`, name, `a rule name is 1 to ${ruleNameLengthMax} characters, without control characters`);
        nameValid = false;
      } else if (names.has(name)) {
        checker.add(nameField!.value, `${path}.name`, name, `rule names must be unique (also ${names.get(name)})`);
        nameValid = false;
      } else {
        names.set(name, `${path} at ${checker.position(nameField!.value)}`);
      }
    }
    const effects = ruleEffects
      .filter((effect) => fields.has(effect))
      .sort((a, b) => (fields.get(a)!.key.range?.[0] ?? 0) - (fields.get(b)!.key.range?.[0] ?? 0));
    if (effects.length !== 1) {
      if (effects.length === 0) checker.add(item, path, undefined, `a rule has exactly one of ${ruleEffects.join(', ')}: a CEL expression that returns bool`);
      for (const extra of effects.slice(1)) {
        checker.add(fields.get(extra)!.key, `${path}.${extra}`, undefined, `a rule has exactly one of ${ruleEffects.join(', ')} (${effects[0]} is set)`);
      }
      return;
    }
    const effect: RuleEffect = effects[0]!;
    const expression = checker.expression(
      fields.get(effect),
      item,
      `${path}.${effect}`,
      'rule',
      name === undefined ? undefined : `(rule ${JSON.stringify(name)})`,
    );
    if (nameValid && expression !== undefined) out.push(Object.freeze({ name: name!, effect, expression }));
  });
  return out;
}

// ---------------------------------------------------------------- the checker

/** The YAML checker with CEL expressions, whose problems it counts apart and positions inside the scalar. */
class PolicyChecker extends YamlChecker {
  expressionProblemsCount = 0;

  constructor(
    kind: YamlDocumentKind,
    source: string,
    lines: ConstructorParameters<typeof YamlChecker>[2],
    private readonly text: string,
  ) {
    super(kind, source, lines);
  }

  /**
   * Every problem is one line: names taken from the text (field, region and dataset names that failed their
   * checks) may hold line breaks and other controls, which are written as escapes instead.
   */
  override addAt(at: YamlPosition, message: string): void {
    super.addAt(
      at,
      message.replace(messageControlPattern, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
    );
  }

  /**
   * A CEL expression field: a string, compiled and type-checked as `kind`. Returns the expression (trimmed) or
   * undefined with a problem at the offending character of the expression when it can be placed in the file.
   */
  expression(field: YamlField | undefined, parent: YamlNode, path: string, kind: ExpressionKind, shown: string | undefined): string | undefined {
    const text = this.string(field, parent, path, true);
    if (text === undefined) return undefined;
    const node = field!.value as Scalar;
    if (text.length > expressionLengthMax) {
      this.expressionProblemsCount++;
      this.addRaw(node, path, shown, `the expression has ${text.length} characters, over the limit of ${expressionLengthMax}`);
      return undefined;
    }
    const compiled = compileExpression(text, kind);
    if (isCompiled(compiled)) return text.trim();
    this.expressionProblemsCount++;
    this.addRawAt(this.expressionPos(node, compiled.offset), path, shown, `${compiled.message} (column ${compiled.offset + 1} of the expression)`);
    return undefined;
  }

  /** The file position of character `offset` of a scalar's value, or the scalar's start when escapes or folding hide it. */
  private expressionPos(node: Scalar, offset: number): YamlPosition {
    const start = node.range?.[0] ?? 0;
    const end = node.range?.[1] ?? start;
    const raw = this.text.slice(start, end);
    const value = String(node.value);
    const at = rawOffset(raw, value, node.type, offset);
    return this.offsetPos(at === null ? start : start + at);
  }
}

/**
 * Where character `offset` of a scalar's value is in its source `raw`: plain scalars that are their value,
 * single-quoted ('' escapes), double-quoted (\ escapes), literal blocks; null for anything else (folded lines).
 */
const simpleEscapes: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  n: '\n',
  t: '\t',
  r: '\r',
  '0': '\u0000',
  b: '\b',
  f: '\f',
  ' ': ' ',
};

function rawOffset(raw: string, value: string, type: Scalar['type'], offset: number): number | null {
  switch (type) {
    case Scalar.PLAIN:
      return raw === value ? offset : null;
    case Scalar.QUOTE_SINGLE:
    case Scalar.QUOTE_DOUBLE: {
      const quote = type === Scalar.QUOTE_SINGLE ? "'" : '"';
      if (raw.length < 2 || raw[0] !== quote || raw[raw.length - 1] !== quote || raw.includes('\n')) return null;
      // Decode the raw text, noting where each character of the value starts in it.
      const starts: number[] = [];
      let decoded = '';
      for (let at = 1; at < raw.length - 1; ) {
        starts.push(at);
        if (quote === "'" && raw[at] === "'") {
          decoded += "'";
          at += 2;
        } else if (quote === '"' && raw[at] === '\\') {
          const next = raw[at + 1]!;
          const hexDigits = next === 'x' ? 2 : next === 'u' ? 4 : 0;
          if (hexDigits > 0) {
            decoded += String.fromCharCode(Number.parseInt(raw.slice(at + 2, at + 2 + hexDigits), 16));
            at += 2 + hexDigits;
          } else if (next in simpleEscapes) {
            decoded += simpleEscapes[next];
            at += 2;
          } else {
            return null;
          }
        } else {
          decoded += raw[at];
          at += 1;
        }
      }
      starts.push(raw.length - 1);
      // A decoding that differs from the parser's value met an escape not handled here.
      return decoded === value ? (starts[offset] ?? null) : null;
    }
    case Scalar.BLOCK_LITERAL: {
      const lines = raw.split('\n');
      const before = value.slice(0, offset).split('\n');
      const lineIndex = before.length - 1;
      const column = before[lineIndex]!.length;
      const valueLine = value.split('\n')[lineIndex] ?? '';
      const rawLine = lines[1 + lineIndex];
      if (rawLine === undefined || !rawLine.endsWith(valueLine)) return null;
      const indent = rawLine.length - valueLine.length;
      let at = 0;
      for (let i = 0; i < 1 + lineIndex; i++) at += lines[i]!.length + 1;
      return at + indent + column;
    }
    default:
      return null;
  }
}
