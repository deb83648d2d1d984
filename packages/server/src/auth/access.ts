/**
 * Roles and per-dataset grants (issue 12 item 2). Every route states what it needs (`Requirement`); a request's
 * principal either has it or the request is refused with `ERR_FORBIDDEN` naming the route, the role and the
 * dataset. The roles, like CouchDB's members/admins and Cosmos DB's data-plane roles, are few and fixed:
 *
 * | role           | may                                                                                   |
 * | -------------- | ------------------------------------------------------------------------------------- |
 * | `reader`       | read documents, lists and conflicts of its granted datasets                           |
 * | `writer`       | what `reader` may, and write, delete and operate on documents of its granted datasets |
 * | `operator`     | watch the node: status, peers, metrics, audit, policy (read, plan), inspection, the dashboard and cluster view |
 * | `policy-admin` | what `operator` may with policies, and install (shadow, enforce) a signed policy      |
 *
 * Inspection routes that show keys or values (`/v1/inspect/keys/:dataset`, `/v1/inspect/doc/...`,
 * `/v1/inspect/log?values=true`) need `operator` and a read grant on the datasets they show. A policy-admin
 * token cannot read data, and a writer cannot change the policy. Health (`/healthz`, `/readyz`) needs any valid
 * token unless the config opens it; metrics need `operator` unless the config opens them.
 */
import { TesseraError } from '@tessera/core';

/** The roles, in the order of the table above. */
export const roles = ['reader', 'writer', 'operator', 'policy-admin'] as const;
/** A role. */
export type Role = (typeof roles)[number];

/** How a credential may be used: its roles, and the datasets its reader and writer roles apply to (`*`: all). */
export interface Grant {
  readonly roles: readonly Role[];
  readonly datasets: readonly string[];
}

/** Who made a request, as the credential says. */
export interface Principal {
  /** The token's public id. */
  readonly id: string;
  readonly name: string;
  readonly roles: ReadonlySet<Role>;
  readonly datasets: '*' | ReadonlySet<string>;
}

/** What a route needs. */
export type Requirement =
  | { readonly kind: 'read'; readonly datasets: readonly string[] | '*' }
  | { readonly kind: 'write'; readonly dataset: string }
  | { readonly kind: 'operator'; readonly datasets?: readonly string[] | '*' }
  | { readonly kind: 'policy-admin' }
  | { readonly kind: 'any' };

/** Throws `ERR_FORBIDDEN` unless `principal` meets `need` on `route` (a route pattern, never a concrete path). */
export function authorize(principal: Principal, need: Requirement, route: string): void {
  const has = (role: Role) => principal.roles.has(role);
  const forbid = (what: string) => {
    throw new TesseraError('ERR_FORBIDDEN', `${route}: token ${principal.name} (${[...principal.roles].join(', ')}) ${what}`);
  };
  const checkDatasets = (datasets: readonly string[] | '*', role: string) => {
    if (principal.datasets === '*') return;
    if (datasets === '*') forbid(`has no ${role} grant on every dataset, which this request needs`);
    for (const dataset of datasets as readonly string[]) {
      if (!(principal.datasets as ReadonlySet<string>).has(dataset)) forbid(`has no ${role} grant on dataset ${JSON.stringify(dataset)}`);
    }
  };
  switch (need.kind) {
    case 'any':
      return;
    case 'read':
      if (!has('reader') && !has('writer')) forbid('lacks the reader role');
      checkDatasets(need.datasets, 'reader');
      return;
    case 'write':
      if (!has('writer')) forbid('lacks the writer role');
      checkDatasets([need.dataset], 'writer');
      return;
    case 'operator':
      if (!has('operator') && !has('policy-admin')) forbid('lacks the operator role');
      if (need.datasets !== undefined) {
        if (!has('reader') && !has('writer')) forbid('lacks a reader grant on the datasets this inspection shows');
        checkDatasets(need.datasets, 'reader');
      }
      return;
    case 'policy-admin':
      if (!has('policy-admin')) forbid('lacks the policy-admin role');
      return;
  }
}
