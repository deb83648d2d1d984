/** The client's errors: a node's problem+json answer as a `TesseraError` with its stable code. */
import { type ErrorCode, TesseraError, errorCatalogue } from '@tessera/core';

/** A refusal a node answered (problem+json), or a failure of the client to reach a node. */
export class TesseraClientError extends TesseraError {
  override readonly status: number;

  /**
   * @param code the problem's stable code (`ERR_INTERNAL` when the answer carried none the client knows)
   * @param problem the problem document as the node sent it (null when no node answered)
   * @param node the URL of the node that answered (null when none did)
   */
  constructor(
    code: ErrorCode,
    message: string,
    readonly problem: Readonly<Record<string, unknown>> | null,
    readonly node: string | null,
    status?: number,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.name = 'TesseraClientError';
    this.status = status ?? errorCatalogue[code].status;
  }

  /** The regions a `ERR_POLICY_DENIED` (421) answer says may hold the document. */
  get regions(): readonly string[] | null {
    const regions = this.problem?.regions;
    return Array.isArray(regions) ? (regions as string[]) : null;
  }
}

/** The error of a problem+json answer (or of an answer that is not one). */
export function errorOfAnswer(status: number, body: unknown, node: string): TesseraClientError {
  const problem = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : null;
  const code = typeof problem?.code === 'string' && Object.hasOwn(errorCatalogue, problem.code) ? (problem.code as ErrorCode) : 'ERR_INTERNAL';
  const detail = typeof problem?.detail === 'string' ? problem.detail : `node ${node} answered ${status} without a problem document`;
  return new TesseraClientError(code, detail, problem, node, status);
}
