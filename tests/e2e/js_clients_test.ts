/**
 * Works unchanged under a JavaScript MCP client other than our SDK's: the Vercel AI SDK's (`@ai-sdk/mcp`),
 * installed from npm at a pinned version (tests/clients/install.sh) and run by Node, over stdio and
 * Streamable HTTP. No cancel: the AI SDK aborts a call only on its side (it sends no notifications/cancelled).
 */
import assert from "node:assert/strict";
import {
  assertCalls,
  cleanReport,
  type ClientConfig,
  clientsInstalled,
  runClient,
  startHttpServer,
  stdioConfig,
} from "../clients/harness.ts";

const SCRIPT = "tests/clients/ai_sdk_client.mjs";

// Over HTTP the AI SDK first probes for the 2026 protocol with `server/discover` (refused with 400 before a
// session exists, as the spec allows), then falls back to initialize; and it opens its GET stream before it
// has a session id. It reports both through onUncaughtError and carries on; anything else is a failure.
const HTTP_PROBE_NOISE = [
  /HTTP 400\).*the first request of a session must be initialize/,
  /GET SSE failed: 400/,
];

for (const transport of ["stdio", "Streamable HTTP"] as const) {
  Deno.test(`the AI SDK's MCP client over ${transport}: tools, results, errors, images and a clean exit`, async () => {
    await clientsInstalled();
    const http = transport === "stdio" ? null : await startHttpServer();
    try {
      const config: ClientConfig = http ? { transport: "http", url: http.url } : stdioConfig();
      const report = cleanReport(await runClient("node", [SCRIPT], { config }));
      assert.match(report.client, /^@ai-sdk\/mcp 2\./);
      assertCalls(report);
      assert.equal(report.viaTool?.structured?.result, "42");
      const errors = (report.errors ?? []).filter((error) =>
        !(http && HTTP_PROBE_NOISE.some((noise) => noise.test(error)))
      );
      assert.deepEqual(errors, []);
    } finally {
      await http?.stop();
    }
  });
}
