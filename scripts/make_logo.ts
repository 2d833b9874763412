/**
 * Draws logo.png: a terminal prompt on a rounded square, with a JavaScript-yellow and a Python-blue dot.
 * Run: deno run --allow-write=logo.png scripts/make_logo.ts
 */
import { deflateSync } from "node:zlib";

const SIZE = 512;
const SAMPLES = 4;
type Rgba = [number, number, number, number];

function segment(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax, dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

function roundedSquare(px: number, py: number, margin: number, radius: number): number {
  const half = SIZE / 2 - margin;
  const qx = Math.abs(px - SIZE / 2) - half + radius, qy = Math.abs(py - SIZE / 2) - half + radius;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - radius;
}

function shade(x: number, y: number): Rgba {
  if (roundedSquare(x, y, 16, 104) > 0) return [0, 0, 0, 0];
  const t = (x + y) / (2 * SIZE);
  let color: Rgba = [Math.round(18 + 20 * t), Math.round(24 + 30 * t), Math.round(48 + 50 * t), 255];
  const stroke = 22;
  const prompt = Math.min(segment(x, y, 138, 176, 240, 256), segment(x, y, 240, 256, 138, 336));
  if (prompt < stroke || segment(x, y, 280, 336, 374, 336) < stroke) color = [80, 220, 140, 255];
  if (Math.hypot(x - 334, y - 150) < 30) color = [247, 223, 30, 255];
  if (Math.hypot(x - 406, y - 150) < 30) color = [55, 118, 171, 255];
  return color;
}

const rows: Uint8Array[] = [];
for (let y = 0; y < SIZE; y++) {
  const row = new Uint8Array(1 + SIZE * 4);
  for (let x = 0; x < SIZE; x++) {
    const sum = [0, 0, 0, 0];
    for (let sy = 0; sy < SAMPLES; sy++) {
      for (let sx = 0; sx < SAMPLES; sx++) {
        const c = shade(x + (sx + 0.5) / SAMPLES, y + (sy + 0.5) / SAMPLES);
        for (let i = 0; i < 3; i++) sum[i] = (sum[i] as number) + (c[i] as number) * c[3];
        sum[3] = (sum[3] as number) + c[3];
      }
    }
    const alpha = (sum[3] as number) / (SAMPLES * SAMPLES);
    for (let i = 0; i < 3; i++) {
      row[1 + x * 4 + i] = alpha ? Math.round((sum[i] as number) / (sum[3] as number)) : 0;
    }
    row[1 + x * 4 + 3] = Math.round(alpha);
  }
  rows.push(row);
}

function crc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const header = new Uint8Array(13);
new DataView(header.buffer).setUint32(0, SIZE);
new DataView(header.buffer).setUint32(4, SIZE);
header.set([8, 6, 0, 0, 0], 8);
const raw = new Uint8Array(rows.length * (rows[0] as Uint8Array).length);
rows.forEach((row, i) => raw.set(row, i * row.length));
const png = [
  new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
  chunk("IHDR", header),
  chunk("IDAT", new Uint8Array(deflateSync(raw, { level: 9 }))),
  chunk("IEND", new Uint8Array()),
];
const file = new Uint8Array(png.reduce((size, part) => size + part.length, 0));
png.reduce((offset, part) => (file.set(part, offset), offset + part.length), 0);
await Deno.writeFile("logo.png", file);
