/**
 * Follows one call's output as it comes: its latest lines (for a task's status) and, once a stream passes the
 * output limit, the whole stream on disk, so that what the result leaves out can still be read. At the end,
 * attachments over the inline limits are kept the same way.
 *
 * @module
 */
import type { OutputWriter, SessionOutputs } from "./outputs.ts";
import {
  type Attachment,
  ATTACHMENT_LIMIT_TEXT,
  attachmentBytes,
  capAttachments,
  type KeptOutputLink,
  type RunResult,
} from "./result.ts";

/** How much of the latest output is remembered for a status line. */
const LATEST_BYTES = 4096;

interface StreamRecord {
  total: number;
  /** The stream until it passes the limit; after that it goes to `writer`. */
  buffered: Uint8Array[];
  writer: OutputWriter | null;
  decoder: TextDecoder;
}

/**
 * One call's output.
 *
 * @example
 * ```ts
 * import type { SessionOutputs } from "./outputs.ts";
 * import type { Runner } from "./runner.ts";
 * async function example(outputs: SessionOutputs, javascript: Runner<{ code: string; timeoutMs: number }>) {
 *   const output = new CallOutput(outputs, { tool: "run_javascript", limitBytes: 65536 });
 *   const result = await javascript.run({ code: "console.log(1)", timeoutMs: 5000 }, {
 *     onOutput: (stream, chunk) => output.write(stream, chunk),
 *   });
 *   return output.keep(result); // result.keptOutputs links what was cut
 * }
 * ```
 */
export class CallOutput {
  readonly #streams = {
    stdout: { total: 0, buffered: [], writer: null, decoder: new TextDecoder() } as StreamRecord,
    stderr: { total: 0, buffered: [], writer: null, decoder: new TextDecoder() } as StreamRecord,
  };
  #latest = "";
  /** What this call may still keep on disk. */
  #budget: number;

  constructor(
    private readonly outputs: SessionOutputs | null,
    private readonly options: { tool: string; limitBytes: number },
  ) {
    this.#budget = outputs?.limits.perRunBytes ?? 0;
  }

  /** Takes a chunk of a stream (synchronously: a chunk is one pipe read or one message of a host). */
  write(stream: "stdout" | "stderr", chunk: Uint8Array): void {
    const record = this.#streams[stream];
    record.total += chunk.byteLength;
    const recent = chunk.byteLength > LATEST_BYTES ? chunk.subarray(chunk.byteLength - LATEST_BYTES) : chunk;
    this.#latest = (this.#latest + record.decoder.decode(recent, { stream: true })).slice(-LATEST_BYTES);
    if (record.writer) {
      this.#spill(record.writer, chunk);
      return;
    }
    // Copied: a pipe may reuse its buffer.
    record.buffered.push(chunk.slice());
    // The result will cut this stream: from now on it all goes to disk, starting with what came so far.
    if (record.total > this.options.limitBytes && this.outputs && this.#budget > 0) {
      record.writer = this.outputs.writer({
        name: `${stream}.txt`,
        mimeType: "text/plain; charset=utf-8",
        description: `${stream} of a ${this.options.tool} call`,
        maxBytes: this.#budget,
      });
      for (const part of record.buffered) this.#spill(record.writer, part);
    }
    if (record.writer || record.total > this.options.limitBytes) record.buffered = [];
  }

  /** The last lines written to either stream, at most `maxLines`, for a status message. */
  latestLines(maxLines = 10): string {
    const lines = this.#latest.replace(/\n$/, "").split("\n");
    return lines.slice(-maxLines).join("\n");
  }

  /**
   * Finishes: the cut streams and the attachments over the inline limits become kept outputs, linked from
   * the returned result (`keptOutputs`); what could not be kept is named in its message.
   */
  keep<R extends RunResult>(result: R): R {
    const links: KeptOutputLink[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      const { writer, total } = this.#streams[stream];
      const kept = writer?.commit(total);
      if (kept) {
        links.push({
          of: stream,
          uri: kept.uri,
          mimeType: kept.mimeType,
          bytes: kept.bytes,
          totalBytes: total,
        });
      }
    }
    const notes: string[] = [];
    if (result.attachments?.length) {
      const { kept, overflow } = capAttachments(result.attachments);
      const lost: string[] = [];
      for (const attachment of overflow) {
        const link = this.#keepAttachment(attachment);
        if (link) links.push(link);
        else lost.push(`${attachment.name ?? attachment.mimeType} (${attachmentBytes(attachment)} bytes)`);
      }
      if (kept.length) result.attachments = kept;
      else delete result.attachments;
      if (lost.length) {
        notes.push(
          `Not returned (${ATTACHMENT_LIMIT_TEXT}) and not kept (over what a run may keep on disk): ` +
            `${lost.join(", ")}.`,
        );
      }
    }
    if (links.length) {
      result.keptOutputs = links;
      this.outputs?.onChange?.();
    }
    if (notes.length) result.message = [result.message, ...notes].filter(Boolean).join(" ");
    return result;
  }

  /** Writes what the call's remaining budget allows of `chunk`: both streams share it. */
  #spill(writer: OutputWriter, chunk: Uint8Array): void {
    if (this.#budget <= 0) return;
    this.#budget -= writer.write(chunk.byteLength > this.#budget ? chunk.subarray(0, this.#budget) : chunk);
  }

  /** Drops whatever was written to disk (the call's answer will never be read). */
  discard(): void {
    for (const record of Object.values(this.#streams)) record.writer?.abort();
  }

  #keepAttachment(attachment: Attachment): KeptOutputLink | null {
    if (!this.outputs || this.#budget <= 0) return null;
    const bytes = attachment.data !== undefined
      ? Uint8Array.from(atob(attachment.data.replace(/\s+/g, "")), (c) => c.charCodeAt(0))
      : new TextEncoder().encode(attachment.text ?? "");
    // A file is kept whole or not at all: half an image is of no use.
    if (bytes.byteLength > this.#budget) return null;
    const name = attachment.name ?? `display.${attachment.mimeType.split("/")[1]?.split(/[;+]/)[0] ?? "bin"}`;
    const writer = this.outputs.writer({
      name,
      mimeType: attachment.mimeType,
      description: `${name}, returned by a ${this.options.tool} call`,
      maxBytes: bytes.byteLength,
    });
    const written = writer.write(bytes);
    if (written < bytes.byteLength) {
      writer.abort();
      return null;
    }
    this.#budget -= written;
    const kept = writer.commit(bytes.byteLength);
    return kept
      ? { of: name, uri: kept.uri, mimeType: kept.mimeType, bytes: kept.bytes, totalBytes: kept.totalBytes }
      : null;
  }
}
