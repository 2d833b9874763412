/**
 * Output kept on disk when a result had to leave part of it out: a stream cut at the output limit, or an
 * attachment over the inline limits. Each is a file in the server's private directory, readable (whole or a
 * byte range) by the session that produced it only, for a limited time, under a disk budget shared by all
 * sessions (the oldest go first).
 *
 * @module
 */
import { join } from "node:path";

/** How much may be kept, and for how long. */
export interface KeepLimits {
  /** What one run may keep, all its streams and attachments together; 0 keeps nothing. */
  perRunBytes: number;
  /** What all sessions may keep together; the oldest outputs are removed to make room. */
  totalBytes: number;
  /** How long an output stays readable. */
  keepMs: number;
}

/** One kept output, as a session sees it. */
export interface KeptOutput {
  readonly id: string;
  /** `code-runner://outputs/<id>/<name>`; add `?offset=N&length=N` to read a byte range. */
  readonly uri: string;
  readonly name: string;
  readonly mimeType: string;
  /** What it is, e.g. "stdout of a run_javascript call". */
  readonly description: string;
  /** Bytes kept. */
  readonly bytes: number;
  /** Bytes the stream or file had; more than `bytes` when the per-run limit stopped the keeping. */
  readonly totalBytes: number;
  /** When it was kept (ms since the epoch). */
  readonly createdAt: number;
  /** When it will be removed (ms since the epoch). */
  readonly expiresAt: number;
}

/** The URI prefix of kept outputs. */
export const OUTPUT_URI_PREFIX = "code-runner://outputs/";

/** A byte range of a kept output, as {@linkcode KeptOutputs.read} returns it. */
export interface OutputRange {
  output: KeptOutput;
  offset: number;
  bytes: Uint8Array;
}

/** Thrown for an output that does not exist for the asking session (never kept, expired, or another's). */
export class OutputNotFound extends Error {
  constructor(uri: string) {
    super(`No kept output ${uri} in this session (it may have expired, or belong to another session).`);
    this.name = "OutputNotFound";
  }
}

interface Entry {
  output: KeptOutput;
  owner: object;
  path: string;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Every kept output of a server.
 *
 * @example
 * ```ts
 * async function example(dir: string) {
 *   const outputs = await KeptOutputs.create(dir, { perRunBytes: 1 << 20, totalBytes: 1 << 24, keepMs: 60_000 });
 *   const session = outputs.session();
 *   const writer = session.writer({
 *     name: "stdout.txt",
 *     mimeType: "text/plain",
 *     description: "stdout",
 *     maxBytes: 1 << 20,
 *   });
 *   writer.write(new TextEncoder().encode("hello"));
 *   const kept = writer.commit(5);
 *   const range = await session.read(`${kept?.uri}?offset=1&length=3`); // the bytes of "ell"
 *   await outputs.close();
 *   return range;
 * }
 * ```
 */
export class KeptOutputs {
  readonly #dir: string;
  readonly #entries = new Map<string, Entry>();
  readonly #writers = new Set<OutputWriter>();
  /** Bytes on disk: kept outputs plus what writers have written so far. */
  #used = 0;
  #closed = false;

  private constructor(dir: string, readonly limits: KeepLimits) {
    this.#dir = dir;
  }

  /** Creates the store in `dir` (made private to the server's user). */
  static async create(dir: string, limits: KeepLimits): Promise<KeptOutputs> {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    return new KeptOutputs(dir, limits);
  }

  /** Bytes kept and being written, all sessions together. */
  get usedBytes(): number {
    return this.#used;
  }

  /** A session's view: it sees, reads and removes its own outputs only. */
  session(): SessionOutputs {
    return new SessionOutputs(this, {});
  }

