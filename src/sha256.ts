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
