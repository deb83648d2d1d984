/**
 * Checked YAML documents (the cluster config, the replication policy). The YAML is walked as a syntax tree
 * (never converted with `toJS`), so every refusal names the file, line and column of the offending node, the
 * field path, the value and the rule:
 *
 *     cluster.yaml:7:13: nodes[1].listen "localhost:99999": port must be 1–65535
 *
 * A `YamlChecker` collects every problem of a document and throws them together, in file order, as one coded
 * error (up to `problemsMax` lines, the rest counted). `parseYamlMap` is the common preamble: size bound,
 * syntax errors, empty document, aliases, a map at the root.
 */
import { type Node as YamlNode, type Pair, type Scalar, LineCounter, type YAMLMap, type YAMLSeq, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { type ErrorCode, TesseraError } from './errors.js';

/** What kind of document a checker reads: how refusals are coded and what messages call it. */
export interface YamlDocumentKind {
  /** The code of the error that lists the problems. */
  readonly code: ErrorCode;
  /** The document's name in messages, with its article: "a cluster config", "a policy". */
  readonly noun: string;
  /** Problems listed in one refusal; the rest are counted. */
  readonly problemsMax: number;
}

/** A field of a map: its key node and its value node. */
export interface YamlField {
  readonly key: YamlNode;
  readonly value: YamlNode | null;
}

/** A line and column, both from 1. */
export interface YamlPosition {
  readonly line: number;
  readonly col: number;
}

/** Collects problems with their positions; turns the tree's nodes into checked values. */
export class YamlChecker {
  private readonly problems: Array<{ line: number; col: number; text: string }> = [];

  constructor(
    readonly kind: YamlDocumentKind,
    readonly source: string,
    private readonly lines: LineCounter,
  ) {}

  /** Problems recorded so far. */
  get problemsCount(): number {
    return this.problems.length;
  }

  /** `line:col` of a node's start. */
  position(node: YamlNode | null | undefined): string {
    const { line, col } = this.linePos(node);
    return `${line}:${col}`;
  }

  /** Line and column of a node's start. */
  linePos(node: YamlNode | null | undefined): YamlPosition {
    return this.offsetPos(node?.range?.[0] ?? 0);
  }

  /** Line and column of a character offset in the text. */
  offsetPos(offset: number): YamlPosition {
    const { line, col } = this.lines.linePos(offset);
    return { line: Math.max(line, 1), col: Math.max(col, 1) };
  }

  /** Records a problem at `node`: path, the value (described), and the rule. */
  add(node: YamlNode | null | undefined, path: string, value: unknown, rule: string): void {
    this.addRaw(node, path, value === undefined ? undefined : describeYamlValue(value), rule);
  }

  /** Like `add`, with the value already rendered (or hidden). */
  addRaw(node: YamlNode | null | undefined, path: string, shown: string | undefined, rule: string): void {
    this.addRawAt(this.linePos(node), path, shown, rule);
  }

  /** Like `addRaw`, at a known line and column. */
  addRawAt(at: YamlPosition, path: string, shown: string | undefined, rule: string): void {
    const subject = [path, shown].filter((part) => part !== undefined && part !== '').join(' ');
    this.addAt(at, `${subject === '' ? '' : `${subject}: `}${rule}`);
  }

  /** Records a problem at a known line and column. */
  addAt(at: YamlPosition, message: string): void {
    this.problems.push({ line: at.line, col: at.col, text: `${this.source}:${at.line}:${at.col}: ${message}` });
  }

  /** Throws the kind's error (or `code`) with every problem so far, if any. */
  throwIfAny(code: ErrorCode = this.kind.code): void {
    if (this.problems.length === 0) return;
    // In file order (the sort is stable: problems at one position keep the order they were found in).
    const sorted = [...this.problems].sort((a, b) => a.line - b.line || a.col - b.col);
    const shown = sorted.slice(0, this.kind.problemsMax).map((problem) => problem.text);
    const more = this.problems.length - shown.length;
    throw new TesseraError(code, shown.join('\n') + (more > 0 ? `\n(and ${more} more problems)` : ''));
  }

  /** Refuses aliases anywhere in the tree: they would let a small file expand into a large one. */
  rejectAliases(node: YamlNode | null): void {
    const stack: (YamlNode | null)[] = [node];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (next === null || next === undefined) continue;
      if (isAlias(next)) {
        this.addRaw(next, '', undefined, `aliases (*${next.source}) are not supported in ${this.kind.noun}`);
      } else if (isMap(next)) {
        for (const pair of (next as YAMLMap).items as Pair<YamlNode | null, YamlNode | null>[]) stack.push(pair.key, pair.value);
      } else if (isSeq(next)) {
        // One push per item: spreading a long list into push() overflows the call stack.
        for (const item of (next as YAMLSeq).items as (YamlNode | null)[]) stack.push(item);
      }
    }
  }

  /** The string name of a map key, or undefined (with a problem) when it is not a string. */
  key(pair: Pair<YamlNode | null, YamlNode | null>, path: string): string | undefined {
    const key = pair.key;
    if (isScalar(key) && typeof key.value === 'string') return key.value;
    this.add(key, path, isScalar(key) ? key.value : key, 'field names must be strings');
    return undefined;
  }

  /** A map's fields by name; unknown names are problems. */
  fields(map: YAMLMap, path: string, allowed: readonly string[]): Map<string, YamlField> {
    const out = new Map<string, YamlField>();
    for (const pair of map.items as Pair<YamlNode | null, YamlNode | null>[]) {
      const name = this.key(pair, path);
      if (name === undefined) continue;
      if (!allowed.includes(name)) {
        this.add(
          pair.key,
          path === '' ? name : `${path}.${name}`,
          undefined,
          `unknown field${path === '' ? '' : ` in ${path}`}: the fields are ${allowed.join(', ')}`,
        );
        continue;
      }
      out.set(name, { key: pair.key!, value: pair.value });
    }
    return out;
  }

  /** A string field. Missing and required, or not a string, is a problem; `hidden` keeps the value out of messages. */
  string(field: YamlField | undefined, parent: YamlNode, path: string, required: boolean, hidden = false): string | undefined {
    if (field === undefined) {
      const dot = path.lastIndexOf('.');
      if (required) this.add(parent, dot < 0 ? '' : path.slice(0, dot), undefined, `missing field "${path.slice(dot + 1)}"`);
      return undefined;
    }
    const node = field.value;
    if (isScalar(node) && typeof node.value === 'string') {
      if (node.value.length === 0) {
        this.add(node, path, hidden ? undefined : '', 'must not be empty');
        return undefined;
      }
      return node.value;
    }
    const value = isScalar(node) ? node.value : node;
    if (hidden) this.addRaw(node ?? field.key, path, undefined, 'must be a string');
    else
      this.add(
        node ?? field.key,
        path,
        value,
        isScalar(node) && node.value !== null ? `must be a string; quote it: "${String(node.value)}"` : 'must be a string',
      );
    return undefined;
  }

  /** A name field validated with a core check (whose message gives the rule). */
  named(field: YamlField | undefined, parent: YamlNode, path: string, check: (value: unknown) => void): string | undefined {
    const value = this.string(field, parent, path, true);
    if (value === undefined) return undefined;
    try {
      check(value);
      return value;
    } catch (error) {
      this.add(field!.value, path, value, ruleOfError(error));
      return undefined;
    }
  }
}

