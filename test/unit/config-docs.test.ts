// docs/configuration.md against ROUTER_DEFAULTS / SHARD_DEFAULTS: every option
// documented once, nothing documented that does not exist, the documented
// default equal to the code's, and the env var the one configFromEnv reads.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROUTER_DEFAULTS, SHARD_DEFAULTS } from '../../src/core/config.js';

const DOC = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));

interface OptionRow {
  readonly dflt: string;
  readonly env: string;
}

/** The option rows (`| \`key\` | default | unit | env var | …`) of the table under `heading`. */
function optionTable(text: string, heading: string): Map<string, OptionRow> {
  const start = text.search(new RegExp(`^## ${heading}[ \\t]*$`, 'm'));
  if (start < 0) throw new Error(`docs/configuration.md has no "## ${heading}" heading`);
  const rest = text.slice(start + heading.length + 3);
  const next = rest.search(/^## /m);
  const section = next < 0 ? rest : rest.slice(0, next);
  const rows = new Map<string, OptionRow>();
  for (const line of section.split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const m = /^`([A-Za-z]+)`$/.exec(cells[0] ?? '');
    if (!m) continue;
    if (cells.length < 5) throw new Error(`docs/configuration.md: malformed row under ${heading}: ${line}`);
    const key = m[1]!;
    if (rows.has(key)) throw new Error(`docs/configuration.md lists ${key} twice under ${heading}`);
    rows.set(key, { dflt: cells[1]!, env: cells[3]! });
  }
  return rows;
}

/** `requestTimeoutMs` -> `ROUTER_REQUEST_TIMEOUT_MS`, as configFromEnv maps it. */
const envName = (prefix: string, key: string) => prefix + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();

/** Defaults that depend on the machine: documented in words, not checked. */
const MACHINE_DEPENDENT = new Set(['workers']);

/**
 * Why a documented default does not match the code's, or undefined. A default
 * of '' (empty, required, or derived at start) is documented in parentheses.
 */
function defaultMismatch(key: string, code: unknown, doc: string): string | undefined {
  if (MACHINE_DEPENDENT.has(key)) return undefined;
  const shownDoc = JSON.stringify(doc);
  if (typeof code === 'number') return doc === String(code) ? undefined : `${key}: docs ${shownDoc}, code ${code}`;
  if (typeof code === 'boolean') return doc === String(code) ? undefined : `${key}: docs ${shownDoc}, code ${code}`;
  if (typeof code === 'string') {
    if (code === '') return /^\(.+\)$/.test(doc) ? undefined : `${key}: code default is empty, docs should say so in parentheses, got ${shownDoc}`;
    return doc === code ? undefined : `${key}: docs ${shownDoc}, code ${JSON.stringify(code)}`;
  }
  return `${key}: default of type ${typeof code} is not checked here`;
}

function check(rows: Map<string, OptionRow>, defaults: Record<string, unknown>, keys: readonly string[], prefix: string) {
  return {
    missing: keys.filter((k) => !rows.has(k)),
    unknown: [...rows.keys()].filter((k) => !keys.includes(k)),
    defaults: keys
      .filter((k) => rows.has(k))
      .map((k) => defaultMismatch(k, defaults[k], rows.get(k)!.dflt))
      .filter((x) => x !== undefined),
    env: keys
      .filter((k) => rows.has(k) && !rows.get(k)!.env.includes('`' + envName(prefix, k) + '`'))
      .map((k) => `${k}: docs ${JSON.stringify(rows.get(k)!.env)}, expected ${envName(prefix, k)}`),
  };
}

describe('configuration tables', () => {
  it('parses the documented format, and only under its heading', () => {
    const sample = [
      '## Router options',
      '| key | default | unit | env var | flag | meaning |',
      '|---|---|---|---|---|---|',
      '| `port` | 8080 | — | `ROUTER_PORT` | `--port` | HTTP port |',
      '| `adminToken` | (empty) | — | `ROUTER_ADMIN_TOKEN` | `--set` | token |',
      '## Shard options',
      '| `id` | (required) | — | `SHARD_ID` | `--id` | id |',
    ].join('\n');
    expect([...optionTable(sample, 'Router options')]).toEqual([
      ['port', { dflt: '8080', env: '`ROUTER_PORT`' }],
      ['adminToken', { dflt: '(empty)', env: '`ROUTER_ADMIN_TOKEN`' }],
    ]);
    expect([...optionTable(sample, 'Shard options').keys()]).toEqual(['id']);
    expect(() => optionTable(sample, 'Nope')).toThrow(/no "## Nope" heading/);
  });

  it('compares defaults by type', () => {
    expect(defaultMismatch('port', 8080, '8080')).toBeUndefined();
    expect(defaultMismatch('port', 8080, '8081')).toMatch(/port/);
    expect(defaultMismatch('noSync', false, 'true')).toMatch(/noSync/);
    expect(defaultMismatch('logLevel', 'warn', 'warn')).toBeUndefined();
    expect(defaultMismatch('logLevel', 'warn', 'info')).toMatch(/logLevel/);
    expect(defaultMismatch('id', '', '(required)')).toBeUndefined();
    expect(defaultMismatch('id', '', 's1')).toMatch(/parentheses/);
    expect(envName('ROUTER_', 'rebalanceMaxKeysPerSec')).toBe('ROUTER_REBALANCE_MAX_KEYS_PER_SEC');
  });

  const text = readFileSync(DOC, 'utf8');

  it('documents every router option of ROUTER_DEFAULTS, and no other', () => {
    const r = check(optionTable(text, 'Router options'), ROUTER_DEFAULTS, Object.keys(ROUTER_DEFAULTS), 'ROUTER_');
    expect(r.missing, 'in ROUTER_DEFAULTS but not documented').toEqual([]);
    expect(r.unknown, 'documented but not in ROUTER_DEFAULTS').toEqual([]);
    expect(r.defaults, 'defaults that disagree').toEqual([]);
    expect(r.env, 'environment variables that disagree').toEqual([]);
  });

  it('documents every shard option of SHARD_DEFAULTS, and no other', () => {
    // maxBatchOps is a router limit: a shard accepts the key but never uses it,
    // so it is not documented as a shard option.
    const keys = Object.keys(SHARD_DEFAULTS).filter((k) => k !== 'maxBatchOps');
    const rows = optionTable(text, 'Shard options');
    expect(rows.has('maxBatchOps'), 'maxBatchOps is a router option only').toBe(false);
    const r = check(rows, SHARD_DEFAULTS, keys, 'SHARD_');
    expect(r.missing, 'in SHARD_DEFAULTS but not documented').toEqual([]);
    expect(r.unknown, 'documented but not in SHARD_DEFAULTS').toEqual([]);
    expect(r.defaults, 'defaults that disagree').toEqual([]);
    expect(r.env, 'environment variables that disagree').toEqual([]);
  });
});
