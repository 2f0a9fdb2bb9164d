// Peer authentication on the shard data port: a challenge-response with the
// cluster secret (HMAC-SHA256), mutual, before any op. Pure: the messages and
// the proofs; the servers and clients that send them are in shard/ and infra/.
//
//   shard  -> peer   { hello: 2, id, nonce: S }              S: 32 fresh random bytes per connection
//   peer   -> shard  { auth: 2, nonce: C, proof: HMAC(k, "peer"  | id | S | C) }
//   shard  -> peer   { ok: 2, proof: HMAC(k, "shard" | id | S | C) }    or { denied: 2, code, message }, then close
//
// (2 is HANDSHAKE_VERSION.) The shard's nonce makes every handshake different, so a recorded one
// proves nothing on a new connection; the shard's own proof lets the peer
// know it reached a shard of its cluster (and the one it meant: `id`).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The wire protocol's version, proved in the handshake: peers of different
 * versions do not get past it. 2: get/put/del and their answers travel
 * positionally (core/protocol.ts).
 */
export const HANDSHAKE_VERSION = 2;
export const NONCE_BYTES = 32;
/** Handshake frames are tiny; a peer that announces more before it is authenticated is cut. */
export const HANDSHAKE_MAX_FRAME_BYTES = 1024;

export interface Hello {
  readonly hello: typeof HANDSHAKE_VERSION;
  readonly id: string;
  readonly nonce: Uint8Array;
}

export interface Auth {
  readonly auth: typeof HANDSHAKE_VERSION;
  readonly nonce: Uint8Array;
  readonly proof: Uint8Array;
}

export const newNonce = (): Buffer => randomBytes(NONCE_BYTES);

function proof(secret: string, who: 'peer' | 'shard', id: string, shardNonce: Uint8Array, peerNonce: Uint8Array): Buffer {
  const h = createHmac('sha256', secret);
  h.update(`shardkv/${HANDSHAKE_VERSION} ${who} ${id}\n`);
  h.update(shardNonce);
  h.update(peerNonce);
  return h.digest();
}

export const peerProof = (secret: string, id: string, shardNonce: Uint8Array, peerNonce: Uint8Array): Buffer =>
  proof(secret, 'peer', id, shardNonce, peerNonce);
export const shardProof = (secret: string, id: string, shardNonce: Uint8Array, peerNonce: Uint8Array): Buffer =>
  proof(secret, 'shard', id, shardNonce, peerNonce);

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(got: unknown, want: Uint8Array): boolean {
  return got instanceof Uint8Array && got.byteLength === want.byteLength && timingSafeEqual(got, want);
}

const isNonce = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.byteLength === NONCE_BYTES;

export function isHello(m: unknown): m is Hello {
  const o = m as Partial<Hello> | null;
  return typeof o === 'object' && o !== null && o.hello === HANDSHAKE_VERSION && typeof o.id === 'string' && isNonce(o.nonce);
}

export function isAuth(m: unknown): m is Auth {
  const o = m as Partial<Auth> | null;
  return typeof o === 'object' && o !== null && o.auth === HANDSHAKE_VERSION && isNonce(o.nonce) && o.proof instanceof Uint8Array;
}
