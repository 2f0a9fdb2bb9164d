import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERRORS, KvError, fromWire, isErrorCode, kvError, kvErrorWith, toWire, type ErrorCode } from '../../src/core/errors.js';

const CODES = Object.keys(ERRORS) as ErrorCode[];
const ERRORS_DOC = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));

describe('ERRORS table', () => {
  it('is not empty', () => {
    expect(CODES.length).toBeGreaterThan(10);
  });

  it.each(CODES)('%s has a KV_ERR_ name, a 4xx/5xx status and a message', (code) => {
    const def = ERRORS[code];
    expect(code).toMatch(/^KV_ERR_[A-Z_]+$/);
    expect(Number.isInteger(def.status)).toBe(true);
    expect(def.status).toBeGreaterThanOrEqual(400);
    expect(def.status).toBeLessThanOrEqual(599);
    expect(typeof def.message).toBe('string');
    expect(def.message.trim().length).toBeGreaterThan(0);
  });

  it('has one entry per code (no duplicates under another spelling)', () => {
    expect(new Set(CODES.map((c) => c.toUpperCase())).size).toBe(CODES.length);
  });

  it('isErrorCode accepts table codes only, not prototype names', () => {
    expect(isErrorCode('KV_ERR_NOT_FOUND')).toBe(true);
    expect(isErrorCode('KV_ERR_NOPE')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('__proto__')).toBe(false);
    expect(isErrorCode(404)).toBe(false);
  });
});

describe('kvError', () => {
  it('fills %s slots in order and takes status from the table', () => {
    const err = kvError('KV_ERR_KEY_TOO_LONG', 2000, 1024);
    expect(err).toBeInstanceOf(KvError);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('KV_ERR_KEY_TOO_LONG');
    expect(err.statusCode).toBe(400);
    expect(err.message).toBe('key is 2000 bytes, the limit is 1024 bytes');
    expect(err.detail).toBeUndefined();
  });

  it('leaves missing slots visible and ignores extra arguments', () => {
    expect(kvError('KV_ERR_KEY_TOO_LONG', 7).message).toBe('key is 7 bytes, the limit is %s bytes');
    expect(kvError('KV_ERR_NOT_FOUND', 'extra').message).toBe('key not found');
  });

  it('does not expand %s inside the arguments', () => {
    expect(kvError('KV_ERR_KEY_TOO_LONG', '%s', 5).message).toBe('key is %s bytes, the limit is 5 bytes');
  });

  it('every code builds an error with its own status', () => {
    for (const code of CODES) {
      const err = kvError(code, 'a', 'b', 'c');
      expect(err.code).toBe(code);
      expect(err.statusCode).toBe(ERRORS[code].status);
      expect(err.message).not.toContain('%s');
    }
  });

  it('kvErrorWith keeps the detail and puts it in toJSON', () => {
    const err = kvErrorWith('KV_ERR_STALE_EPOCH', { epoch: 9 }, 3, 9);
    expect(err.message).toBe('request epoch 3 is older than the shard epoch 9');
    expect(err.detail).toEqual({ epoch: 9 });
    expect(err.toJSON()).toEqual({ code: 'KV_ERR_STALE_EPOCH', message: err.message, epoch: 9 });
  });
});

describe('toWire / fromWire', () => {
  it('round-trips code, message and detail', () => {
    const orig = kvErrorWith('KV_ERR_NOT_OWNER', { epoch: 42, shard: 's2' }, 's2', 42);
    const wire = toWire(orig);
    // The wire form must survive a JSON hop (HTTP) unchanged.
    const back = fromWire(JSON.parse(JSON.stringify(wire)) as Record<string, unknown>);
    expect(back).toBeInstanceOf(KvError);
    expect(back.code).toBe(orig.code);
    expect(back.statusCode).toBe(409);
    expect(back.message).toBe(orig.message);
    expect(back.detail).toEqual({ epoch: 42, shard: 's2' });
  });

  it('round-trips an error without detail', () => {
    const back = fromWire(toWire(kvError('KV_ERR_TIMEOUT', 's1', 5000)));
    expect(back.code).toBe('KV_ERR_TIMEOUT');
    expect(back.statusCode).toBe(504);
    expect(back.message).toBe('shard s1 did not answer within 5000 ms; the outcome is unknown');
    expect(back.detail ?? {}).toEqual({});
  });

  it('round-trips every code', () => {
    for (const code of CODES) {
      const orig = kvErrorWith(code, { n: 1 }, 'x', 'y');
      const back = fromWire(toWire(orig));
      expect(back.code).toBe(code);
      expect(back.message).toBe(orig.message);
      expect(back.detail).toEqual({ n: 1 });
    }
  });

  it('toWire of a plain Error or a thrown string is KV_ERR_INTERNAL', () => {
    expect(toWire(new Error('boom'))).toEqual({ code: 'KV_ERR_INTERNAL', message: 'internal error: boom' });
    expect(toWire('bad')).toEqual({ code: 'KV_ERR_INTERNAL', message: 'internal error: bad' });
  });

  it('fromWire of an unknown code gives KV_ERR_INTERNAL and keeps what it was told', () => {
    const err = fromWire({ code: 'KV_ERR_FROM_THE_FUTURE', message: 'hello' });
    expect(err.code).toBe('KV_ERR_INTERNAL');
    expect(err.statusCode).toBe(500);
    expect(err.message).toContain('KV_ERR_FROM_THE_FUTURE');
    expect(err.message).toContain('hello');
  });

  it('fromWire of a missing or non-string code gives KV_ERR_INTERNAL', () => {
    expect(fromWire({}).code).toBe('KV_ERR_INTERNAL');
    expect(fromWire({ code: 404, message: 'x' }).code).toBe('KV_ERR_INTERNAL');
    expect(fromWire({ code: 'toString', message: 'x' }).code).toBe('KV_ERR_INTERNAL');
  });

  it('fromWire without a message falls back to the table template', () => {
    const err = fromWire({ code: 'KV_ERR_NOT_FOUND' });
    expect(err.code).toBe('KV_ERR_NOT_FOUND');
    expect(err.message).toBe(ERRORS.KV_ERR_NOT_FOUND.message);
  });
});

