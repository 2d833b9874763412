/**
 * SHA-256 as lowercase hex, the form lock files, indexes and manifests use.
 *
 * @module
 */

/** sha256 of `data` (text is encoded as UTF-8), as 64 hex digits. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const hash = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The first 64 primes: SHA-256's constants are the fractional parts of their square and cube roots. */
const PRIMES = Array.from({ length: 312 }, (_, n) => n).filter((n) =>
  n > 1 && Array.from({ length: n - 2 }, (_, i) => i + 2).every((d) => n % d !== 0)
).slice(0, 64);
const fraction = (x: number) => ((x - Math.floor(x)) * 0x100000000) >>> 0;
const INITIAL_STATE = PRIMES.slice(0, 8).map((p) => fraction(Math.sqrt(p)));
const ROUND_CONSTANTS = PRIMES.map((p) => fraction(Math.cbrt(p)));

/**
 * sha256 of a short text, at once. For the few places that need a hash synchronously (a web-storage key
 * when a process is spawned); `node:crypto` would cost the server's start-up 15 ms to load.
 *
 * @example
 * ```ts
 * const text = "https://x.sandbox.invalid";
 * if (sha256HexSync(text) !== await sha256Hex(text)) throw new Error("both give the same hash");
 * ```
 */
export function sha256HexSync(text: string): string {
  const bytes = new TextEncoder().encode(text);
  const length = Math.ceil((bytes.length + 9) / 64) * 64;
  const padded = new Uint8Array(length);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(length - 8, Math.floor(bytes.length / 0x20000000));
  view.setUint32(length - 4, bytes.length * 8);
  const state = Uint32Array.from(INITIAL_STATE);
  const words = new Uint32Array(64);
  const rotate = (x: number, n: number) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < length; block += 64) {
    for (let i = 0; i < 16; i++) words[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 64; i++) {
      const w15 = words[i - 15] as number, w2 = words[i - 2] as number;
      const s0 = rotate(w15, 7) ^ rotate(w15, 18) ^ (w15 >>> 3);
      const s1 = rotate(w2, 17) ^ rotate(w2, 19) ^ (w2 >>> 10);
      words[i] = (words[i - 16] as number) + s0 + (words[i - 7] as number) + s1;
    }
    let [a, b, c, d, e, f, g, h] = state as unknown as number[] as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    for (let i = 0; i < 64; i++) {
      const t1 = h + (rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)) + ((e & f) ^ (~e & g)) +
        (ROUND_CONSTANTS[i] as number) + (words[i] as number);
      const t2 = (rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      [h, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    [a, b, c, d, e, f, g, h].forEach((value, i) => state[i] = (state[i] as number) + value);
  }
  return Array.from(state, (word) => word.toString(16).padStart(8, "0")).join("");
}
