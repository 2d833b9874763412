/**
 * The resources the tools' results link to: output a result had to leave out, kept for a while. A session
 * lists and reads its own only; a read may name a byte range (`?offset=N&length=N`) to page through a long log.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import { type McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import {
  ErrorCode,
  McpError,
  type ReadResourceResult,
  type Resource,
} from "@modelcontextprotocol/sdk/types.js";
import { ICONS } from "../icon.ts";
import { type KeptOutput, OUTPUT_URI_PREFIX, OutputNotFound, type SessionOutputs } from "../outputs.ts";

/** JSON-RPC error code of a resource that does not exist (MCP). */
const RESOURCE_NOT_FOUND = -32002;

const TEXT = /^text\/|[/+](json|xml)\b/;

/** Registers the kept-output resources of one session on its server. */
export function registerOutputResources(server: McpServer, outputs: SessionOutputs): void {
  server.registerResource(
    "kept-output",
    new ResourceTemplate(`${OUTPUT_URI_PREFIX}{id}/{name}`, {
      list: () => ({ resources: outputs.list().map(listed) }),
    }),
    {
      title: "Kept output",
      description:
        "Output a run_javascript or run_python result had to leave out (a stream cut at the output " +
        "limit, a file too large to return), kept for a while. Add ?offset=N&length=N (bytes) to read a part.",
      icons: [...ICONS],
    },
    async (uri): Promise<ReadResourceResult> => {
      try {
        const { output, offset, bytes } = await outputs.read(uri.href);
        const text = TEXT.test(output.mimeType) ? decodeExactly(bytes) : null;
        const meta = { "code-runner/range": { offset, length: bytes.byteLength, totalBytes: output.bytes } };
        return {
          contents: [
            text !== null
              ? { uri: uri.href, mimeType: output.mimeType, text, _meta: meta }
              : { uri: uri.href, mimeType: output.mimeType, blob: encodeBase64(bytes), _meta: meta },
          ],
        };
      } catch (error) {
        if (error instanceof OutputNotFound) throw new McpError(RESOURCE_NOT_FOUND, error.message);
        if (error instanceof RangeError) throw new McpError(ErrorCode.InvalidParams, error.message);
        throw error;
      }
    },
  );
  outputs.onChange = () => {
    if (server.isConnected()) server.sendResourceListChanged();
  };
}

/** A kept output as `resources/list` shows it: size, and age in its description. */
function listed(output: KeptOutput): Resource {
  const minutes = (ms: number) => `${Math.max(0, Math.round(ms / 60_000))} min`;
  const now = Date.now();
  const partly = output.bytes < output.totalBytes
    ? ` (the first ${output.bytes} of ${output.totalBytes})`
    : "";
  return {
    uri: output.uri,
    name: output.name,
    title: output.description,
    mimeType: output.mimeType,
    size: output.bytes,
    description: `${output.description}: ${output.bytes} bytes${partly}, kept ${
      minutes(now - output.createdAt)
    } ago, removed in ${minutes(output.expiresAt - now)}. Read a part with ?offset=N&length=N (bytes).`,
    annotations: { lastModified: new Date(output.createdAt).toISOString() },
    icons: [...ICONS],
  };
}

/** The bytes as text when they are valid UTF-8 (a range may cut a character: then null, sent as a blob). */
function decodeExactly(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
