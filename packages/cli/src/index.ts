/** @tessera/cli */
export {};
