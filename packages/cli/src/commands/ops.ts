/**
 * `tessera increment|add|remove|set|delete-field|yjs-update|automerge-changes`: one CRDT operation per command,
 * named as `POST /v1/kv/:dataset/:key/ops` names it (docs: the README's HTTP API). Several set elements or
 * Automerge changes go in one request, applied in order.
 */
import { readFile, stat } from 'node:fs/promises';
import { type Command } from 'commander';
import { type JsonScalar, TesseraError } from '@tessera/core';
import { callApi } from '../client.js';
import { type ConnectionOptions, addConnectionOptions, nodeApiOf } from '../options.js';
import { checkTypeOption, cliValueBytesMax, docPath, parseValue, writeLine } from './data.js';

/** Operations in one request: the server's `opsPerRequestMax` (a test keeps the two equal). */
export const opsPerCommandMax = 100;

type Print = (line: string) => void;
type OpOptions = ConnectionOptions & { type?: string; json?: boolean };
type Op = Record<string, unknown> & { op: string };

/** Sends the operations and prints one line per result (or the answer as JSON). */
async function send(print: Print, dataset: string, key: string, ops: readonly Op[], options: OpOptions): Promise<void> {
  checkTypeOption(options.type);
  if (ops.length > opsPerCommandMax)
    throw new TesseraError('ERR_OPTION_INVALID', `${ops.length} operations exceed the limit of ${opsPerCommandMax} per command`);
  const body = ops.map((op) => (options.type === undefined ? op : { ...op, type: options.type }));
  const answer = (await callApi(await nodeApiOf(options), 'POST', `${docPath(dataset, key)}/ops`, body.length === 1 ? body[0] : body)) as {
    results: Array<{ seq: number | null; token: string }>;
  };
  if (options.json) print(JSON.stringify(answer, null, 2));
  else for (const result of answer.results) print(writeLine(result));
}

/**
 * A set element: JSON when the text is a JSON scalar (`42`, `true`, `"42"`), else the text itself as a string
 * (`book`), so that words need no shell quoting. Objects and arrays are refused: set elements are scalars.
 */
export function parseElement(text: string): JsonScalar {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  if (value !== null && typeof value === 'object') {
    throw new TesseraError(
      'ERR_VALUE_INVALID',
      `set element ${text.slice(0, 80)}: elements are JSON scalars (string, number, boolean, null), not objects or arrays`,
    );
  }
  return value as JsonScalar;
}

/** Binary operands: base64 arguments, or the raw bytes of files (`--file`, repeatable), each bounded. */
async function binaryOperands(args: readonly string[], files: readonly string[] | undefined, what: string): Promise<string[]> {
  if (args.length > 0 && files !== undefined) throw new TesseraError('ERR_OPTION_INVALID', `give the ${what} as base64 arguments or with --file, not both`);
  if (files === undefined) {
    if (args.length === 0) throw new TesseraError('ERR_OPTION_INVALID', `give the ${what} as base64 arguments or with --file <path>`);
    return [...args];
  }
  const operands: string[] = [];
  for (const file of files) {
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch (error) {
      throw new TesseraError(
        'ERR_OPTION_INVALID',
        `--file ${JSON.stringify(file)}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
    if (size > cliValueBytesMax)
      throw new TesseraError('ERR_VALUE_TOO_LARGE', `--file ${JSON.stringify(file)}: ${size} bytes exceed the limit of ${cliValueBytesMax} bytes`);
    operands.push((await readFile(file)).toString('base64'));
  }
  return operands;
}

/** Adds the options every operation command takes. */
function operation(program: Command, name: string, description: string): Command {
  return addConnectionOptions(program.command(name).description(description).argument('<dataset>').argument('<key>'))
    .option('--type <type>', "CRDT type if the operation creates the document (default: the dataset's)")
    .option('--json', "print the node's answer as JSON");
}

/** Registers the operation commands. */
export function registerOperationCommands(program: Command, print: Print): void {
  operation(program, 'increment', 'add to a counter (a negative amount subtracts)')
    .alias('incr')
    .argument('[amount]', 'a safe integer', '1')
    .action(async (dataset: string, key: string, amount: string, options: OpOptions) => {
      const n = Number(amount);
      if (!Number.isSafeInteger(n))
        throw new TesseraError(
          'ERR_VALUE_INVALID',
          `amount ${JSON.stringify(amount)} must be an integer from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}`,
        );
      await send(print, dataset, key, [{ op: 'increment', amount: n }], options);
    });

  for (const [name, verb] of [
    ['add', 'add elements to'],
    ['remove', 'remove elements from'],
  ] as const) {
    operation(program, name, `${verb} a set (add wins over a concurrent remove); a word is a string, JSON scalars are themselves`)
      .argument('<element...>', `1 to ${opsPerCommandMax} elements`)
      .action(async (dataset: string, key: string, elements: string[], options: OpOptions) => {
        await send(
          print,
          dataset,
          key,
          elements.map((element) => ({ op: name, element: parseElement(element) })),
          options,
        );
      });
  }

  operation(program, 'set', 'set a field of a map document (value as JSON); nested fields by a dotted path')
    .argument('<path>', 'field path, e.g. address.city')
    .argument('<value>', 'JSON value, e.g. \'"Cork"\'')
    .action(async (dataset: string, key: string, path: string, value: string, options: OpOptions) => {
      await send(print, dataset, key, [{ op: 'set', path, value: parseValue(value) }], options);
    });

  operation(program, 'delete-field', 'delete a field of a map document (what this node has seen of it)')
    .argument('<path>', 'field path, e.g. address.city')
    .action(async (dataset: string, key: string, path: string, options: OpOptions) => {
      await send(print, dataset, key, [{ op: 'delete-field', path }], options);
    });

  operation(program, 'yjs-update', 'apply a Yjs update (Y.encodeStateAsUpdate, base64) to a yjs document')
    .argument('[update]', 'the update as base64')
    .option('--file <path...>', "read the update's bytes from a file instead")
    .action(async (dataset: string, key: string, update: string | undefined, options: OpOptions & { file?: string[] }) => {
      const updates = await binaryOperands(update === undefined ? [] : [update], options.file, 'Yjs update');
      await send(
        print,
        dataset,
        key,
        updates.map((bytes) => ({ op: 'yjs-update', update: bytes })),
        options,
      );
    });

  operation(program, 'automerge-changes', 'apply Automerge changes (Automerge.getChanges, each base64) to an automerge document')
    .argument('[changes...]', 'the changes, each as base64')
    .option('--file <path...>', "read each change's bytes from a file instead")
    .action(async (dataset: string, key: string, changes: string[], options: OpOptions & { file?: string[] }) => {
      const operands = await binaryOperands(changes, options.file, 'Automerge changes');
      await send(print, dataset, key, [{ op: 'automerge-changes', changes: operands }], options);
    });
}