/** A row of the error table in docs/errors.md. */
interface DocRow {
  readonly status: number;
  readonly message: string;
  readonly meaning: string;
}

/** The rows of the `## Codes` table in docs/errors.md: `| code | status | message | meaning |`. */
function docErrorTable(text: string): Map<string, DocRow> {
  const start = text.search(/^## Codes[ \t]*$/m);
  if (start < 0) throw new Error('docs/errors.md has no "## Codes" heading');
  const rest = text.slice(start + '## Codes'.length);
  const next = rest.search(/^## /m);
  const section = next < 0 ? rest : rest.slice(0, next);
  const rows = new Map<string, DocRow>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `KV_ERR_')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const m = /^`(KV_ERR_[A-Z_]+)`$/.exec(cells[0] ?? '');
    if (!m || cells.length !== 4 || !/^\d{3}$/.test(cells[1]!)) throw new Error(`docs/errors.md: malformed row: ${line}`);
    const code = m[1]!;
    if (rows.has(code)) throw new Error(`docs/errors.md lists ${code} twice`);
    rows.set(code, { status: Number(cells[1]), message: cells[2]!, meaning: cells[3]! });
  }
  return rows;
}

/** A message template as the docs show it: each `%s` slot as `…`. */
const shown = (template: string) => template.replace(/%s/g, '…');

describe('error table in docs/errors.md', () => {
  it('parses the documented format, and only under ## Codes', () => {
    const sample = [
      '# x',
      '| `KV_ERR_OUTSIDE` | 400 | not in the section | x |',
      '## Codes',
      '| code | status | message | meaning |',
      '|---|---|---|---|',
      '| `KV_ERR_NOT_FOUND` | 404 | key not found | no live value |',
      '| `KV_ERR_TIMEOUT` | 504 | shard … did not answer | slow |',
      '## After',
      '| `KV_ERR_AFTER` | 500 | not in the section | x |',
    ].join('\n');
    const rows = docErrorTable(sample);
    expect([...rows.keys()]).toEqual(['KV_ERR_NOT_FOUND', 'KV_ERR_TIMEOUT']);
    expect(rows.get('KV_ERR_TIMEOUT')).toEqual({ status: 504, message: 'shard … did not answer', meaning: 'slow' });
    expect(() => docErrorTable('## Codes\n| `KV_ERR_X` | 40 | short status | x |')).toThrow(/malformed/);
    expect(() => docErrorTable('## Codes\n| `KV_ERR_X` | 400 | no meaning column |')).toThrow(/malformed/);
    expect(() => docErrorTable('no heading')).toThrow(/## Codes/);
  });

  it('shows a template with its %s slots as …', () => {
    expect(shown(ERRORS.KV_ERR_KEY_TOO_LONG.message)).toBe('key is … bytes, the limit is … bytes');
  });

  it('lists exactly the codes of ERRORS, each with its status, message and a meaning', () => {
    let text: string;
    try {
      text = readFileSync(ERRORS_DOC, 'utf8');
    } catch {
      throw new Error('docs/errors.md is missing; it must carry the error table');
    }
    const documented = docErrorTable(text);
    const missing = CODES.filter((c) => !documented.has(c));
    const unknown = [...documented.keys()].filter((c) => !isErrorCode(c));
    const wrongStatus = CODES.filter((c) => documented.has(c) && documented.get(c)!.status !== ERRORS[c].status).map(
      (c) => `${c}: docs ${documented.get(c)!.status}, code ${ERRORS[c].status}`,
    );
    const wrongMessage = CODES.filter((c) => documented.has(c) && documented.get(c)!.message !== shown(ERRORS[c].message)).map(
      (c) => `${c}: docs "${documented.get(c)!.message}", code "${shown(ERRORS[c].message)}"`,
    );
    const noMeaning = CODES.filter((c) => documented.has(c) && documented.get(c)!.meaning.length === 0);

    expect(missing, 'codes in src/core/errors.ts but not in docs/errors.md').toEqual([]);
    expect(unknown, 'codes in docs/errors.md but not in src/core/errors.ts').toEqual([]);
    expect(wrongStatus, 'statuses that disagree').toEqual([]);
    expect(wrongMessage, 'messages that disagree').toEqual([]);
    expect(noMeaning, 'codes without a meaning').toEqual([]);
    expect(documented.size).toBe(CODES.length);
  });
});
