/** @tessera/sync */
export {};
