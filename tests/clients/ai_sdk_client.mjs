/**
 * The Vercel AI SDK's MCP client (`@ai-sdk/mcp`), run by Node as its users run it. Installed by
 * tests/clients/install.sh into .cache/clients-node; run as `node ai_sdk_client.mjs '<json config>'` with
 * the config of tests/clients/_common.py. Prints one JSON report on the last line of stdout.
 *
 * It has no cancel to test: aborting a call rejects it in the client, but the AI SDK sends no
 * notifications/cancelled, so the server never hears of it.
 */
import { createRequire } from "node:module";
import process from "node:process";
import { pathToFileURL } from "node:url";

// The same calls as _common.py.
const PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==";
const CALLS = {
  js_ok: ["run_javascript", { code: "console.log(6 * 7)" }],
  py_ok: ["run_python", { code: "sum(range(10))" }],
  js_error: ["run_javascript", { code: 'throw new Error("boom")' }],
  py_error: ["run_python", { code: "1 / 0" }],
  js_image: ["run_javascript", {
    code:
      `Deno.writeFileSync("output/x.png", Uint8Array.from(atob("${PNG_BASE64}"), (c) => c.charCodeAt(0)))`,
  }],
  py_image: ["run_python", {
    code:
      `import base64\nclass Dot:\n    def _repr_png_(self): return base64.b64decode('${PNG_BASE64}')\nDot()`,
  }],
};

// The packages live in .cache/clients-node, outside this file's node_modules lookup path.
const require = createRequire(new URL("../../.cache/clients-node/package.json", import.meta.url));
const load = (specifier) => import(pathToFileURL(require.resolve(specifier)).href);
const { createMCPClient } = await load("@ai-sdk/mcp");
const { Experimental_StdioMCPTransport } = await load("@ai-sdk/mcp/mcp-stdio");

/** A tool result as the report shows it. */
function summarize(result) {
  const content = result.content ?? [];
  return {
    isError: result.isError === true,
    structured: result.structuredContent ?? null,
    text: content.filter((item) => item.type === "text").map((item) => item.text).join("\n"),
    images: content.filter((item) => item.type === "image")
      .map((item) => ({ mimeType: item.mimeType, bytes: Buffer.from(item.data, "base64").length })),
  };
}

const config = JSON.parse(process.argv[2]);
const errors = [];
const client = await createMCPClient({
  transport: config.transport === "stdio"
    ? new Experimental_StdioMCPTransport({ command: config.command, args: config.args, env: config.env })
    : { type: "http", url: config.url },
  onUncaughtError: (error) => errors.push(String(error)),
});
let report;
try {
  const tools = await client.listTools();
  const calls = {};
  for (const [name, [tool, args]] of Object.entries(CALLS)) {
    calls[name] = summarize(await client.callTool({ name: tool, arguments: args }));
  }
  // What an agent does with the tools: the AI SDK's own tool wrappers, as generateText() would call them.
  const aiTools = await client.tools();
  const viaTool = await aiTools.run_python.execute({ code: "6 * 7" }, { toolCallId: "1", messages: [] });
  report = {
    client: `@ai-sdk/mcp ${require("@ai-sdk/mcp/package.json").version}`,
    tools: tools.tools.map((tool) => tool.name),
    calls,
    viaTool: summarize(viaTool),
  };
} finally {
  await client.close();
}
console.log(JSON.stringify({ ...report, errors }));
