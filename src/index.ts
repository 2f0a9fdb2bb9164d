// The package root: what a program that talks to shardkv imports.
export { ERRORS, KvError, isErrorCode, fromWire } from './core/errors.js';
export type { ErrorCode, ErrorDef } from './core/errors.js';
