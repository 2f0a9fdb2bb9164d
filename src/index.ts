// The package root: what a program that talks to shardkv imports.
export { ERRORS, KvError, isErrorCode, fromWire } from './core/errors.js';
export { KvClient } from './client/kv-client.js';
export { CLIENT_DEFAULTS } from './client/options.js';
export { KvSessionStore } from './client/session-store.js';
export type { ErrorCode, ErrorDef } from './core/errors.js';
export type {
  BatchOp,
  BatchResult,
  CallOptions,
  DeleteOptions,
  KvClientEvents,
  KvEntry,
  KvMeta,
  KvValue,
  KvVersion,
  LoginInfo,
  PutOptions,
  ScanKey,
  ScanOptions,
  ScanPage,
  SessionInfo,
} from './client/kv-client.js';
export type { ClientConfig, KvClientOptions } from './client/options.js';
export type { RouterStats } from './client/balancer.js';
export type { AnySession, KvSessionStoreOptions, SessionLike, SessionSerializer, StoredSession } from './client/session-store.js';
