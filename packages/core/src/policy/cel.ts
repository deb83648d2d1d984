/**
 * The CEL environment of policy expressions, and their compilation: parse within size limits, type-check
 * against the declared variables, check the result type, and find out whether the expression reads the
 * document's key (decisions that do not are cached without it).
 *
 * Rules see `doc` (dataset, key, tags, origin, home), `source` (the document's origin region) and `target` (the
 * region that would hold a copy). A home expression sees `doc` without `home` (it is what the expression
 * computes) and `source`.
 */
import { type ASTNode, Environment, type ParseResult } from '@marcbachmann/cel-js';
import { expressionAstNodesMax, expressionDepthMax, expressionLengthMax } from '../limits.js';

/** A region as CEL expressions see it. */
export class CelRegion {
  constructor(
    readonly name: string,
    readonly jurisdiction: string,
    readonly location: readonly number[],
  ) {}
}

/** The document as rules see it. */
export class CelDocument {
  constructor(
    readonly dataset: string,
    readonly key: string,
    readonly tags: readonly string[],
    readonly origin: string,
    readonly home: string,
  ) {}
}

/** The document as a home expression sees it (no `home`). */
export class CelNewDocument {
  constructor(
    readonly dataset: string,
    readonly key: string,
    readonly tags: readonly string[],
    readonly origin: string,
  ) {}
}

/** The kinds of policy expressions, and the type each must return. */
export type ExpressionKind = 'rule' | 'home';

/** A compiled expression. */
export interface CompiledExpression {
  readonly text: string;
  /** Evaluates the expression; throws on a runtime error. */
  readonly run: ParseResult;
  /** True when the result may depend on `doc.key` (decisions are then cached per key). */
  readonly readsKey: boolean;
}

/** Why an expression was refused: the rule broken and where, as an offset into the expression. */
export interface ExpressionProblem {
  readonly message: string;
  readonly offset: number;
}

const regionFields = { name: 'string', jurisdiction: 'string', location: 'list<double>' } as const;
const documentFields = { dataset: 'string', key: 'string', tags: 'list<string>', origin: 'string' } as const;

let environments: Readonly<Record<ExpressionKind, Environment>> | undefined;

/** The two environments, built once (building one is expensive; using one is not). */
function environmentOf(kind: ExpressionKind): Environment {
  environments ??= {
    rule: base()
      .registerType('Document', { ctor: CelDocument, fields: { ...documentFields, home: 'string' } })
      .registerVariable('doc', 'Document')
      .registerVariable('source', 'Region')
      .registerVariable('target', 'Region'),
    home: base()
      .registerType('NewDocument', { ctor: CelNewDocument, fields: documentFields })
      .registerVariable('doc', 'NewDocument')
      .registerVariable('source', 'Region'),
  };
  return environments[kind];
}

function base(): Environment {
  return new Environment({
    limits: {
      maxAstNodes: expressionAstNodesMax,
      maxDepth: expressionDepthMax,
      maxListElements: 256,
      maxMapEntries: 256,
      maxCallArguments: 16,
    },
  }).registerType('Region', { ctor: CelRegion, fields: regionFields });
}

const fieldsHint: Readonly<Record<ExpressionKind, string>> = {
  rule: 'doc has dataset, key, tags, origin, home; source and target have name, jurisdiction, location',
  home: 'doc has dataset, key, tags, origin; source has name, jurisdiction, location',
};

const resultTypes: Readonly<Record<ExpressionKind, string>> = { rule: 'bool', home: 'string' };

