// Renders bench/scale.ts's JSON (SCALE_JSON) as an SVG of curves against the number of hosts:
// convergence p99 (join → tunnel, endpoint → ipcache), one agent's heap and list size, etcd keys
// and DB, etcd's lease keepalives and one agent's ipcache pass (what grows with the hosts).
// Each panel has its own y axis; points are the ramp's steps.
//   npx ts-node bench/scalePlot.ts results.json docs/scale-curves.svg
import * as fs from "fs";
import { percentile } from "./lib/stats";

interface Step {
  hosts: number;
  join: number[];
  endpoint: number[];
  agentHeapBytes: number;
  relistBytes: number;
  etcd: { keys: number; dbBytes: number[] };
  writesPerSecond: number;
  keepalivesPerSecond?: number;
  ipcachePassMs?: [number, number];
}

interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

/** Pure: one panel (title, unit, series) as SVG at (x, y) of size w × h. */
export function panel(x: number, y: number, w: number, h: number, title: string, unit: string, series: Series[]): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const xMax = Math.max(1, ...xs);
  const yMax = Math.max(1e-9, ...ys) * 1.1;
  const px = (v: number) => x + 50 + (v / xMax) * (w - 70);
  const py = (v: number) => y + h - 30 - (v / yMax) * (h - 60);
  const esc = (t: string) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const out = [
    `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="white" stroke="#ccc"/>`,
    `<text x="${x + 10}" y="${y + 18}" font-size="13" font-family="sans-serif">${esc(title)} (${esc(unit)})</text>`,
    `<line x1="${px(0)}" y1="${py(0)}" x2="${px(xMax)}" y2="${py(0)}" stroke="#888"/>`,
    `<line x1="${px(0)}" y1="${py(0)}" x2="${px(0)}" y2="${py(yMax)}" stroke="#888"/>`,
    `<text x="${px(0) - 5}" y="${py(yMax / 1.1) + 4}" font-size="10" text-anchor="end" font-family="sans-serif">${(yMax / 1.1).toPrecision(3)}</text>`,
  ];
  for (const v of [...new Set(xs)]) out.push(`<text x="${px(v)}" y="${py(0) + 14}" font-size="10" text-anchor="middle" font-family="sans-serif">${v}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ")}"/>`);
    for (const p of pts) out.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${s.color}"/>`);
    out.push(`<text x="${x + w - 10}" y="${y + 18 + 14 * i}" font-size="11" text-anchor="end" fill="${s.color}" font-family="sans-serif">${esc(s.name)}</text>`);
  });
  return out.join("\n");
}

/** The ramp's steps as the SVG of six panels (the last two only from runs that measured them). */
export function renderScaleSvg(steps: Step[]): string {
  const at = (f: (s: Step) => number): [number, number][] => steps.map((s) => [s.hosts, f(s)]);
  const W = 420;
  const H = 240;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W + 30}" height="${3 * H + 40}" viewBox="0 0 ${2 * W + 30} ${3 * H + 40}">`,
    panel(10, 10, W, H, "convergence p99 vs hosts", "ms", [
      { name: "join → every tunnel map", color: "#1f77b4", points: at((s) => percentile(s.join, 99)) },
      { name: "endpoint → every ipcache", color: "#d62728", points: at((s) => percentile(s.endpoint, 99)) },
    ]),
    panel(20 + W, 10, W, H, "one agent vs hosts", "MiB", [
      { name: "heap", color: "#2ca02c", points: at((s) => s.agentHeapBytes / 2 ** 20) },
      { name: "list (relist) bytes", color: "#9467bd", points: at((s) => s.relistBytes / 2 ** 20) },
    ]),
    panel(10, 20 + H, W, H, "etcd keys vs hosts", "keys", [{ name: "keys", color: "#ff7f0e", points: at((s) => s.etcd.keys) }]),
    panel(20 + W, 20 + H, W, H, "etcd DB vs hosts", "MiB", [{ name: "DB size (max member)", color: "#8c564b", points: at((s) => Math.max(...s.etcd.dbBytes) / 2 ** 20) }]),
    panel(10, 30 + 2 * H, W, H, "etcd lease keepalives vs hosts", "per s", [{ name: "keepalives/s (3 members)", color: "#17becf", points: at((s) => s.keepalivesPerSecond ?? NaN) }]),
    panel(20 + W, 30 + 2 * H, W, H, "one agent's ipcache pass vs hosts", "ms", [{ name: "pass p50", color: "#7f7f7f", points: at((s) => s.ipcachePassMs?.[0] ?? NaN) }]),
    "</svg>",
  ].join("\n");
  return svg + "\n";
}

function main(): void {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) throw new Error("usage: scalePlot.ts <results.json> <out.svg>");
  fs.writeFileSync(output, renderScaleSvg((JSON.parse(fs.readFileSync(input, "utf8")) as { steps: Step[] }).steps));
}

if (require.main === module) main();
