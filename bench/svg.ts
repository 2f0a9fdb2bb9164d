// A small grouped horizontal bar chart as SVG text: one group per workload,
// one bar per system, the bar's length its req/s. No browser, no library:
// the benchmarks page embeds the file as an image.
export interface BarGroup {
  readonly title: string;
  readonly bars: ReadonlyArray<{ readonly label: string; readonly value: number }>;
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function barChart(title: string, subtitle: string, groups: readonly BarGroup[]): string {
  const labelW = 150;
  const barAreaW = 460;
  const valueW = 80;
  const barH = 16;
  const gap = 4;
  const groupGap = 14;
  const titleH = 44;
  const width = labelW + barAreaW + valueW + 20;
  const labels = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.label)))];
  const color = (label: string) => COLORS[labels.indexOf(label) % COLORS.length]!;
  const out: string[] = [];
  let y = titleH;
  for (const g of groups) {
    const max = Math.max(1, ...g.bars.map((b) => b.value));
    out.push(`<text x="10" y="${y + 12}" font-weight="bold">${esc(g.title)}</text>`);
    y += 20;
    for (const b of g.bars) {
      const w = Math.max(1, Math.round((b.value / max) * barAreaW));
      out.push(
        `<text x="${labelW - 6}" y="${y + barH - 4}" text-anchor="end">${esc(b.label)}</text>`,
        `<rect x="${labelW}" y="${y}" width="${w}" height="${barH}" fill="${color(b.label)}"/>`,
        `<text x="${labelW + w + 6}" y="${y + barH - 4}">${Math.round(b.value).toLocaleString('en-US')}</text>`,
      );
      y += barH + gap;
    }
    y += groupGap;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="18" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="34" fill="#555555">${esc(subtitle)}</text>`,
    ...out,
    `</svg>`,
    '',
  ].join('\n');
}