  /** Removes every output and the directory; later writes keep nothing. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const writer of this.#writers) writer.abort();
    for (const id of [...this.#entries.keys()]) this.#remove(id);
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** @internal Outputs of `owner`, oldest first. */
  list(owner: object): KeptOutput[] {
    return [...this.#entries.values()].filter((e) => e.owner === owner).map((e) => e.output);
  }

  /** @internal A range of an output of `owner`, from a URI with optional `?offset=&length=`. */
  async read(owner: object, uri: string, maxLength: number): Promise<OutputRange> {
    const { id, offset, length } = parseOutputUri(uri);
    const entry = this.#entries.get(id);
    // Security: an output is found only for the session that produced it; others learn nothing of it.
    if (!entry || entry.owner !== owner) throw new OutputNotFound(uri.split("?")[0] as string);
    const { output } = entry;
    if (offset > output.bytes) {
      throw new RangeError(`offset ${offset} is past the end of ${output.uri} (${output.bytes} bytes)`);
    }
    const wanted = Math.min(length ?? output.bytes - offset, output.bytes - offset);
    if (wanted > maxLength) {
      throw new RangeError(
        `${output.uri} has ${output.bytes} bytes, more than one read returns (${maxLength}); read it in ` +
          `parts: ${output.uri}?offset=${offset}&length=${Math.min(maxLength, 1024 * 1024)}`,
      );
    }
    const bytes = new Uint8Array(wanted);
    const file = await Deno.open(entry.path, { read: true }).catch(() => {
      throw new OutputNotFound(output.uri);
    });
    try {
      await file.seek(offset, Deno.SeekMode.Start);
      let at = 0;
      while (at < wanted) {
        const read = await file.read(bytes.subarray(at));
        if (read === null) break;
        at += read;
      }
      return { output, offset, bytes: bytes.subarray(0, at) };
    } finally {
      file.close();
    }
  }

  /** @internal Removes the outputs of `owner` and stops its writers. */
  dropOwner(owner: object): void {
    for (const writer of this.#writers) if (writer.owner === owner) writer.abort();
    for (const [id, entry] of this.#entries) if (entry.owner === owner) this.#remove(id);
  }

  /** @internal A writer for one output of `owner`. */
  writer(owner: object, meta: OutputMeta): OutputWriter {
    const id = crypto.randomUUID().replaceAll("-", "");
    const writer = new OutputWriter(owner, meta, {
      id,
      path: join(this.#dir, id),
      closed: () => this.#closed,
      reserve: (bytes) => this.#reserve(bytes),
      release: (bytes) => this.#used -= bytes,
      commit: (fields) => this.#commit(fields, owner, join(this.#dir, id)),
      done: (w) => this.#writers.delete(w),
    });
    this.#writers.add(writer);
    return writer;
  }

  /** Grants up to `bytes` of the budget, removing the oldest outputs when that makes room. */
  #reserve(bytes: number): number {
    const { totalBytes } = this.limits;
    while (this.#used + bytes > totalBytes && this.#entries.size > 0) {
      const oldest = this.#entries.keys().next().value as string;
      this.#remove(oldest);
    }
    const granted = Math.max(0, Math.min(bytes, totalBytes - this.#used));
    this.#used += granted;
    return granted;
  }

  #commit(fields: Omit<KeptOutput, "createdAt" | "expiresAt">, owner: object, path: string): KeptOutput {
    const createdAt = Date.now();
    const output = { ...fields, createdAt, expiresAt: createdAt + this.limits.keepMs };
    const timer = setTimeout(() => this.#remove(output.id), this.limits.keepMs);
    this.#entries.set(output.id, { output, owner, path, timer });
    return output;
  }

  #remove(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.#entries.delete(id);
    this.#used -= entry.output.bytes;
    try {
      Deno.removeSync(entry.path);
    } catch {
      // Already gone.
    }
  }
}

/** What an output is, given when writing starts. */
export interface OutputMeta {
  name: string;
  mimeType: string;
  description: string;
  /** The most this output may keep (the rest of its run's per-run budget). */
  maxBytes: number;
}

interface WriterHooks {
  id: string;
  path: string;
  closed(): boolean;
  reserve(bytes: number): number;
  release(bytes: number): void;
  commit(fields: Omit<KeptOutput, "createdAt" | "expiresAt">): KeptOutput;
  done(writer: OutputWriter): void;
}

/** Writes one output to disk as it comes; {@linkcode commit} makes it readable. */
export class OutputWriter {
  #file: Deno.FsFile | null = null;
  #written = 0;
  #finished = false;
  #maxBytes: number;

  constructor(readonly owner: object, readonly meta: OutputMeta, private readonly hooks: WriterHooks) {
    this.#maxBytes = meta.maxBytes;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#written;
  }

  /**
   * Appends what the per-output and disk budgets allow of `chunk`, synchronously (a chunk is at most a pipe
   * read or one message from a host); returns how many bytes were kept.
   */
  write(chunk: Uint8Array): number {
    if (this.#finished || this.hooks.closed()) return 0;
    const room = Math.min(chunk.byteLength, this.#maxBytes - this.#written);
    if (room <= 0) return 0;
    const granted = this.hooks.reserve(room);
    if (granted === 0) return 0;
    try {
      this.#file ??= Deno.openSync(this.hooks.path, { write: true, createNew: true, mode: 0o600 });
      let at = 0;
      while (at < granted) at += this.#file.writeSync(chunk.subarray(at, granted));
    } catch {
      // A full disk or a removed directory: keep what is written, take no more.
      this.hooks.release(granted);
      this.#maxBytes = this.#written;
      return 0;
    }
    this.#written += granted;
    return granted;
  }

  /** Makes what was written readable; null when nothing was (budget, closed store). */
  commit(totalBytes: number): KeptOutput | null {
    if (this.#finished) return null;
    this.#finished = true;
    this.hooks.done(this);
    this.#file?.close();
    if (this.#written === 0 || this.hooks.closed()) {
      this.#discard();
      return null;
    }
    const { id } = this.hooks;
    return this.hooks.commit({
      id,
      uri: `${OUTPUT_URI_PREFIX}${id}/${encodeURIComponent(this.meta.name)}`,
      name: this.meta.name,
      mimeType: this.meta.mimeType,
      description: this.meta.description,
      bytes: this.#written,
      totalBytes: Math.max(totalBytes, this.#written),
    });
  }

  /** Drops what was written. */
  abort(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.hooks.done(this);
    this.#file?.close();
    this.#discard();
  }

  #discard(): void {
    this.hooks.release(this.#written);
    this.#written = 0;
    try {
      Deno.removeSync(this.hooks.path);
    } catch {
      // Never created.
    }
  }
}

/** A session's kept outputs. */
export class SessionOutputs {
  /** Called when outputs were kept (e.g. to send `notifications/resources/list_changed`). */
  onChange: (() => void) | null = null;

  constructor(private readonly store: KeptOutputs, private readonly owner: object) {}

  /** The store's limits. */
  get limits(): KeepLimits {
    return this.store.limits;
  }

  /** This session's outputs, oldest first. */
  list(): KeptOutput[] {
    return this.store.list(this.owner);
  }

  /**
   * Reads an output by URI, whole or the range `?offset=N&length=N` (bytes); throws
   * {@linkcode OutputNotFound} for anything this session did not keep.
   */
  read(uri: string, maxLength = MAX_READ_BYTES): Promise<OutputRange> {
    return this.store.read(this.owner, uri, maxLength);
  }

  /** Starts a new output of this session. */
  writer(meta: OutputMeta): OutputWriter {
    return this.store.writer(this.owner, meta);
  }

  /** Removes this session's outputs. */
  close(): void {
    this.store.dropOwner(this.owner);
  }
}

/** The most one read returns; larger outputs are read in ranges. */
export const MAX_READ_BYTES = 8 * 1024 * 1024;

/** The id and range a kept output's URI names. */
export function parseOutputUri(uri: string): { id: string; offset: number; length: number | null } {
  if (!uri.startsWith(OUTPUT_URI_PREFIX)) throw new OutputNotFound(uri);
  const [path = "", query = ""] = uri.slice(OUTPUT_URI_PREFIX.length).split("?", 2);
  const id = path.split("/")[0] ?? "";
  const params = new URLSearchParams(query);
  const number = (name: string) => {
    const raw = params.get(name);
    if (raw === null || raw === "") return null;
    if (!/^\d+$/.test(raw)) throw new RangeError(`${name} must be a whole number of bytes, got ${raw}`);
    return Number(raw);
  };
  return { id, offset: number("offset") ?? 0, length: number("length") };
}
