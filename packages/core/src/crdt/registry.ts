/** The CRDT types by name. */
import { TesseraError } from '../errors.js';
import { describeValue } from '../json.js';
import { automergeType } from './automerge.js';
import { counterType } from './counter.js';
import { mapType } from './map.js';
import { lwwType, mvType } from './register.js';
import { setType } from './set.js';
import { type CrdtType, type CrdtTypeName, crdtTypeNames } from './type.js';
import { yjsType } from './yjs.js';

// Each entry is a CrdtType over its own body; the registry erases the body type.
const types: Record<CrdtTypeName, CrdtType<unknown, unknown>> = {
  map: mapType as CrdtType<unknown, unknown>,
  lww: lwwType as CrdtType<unknown, unknown>,
  mv: mvType as CrdtType<unknown, unknown>,
  counter: counterType as CrdtType<unknown, unknown>,
  set: setType as CrdtType<unknown, unknown>,
  yjs: yjsType as CrdtType<unknown, unknown>,
  automerge: automergeType as CrdtType<unknown, unknown>,
};

/** True for a known CRDT type name. */
export function isCrdtTypeName(name: unknown): name is CrdtTypeName {
  return typeof name === 'string' && (crdtTypeNames as readonly string[]).includes(name);
}

/** The implementation of type `name`; throws `ERR_TYPE_UNKNOWN`. */
export function crdtType(name: unknown): CrdtType<unknown, unknown> {
  if (!isCrdtTypeName(name)) {
    throw new TesseraError('ERR_TYPE_UNKNOWN', `CRDT type ${describeValue(name)} is unknown: use one of ${crdtTypeNames.join(', ')}`);
  }
  return types[name];
}
