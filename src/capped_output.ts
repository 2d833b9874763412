/**
 * Collects a byte stream up to a limit and drains the rest, so a flood of output never sits in memory.
 *
 * @module
 */

/** Text read from a stream, cut at a limit. */
export interface CappedText {
  /** The first bytes as UTF-8 text, with a marker appended when cut. */
  readonly text: string;
  /** Whether bytes past the limit were dropped. */
  readonly truncated: boolean;
  /** How many bytes the stream carried in all. */
  readonly totalBytes: number;
}

/**
 * Reads `stream` to its end, keeping at most `limitBytes` bytes.
 *
 * @example
 * ```ts
 * const out = await readCapped(new Blob(["a".repeat(100)]).stream(), 10);
 * if (!out.truncated || out.totalBytes !== 100) throw new Error("only 10 bytes are kept");
 * ```
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  limitBytes: number,
): Promise<CappedText> {
  const kept = new Uint8Array(limitBytes);
  let keptBytes = 0;
  let totalBytes = 0;
  for await (const chunk of stream) {
    totalBytes += chunk.byteLength;
    if (keptBytes < limitBytes) {
      const take = Math.min(chunk.byteLength, limitBytes - keptBytes);
      kept.set(chunk.subarray(0, take), keptBytes);
      keptBytes += take;
    }
  }
  const truncated = totalBytes > keptBytes;
  let text = new TextDecoder().decode(kept.subarray(0, utf8Boundary(kept, keptBytes)));
  if (truncated) {
    text += `\n[… output truncated: ${
      totalBytes - keptBytes
    } more bytes not shown (limit ${limitBytes} bytes)]`;
  }
  return { text, truncated, totalBytes };
}

/** Steps back from `end` so the cut does not split a multi-byte UTF-8 character. */
function utf8Boundary(bytes: Uint8Array, end: number): number {
  let start = end;
  // Continuation bytes look like 10xxxxxx; at most three of them follow a lead byte.
  while (start > 0 && end - start < 4 && ((bytes[start - 1] as number) & 0xc0) === 0x80) start--;
  if (start === 0) return end;
  const lead = bytes[start - 1] as number;
  const width = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return end - (start - 1) >= width ? end : start - 1;
}
