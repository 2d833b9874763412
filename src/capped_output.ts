/**
 * Collects a byte stream up to a limit, keeping its head and its tail, and drains the middle, so a flood of
 * output never sits in memory and the end of a stream (the error, the final number) is never lost.
 *
 * @module
 */

/** Text read from a stream, cut at a limit. */
export interface CappedText {
  /** The stream as UTF-8 text; when cut, its head and tail with a marker between them. */
  readonly text: string;
  /** Whether bytes past the limit were left out. */
  readonly truncated: boolean;
  /** How many bytes the stream carried in all. */
  readonly totalBytes: number;
}

/** Receives every chunk of a stream as it is read, e.g. to keep the whole stream on disk. */
export type ChunkListener = (chunk: Uint8Array) => void;

/**
 * Reads `stream` to its end, keeping at most `limitBytes` bytes: the first 3/4 and the last 1/4 of the
 * limit, with a marker between them saying how much was left out.
 *
 * @example
 * ```ts
 * const out = await readCapped(new Blob(["a".repeat(100) + "THE END"]).stream(), 40);
 * if (!out.truncated || out.totalBytes !== 107 || !out.text.endsWith("THE END")) throw new Error("tail kept");
 * ```
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  limitBytes: number,
  listener?: ChunkListener,
): Promise<CappedText> {
  const buffer = new HeadTailBuffer(limitBytes);
  for await (const chunk of stream) {
    buffer.push(chunk);
    listener?.(chunk);
  }
  return buffer.finish();
}

/**
 * Keeps the first 3/4 and the last 1/4 of `limitBytes` of everything pushed into it.
 *
 * The Python host (`src/python/host.ts`, which runs serialized in the sandbox and cannot import) does the
 * same in its capture functions; keep the two in step.
 */
export class HeadTailBuffer {
  readonly #head: Uint8Array;
  readonly #tail: Uint8Array;
  #headBytes = 0;
  /** Bytes written into the tail ring so far (its write position is this modulo its size). */
  #tailWritten = 0;
  #total = 0;

  constructor(readonly limitBytes: number) {
    const headSize = Math.floor(limitBytes * 3 / 4);
    this.#head = new Uint8Array(headSize);
    this.#tail = new Uint8Array(limitBytes - headSize);
  }

  /** How many bytes were pushed in all. */
  get totalBytes(): number {
    return this.#total;
  }

  /** Adds a chunk: to the head while it has room, the rest to the tail ring (its oldest bytes drop out). */
  push(chunk: Uint8Array): void {
    this.#total += chunk.byteLength;
    let rest = chunk;
    if (this.#headBytes < this.#head.length) {
      const take = Math.min(rest.byteLength, this.#head.length - this.#headBytes);
      this.#head.set(rest.subarray(0, take), this.#headBytes);
      this.#headBytes += take;
      rest = rest.subarray(take);
    }
    const size = this.#tail.length;
    if (rest.byteLength === 0 || size === 0) return;
    // Only the last `size` bytes of the chunk can survive in the ring.
    if (rest.byteLength > size) {
      this.#tailWritten += rest.byteLength - size;
      rest = rest.subarray(rest.byteLength - size);
    }
    const at = this.#tailWritten % size;
    const first = Math.min(rest.byteLength, size - at);
    this.#tail.set(rest.subarray(0, first), at);
    this.#tail.set(rest.subarray(first), 0);
    this.#tailWritten += rest.byteLength;
  }

  /** The text kept: everything when it fit, else head, marker and tail, never splitting a character. */
  finish(): CappedText {
    const decoder = new TextDecoder();
    const size = this.#tail.length;
    const tailBytes = Math.min(this.#tailWritten, size);
    const start = this.#tailWritten % size;
    const tail = this.#tailWritten <= size
      ? this.#tail.subarray(0, tailBytes)
      : concat(this.#tail.subarray(start), this.#tail.subarray(0, start));
    if (this.#total <= this.limitBytes) {
      return {
        text: decoder.decode(concat(this.#head.subarray(0, this.#headBytes), tail)),
        truncated: false,
        totalBytes: this.#total,
      };
    }
    const headEnd = utf8End(this.#head, this.#headBytes);
    const tailStart = utf8Start(tail);
    const left = this.#total - headEnd - (tail.byteLength - tailStart);
    const text = decoder.decode(this.#head.subarray(0, headEnd)) +
      truncationMarker(left, this.limitBytes) + decoder.decode(tail.subarray(tailStart));
    return { text, truncated: true, totalBytes: this.#total };
  }
}

/** The line that stands for the bytes left out of a cut stream. */
export function truncationMarker(leftOut: number, limitBytes: number): string {
  return `\n[… output truncated: ${leftOut} bytes left out here (limit ${limitBytes} bytes: the first 3/4 ` +
    "and the last 1/4 are shown) …]\n";
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.byteLength === 0) return a;
  if (a.byteLength === 0) return b;
  const joined = new Uint8Array(a.byteLength + b.byteLength);
  joined.set(a);
  joined.set(b, a.byteLength);
  return joined;
}

/** Steps back from `end` so a cut there does not split a multi-byte UTF-8 character. */
function utf8End(bytes: Uint8Array, end: number): number {
  let start = end;
  // Continuation bytes look like 10xxxxxx; at most three of them follow a lead byte.
  while (start > 0 && end - start < 4 && ((bytes[start - 1] as number) & 0xc0) === 0x80) start--;
  if (start === 0) return end;
  const lead = bytes[start - 1] as number;
  const width = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return end - (start - 1) >= width ? end : start - 1;
}

/** Skips the continuation bytes a cut left at the start of `bytes`, so the text starts on a character. */
function utf8Start(bytes: Uint8Array): number {
  let start = 0;
  while (start < bytes.byteLength && start < 3 && ((bytes[start] as number) & 0xc0) === 0x80) start++;
  return start;
}