/** Compiles `text` as an expression of `kind`; returns the problem instead when it is refused. */
export function compileExpression(text: string, kind: ExpressionKind): CompiledExpression | ExpressionProblem {
  if (text.trim().length === 0) return { message: 'the expression is empty', offset: 0 };
  if (text.length > expressionLengthMax) {
    return { message: `the expression has ${text.length} characters, over the limit of ${expressionLengthMax}`, offset: 0 };
  }
  let run: ParseResult;
  try {
    run = environmentOf(kind).parse(text);
  } catch (error) {
    return problemOf(error, kind);
  }
  const checked = run.check();
  if (!checked.valid) return problemOf(checked.error, kind);
  if (checked.type !== resultTypes[kind]) {
    return {
      message: `a ${kind === 'rule' ? 'rule' : 'home expression'} must return ${resultTypes[kind]}, this one returns ${checked.type ?? 'an unknown type'}`,
      offset: 0,
    };
  }
  const patternProblem = checkPatterns(run.ast);
  if (patternProblem !== null) return patternProblem;
  return { text, run, readsKey: readsKey(run.ast) };
}

/** True for a compiled expression, false for a problem. */
export function isCompiled(result: CompiledExpression | ExpressionProblem): result is CompiledExpression {
  return 'run' in result;
}

function problemOf(error: unknown, kind: ExpressionKind): ExpressionProblem {
  const cel = error as { name?: string; summary?: string; message?: string; range?: { start: number } } | undefined;
  if (cel === undefined || (cel.name !== 'ParseError' && cel.name !== 'TypeError') || typeof cel.summary !== 'string') throw error;
  let message = cel.summary;
  if (kind === 'home' && message === 'No such key: home') message += ' (a home expression cannot read doc.home: it computes it)';
  else if (message.startsWith('No such key: ')) message += ` (${fieldsHint[kind]})`;
  return { message, offset: cel.range?.start ?? 0 };
}

/**
 * True unless every use of `doc` is a selection of a field other than `key` (`doc.tags`, `doc['origin']`).
 * Any other use (`doc.key`, `has(doc.key)`, `cel.bind(d, doc, ...)`, a macro variable named doc) counts as
 * reading the key: a wrong "true" only costs cache hits, a wrong "false" would serve one key's decision to another.
 */
function readsKey(root: ASTNode): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const next = stack.pop();
    if (Array.isArray(next)) {
      stack.push(...next);
      continue;
    }
    if (!isAstNode(next)) continue;
    if (next.op === 'id') {
      if (next.args === 'doc') return true;
      continue;
    }
    if (next.op === '.' && isDocument(next.args[0])) {
      if (next.args[1] === 'key') return true;
      continue;
    }
    if (next.op === '[]' && isDocument(next.args[0])) {
      const field = next.args[1];
      if (field.op === 'value' && typeof field.args === 'string' && field.args !== 'key') continue;
      return true;
    }
    if (next.op !== 'value') stack.push(next.args);
  }
  return false;
}

function isAstNode(value: unknown): value is ASTNode {
  return typeof value === 'object' && value !== null && 'op' in value && 'args' in value;
}

function isDocument(node: ASTNode): boolean {
  return node.op === 'id' && node.args === 'doc';
}

/**
 * `matches()` patterns must be string literals that compile as regular expressions: they are checked when the
 * policy loads rather than failing (closed) on every decision.
 */
function checkPatterns(root: ASTNode): ExpressionProblem | null {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const next = stack.pop();
    if (Array.isArray(next)) {
      stack.push(...next);
      continue;
    }
    if (!isAstNode(next) || next.op === 'value' || next.op === 'id') continue;
    const call =
      next.op === 'rcall' ? { name: next.args[0], pattern: next.args[2][0] } : next.op === 'call' ? { name: next.args[0], pattern: next.args[1][1] } : null;
    if (call !== null && call.name === 'matches') {
      const pattern = call.pattern;
      if (pattern === undefined || pattern.op !== 'value' || typeof pattern.args !== 'string') {
        return {
          message: 'the pattern of matches() must be a string literal (so that it is checked when the policy loads)',
          offset: pattern?.start ?? next.start,
        };
      }
      try {
        // As cel-js runs it: a JavaScript RegExp without flags.
        new RegExp(pattern.args);
      } catch (error) {
        return { message: `the pattern of matches() is not a valid regular expression: ${(error as Error).message}`, offset: pattern.start };
      }
    }
    stack.push(next.args);
  }
  return null;
}