/** How `parseYamlMap` reads a document. */
export interface YamlMapOptions<C extends YamlChecker> {
  /** The text's limit in UTF-8 bytes. */
  readonly bytesMax: number;
  /** The message for an empty document (it says what the document should hold). */
  readonly emptyRule: string;
  /** The rule for a root that is not a map (it lists the fields). */
  readonly rootRule: string;
  /** Makes the checker (a subclass can add checks of its own). */
  readonly checker: (lines: LineCounter) => C;
}

/**
 * The common preamble of a checked YAML document: bounds the text, parses it (unique keys, strict), reports
 * syntax errors, an empty document, aliases and a root that is not a map, each by throwing the kind's error.
 * Returns the checker (with no problems yet) and the root map.
 */
export function parseYamlMap<C extends YamlChecker>(
  text: string,
  source: string,
  kind: YamlDocumentKind,
  options: YamlMapOptions<C>,
): { readonly checker: C; readonly root: YAMLMap } {
  if (typeof text !== 'string') throw new TesseraError(kind.code, `${source}: expected ${kind.noun} as text`);
  // A UTF-16 unit is at most 3 UTF-8 bytes: measure only a text that could be over the limit.
  if (text.length > options.bytesMax / 3) {
    const textBytes = utf8Length(text);
    if (textBytes > options.bytesMax) {
      throw new TesseraError(kind.code, `${source}: ${textBytes} bytes exceed the limit of ${options.bytesMax} bytes for ${kind.noun}`);
    }
  }
  const lineCounter = new LineCounter();
  // The YAML library checks keys for uniqueness against every earlier key of the map, which is quadratic: a
  // 1 MiB document of short keys took minutes. Duplicates are found here instead, with a set per map.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false, strict: true });
  const checker = options.checker(lineCounter);
  const yamlProblems = [...doc.errors, ...doc.warnings];
  for (const problem of yamlProblems) {
    checker.addAt(checker.offsetPos(problem.pos[0]), `YAML: ${problem.message.replace(/ at line \d+, column \d+[\s\S]*$/, '')}`);
  }
  for (const key of duplicateKeys(doc.contents)) checker.addRaw(key, '', undefined, 'YAML: Map keys must be unique');
  checker.throwIfAny();
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) {
    checker.addAt({ line: 1, col: 1 }, options.emptyRule);
    checker.throwIfAny();
  }
  checker.rejectAliases(root);
  checker.throwIfAny();
  if (!isMap(root)) {
    checker.add(root, '', root, options.rootRule);
    checker.throwIfAny();
  }
  return { checker, root: root as YAMLMap };
}

