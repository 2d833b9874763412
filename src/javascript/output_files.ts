/**
 * Files a JavaScript run leaves in `./output/` come back to the model: images as images, text as text,
 * anything else as a binary resource; what is over the inline attachment caps is kept as a resource.
 *
 * @module
 */
import { extname, join } from "node:path";
import type { Attachment } from "../result.ts";

/** The directory, inside a run's working directory, whose files are returned. */
export const OUTPUT_DIR = "output";

/** How many files, and how many bytes in all, are read from `./output/`; the rest are named as skipped. */
export const OUTPUT_FILE_LIMITS = { count: 100, totalBytes: 64 * 1024 * 1024 } as const;

const TYPES: Readonly<Record<string, string>> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".txt": "text/plain",
  ".csv": "text/csv",
  ".json": "application/json",
  ".md": "text/markdown",
  ".html": "text/html",
  ".xml": "application/xml",
  ".pdf": "application/pdf",
};
const TEXT = /^text\/|json$|xml$/;

/**
 * Reads the regular files directly in `<workDir>/output/`, sorted by name, up to {@linkcode OUTPUT_FILE_LIMITS}.
 * Security: symlinks and anything but regular files are skipped, so a run cannot make the server (which
 * may read anything) return a file the run itself may not read.
 */
export async function collectOutputFiles(
  workDir: string,
): Promise<{ files: Attachment[]; skipped: string[] }> {
  const dir = join(workDir, OUTPUT_DIR);
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  } catch {
    return { files: [], skipped: [] };
  }
  const files: Attachment[] = [];
  const skipped: string[] = [];
  let total = 0;
  for (const name of names.sort()) {
    const path = join(dir, name);
    const info = await Deno.lstat(path).catch(() => null);
    if (
      !info?.isFile || files.length >= OUTPUT_FILE_LIMITS.count ||
      total + info.size > OUTPUT_FILE_LIMITS.totalBytes
    ) {
      skipped.push(name);
      continue;
    }
    total += info.size;
    const mimeType = TYPES[extname(name).toLowerCase()] ?? "application/octet-stream";
    const bytes = await Deno.readFile(path);
    files.push(
      TEXT.test(mimeType) || mimeType === "image/svg+xml"
        ? { name, mimeType, text: new TextDecoder().decode(bytes) }
        : { name, mimeType, data: encodeBase64(bytes) },
    );
  }
  return { files, skipped };
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
