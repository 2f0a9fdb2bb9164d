// Every relative link in README.md and docs/*.md points to a file that exists,
// and every #anchor to a heading of that file (GitHub's heading ids).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

/** Markdown without fenced code blocks and inline code, where brackets are not links. */
function prose(md: string): string {
  return md.replace(/^```[^\n]*\n[\s\S]*?^```[ \t]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Targets of inline links `[text](target)`. */
function links(md: string): string[] {
  return [...prose(md).matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

/** GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens; repeats get -1, -2, … */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of md.replace(/^```[^\n]*\n[\s\S]*?^```[ \t]*$/gm, '').matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const base = m[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

const isExternal = (t: string) => /^[a-z][a-z0-9+.-]*:/i.test(t);

/** What is wrong with one link from `file`, or undefined. */
function brokenLink(file: string, target: string): string | undefined {
  if (isExternal(target)) return undefined;
  const [rel, anchor] = target.split('#') as [string, string | undefined];
  const resolved = rel === '' ? path.join(ROOT, file) : path.resolve(path.dirname(path.join(ROOT, file)), decodeURI(rel));
  if (!existsSync(resolved)) return `${file}: ${target}: no such file`;
  if (anchor !== undefined && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(anchor)) {
    return `${file}: ${target}: no heading #${anchor}`;
  }
  return undefined;
}

describe('links in the docs', () => {
  it('finds links outside code only, and heading ids as GitHub makes them', () => {
    const md = [
      '# Top',
      'See [a](a.md) and [b](b.md#x "t").',
      '`[no](code.md)`',
      '```',
      '[no](fence.md)',
      '```',
      '## The barrier (`sync`)',
      '## Not built yet, and known limits',
      '## Top',
    ].join('\n');
    expect(links(md)).toEqual(['a.md', 'b.md#x']);
    expect([...anchors(md)]).toEqual(['top', 'the-barrier-sync', 'not-built-yet-and-known-limits', 'top-1']);
  });

  it('reports a missing file and a missing heading', () => {
    expect(brokenLink('README.md', 'docs/nope.md')).toMatch(/no such file/);
    expect(brokenLink('README.md', 'docs/errors.md#nope')).toMatch(/no heading #nope/);
    expect(brokenLink('README.md', 'https://example.com/x')).toBeUndefined();
  });

  it('README.md and docs/ have documents with links', () => {
    expect(DOCS).toContain('docs/architecture.md');
    expect(DOCS.flatMap((f) => links(readFileSync(path.join(ROOT, f), 'utf8'))).length).toBeGreaterThan(10);
  });

  it.each(DOCS)('every relative link in %s resolves', (file) => {
    const broken = links(readFileSync(path.join(ROOT, file), 'utf8'))
      .map((t) => brokenLink(file, t))
      .filter((x) => x !== undefined);
    expect(broken).toEqual([]);
  });
});
