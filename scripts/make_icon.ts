/**
 * Writes src/icon.ts: logo.png scaled down to 64×64 as a data: URI, the icon the server announces (server info
 * and the resources it links to). Small enough to send with every session's `initialize`.
 * Run after make_logo.ts: deno run --allow-read=logo.png --allow-write=src/icon.ts scripts/make_icon.ts &&
 * deno fmt src/icon.ts
 */
import { deflateSync, inflateSync } from "node:zlib";

const SIZE = 64;
const png = await Deno.readFile(new URL("../logo.png", import.meta.url));
const view = new DataView(png.buffer);
let width = 0;
const idat: Uint8Array[] = [];
for (let at = 8; at < png.length;) {
  const length = view.getUint32(at);
  const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
  const data = png.subarray(at + 8, at + 8 + length);
  if (type === "IHDR") {
    width = view.getUint32(at + 8);
    // make_logo.ts writes 8-bit RGBA, no interlace.
    if (data[8] !== 8 || data[9] !== 6 || data[12] !== 0) throw new Error("logo.png is not 8-bit RGBA");
  }
  if (type === "IDAT") idat.push(data);
  at += 12 + length;
}
const compressed = new Uint8Array(idat.reduce((size, part) => size + part.length, 0));
idat.reduce((offset, part) => (compressed.set(part, offset), offset + part.length), 0);
const raw = new Uint8Array(inflateSync(compressed));
const stride = 1 + width * 4;
const pixel = (x: number, y: number, i: number) => {
  // make_logo.ts writes every row unfiltered (filter byte 0).
  if (raw[y * stride] !== 0) throw new Error("logo.png has filtered rows; extend make_icon.ts");
  return raw[y * stride + 1 + x * 4 + i] as number;
};
const scale = width / SIZE;
const rows = new Uint8Array(SIZE * (1 + SIZE * 4));
for (let y = 0; y < SIZE; y++) {
  for (let x = 0; x < SIZE; x++) {
    // Averaged with alpha weights, so transparent corners do not darken the edge.
    let r = 0, g = 0, b = 0, a = 0;
    for (let sy = 0; sy < scale; sy++) {
      for (let sx = 0; sx < scale; sx++) {
        const px = x * scale + sx, py = y * scale + sy, alpha = pixel(px, py, 3);
        r += pixel(px, py, 0) * alpha;
        g += pixel(px, py, 1) * alpha;
        b += pixel(px, py, 2) * alpha;
        a += alpha;
      }
    }
    const out = y * (1 + SIZE * 4) + 1 + x * 4;
    rows.set(a ? [Math.round(r / a), Math.round(g / a), Math.round(b / a)] : [0, 0, 0], out);
    rows[out + 3] = Math.round(a / (scale * scale));
  }
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
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const header = new Uint8Array(13);
new DataView(header.buffer).setUint32(0, SIZE);
new DataView(header.buffer).setUint32(4, SIZE);
header.set([8, 6, 0, 0, 0], 8);
const parts = [
  new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
  chunk("IHDR", header),
  chunk("IDAT", new Uint8Array(deflateSync(rows, { level: 9 }))),
  chunk("IEND", new Uint8Array()),
];
const icon = new Uint8Array(parts.reduce((size, part) => size + part.length, 0));
parts.reduce((offset, part) => (icon.set(part, offset), offset + part.length), 0);
let binary = "";
for (const byte of icon) binary += String.fromCharCode(byte);
const source = `/**
 * The server's icon: logo.png at 64×64 (written by scripts/make_icon.ts; do not edit).
 *
 * @module
 */

/** The icons announced in the server's info and on the resources it links to. */
export const ICONS: ReadonlyArray<{ src: string; mimeType: string; sizes: string[] }> = [{
  src: "data:image/png;base64,${btoa(binary)}",
  mimeType: "image/png",
  sizes: ["${SIZE}x${SIZE}"],
}];
`;
await Deno.writeTextFile(new URL("../src/icon.ts", import.meta.url), source);
