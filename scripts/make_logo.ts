/**
 * Draws logo.png: a terminal prompt on a rounded square, with a JavaScript-yellow and a Python-blue dot.
 * Run: deno run --allow-write=logo.png scripts/make_logo.ts
 */
import { encodePng } from "./png.ts";

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

const raw = new Uint8Array(rows.length * (rows[0] as Uint8Array).length);
rows.forEach((row, i) => raw.set(row, i * row.length));
await Deno.writeFile("logo.png", encodePng(SIZE, raw));
