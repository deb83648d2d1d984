/**
 * Tessera: a CRDT-based replicated key-value store with differential, policy-driven replication.
 * `import { Replica } from 'tessera'` for the embedded store.
 */
export * from '@tessera/store';
export {
  TesseraError, isTesseraError, errorCatalogue, type ErrorCode,
  type CrdtTypeName, crdtTypeNames, type Json, type JsonScalar, type Hlc, type Dot, type Operation,
  compareHlc,
} from '@tessera/core';
