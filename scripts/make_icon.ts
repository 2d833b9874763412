/**
 * Writes src/icon.ts: logo.png scaled down to 64×64 as a data: URI, the icon the server announces (server info
 * and the resources it links to). Small enough to send with every session's `initialize`.
 * Run after make_logo.ts: deno run --allow-read=logo.png --allow-write=src/icon.ts scripts/make_icon.ts &&
 * deno fmt src/icon.ts
 */
import { inflateSync } from "node:zlib";
import { encodePng } from "./png.ts";

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

const icon = encodePng(SIZE, rows);
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