/**
 * The keys that repeat an earlier key of their map, anywhere in the tree: scalar keys with equal values (as
 * the YAML library compares them), found with one set per map.
 */
function duplicateKeys(root: YamlNode | null): YamlNode[] {
  const out: YamlNode[] = [];
  const stack: (YamlNode | null)[] = [root];
  while (stack.length > 0) {
    const next = stack.pop();
    if (next === null || next === undefined) continue;
    if (isMap(next)) {
      const seen = new Set<unknown>();
      for (const pair of (next as YAMLMap).items as Pair<YamlNode | null, YamlNode | null>[]) {
        const key = pair.key;
        if (isScalar(key)) {
          if (seen.has(key.value)) out.push(key);
          else seen.add(key.value);
        }
        stack.push(key, pair.value);
      }
    } else if (isSeq(next)) {
      for (const item of (next as YAMLSeq).items as (YamlNode | null)[]) stack.push(item);
    }
  }
  return out;
}

/** The rule part of a core validation message (`… is invalid: <rule>`), or the whole message. Rethrows non-Tessera errors. */
export function ruleOfError(error: unknown): string {
  if (!(error instanceof TesseraError)) throw error;
  const match = /\bis (?:invalid|unknown): (.*)$/.exec(error.message);
  return match?.[1] ?? error.message;
}

/** A value for a message: scalars as JSON (long ones cut), collections by kind. */
export function describeYamlValue(value: unknown): string {
  if (isMap(value)) return '(a map)';
  if (isSeq(value)) return '(a list)';
  if (isScalar(value)) return describeScalar((value as Scalar).value);
  if (value === null) return 'null';
  return describeScalar(value);
}

function describeScalar(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The UTF-8 length of `text` (lone surrogates count as the 3 bytes of U+FFFD). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
