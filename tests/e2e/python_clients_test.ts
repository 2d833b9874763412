/**
 * Works unchanged under the Python MCP clients people use: the official SDK 1.x and 2.x and fastmcp's Client,
 * installed from PyPI at pinned versions (tests/clients/install.sh), each over stdio and Streamable HTTP:
 * list the tools, call both, an error, an image, a cancel, and an exit without errors.
 */
import {
  assertCalls,
  assertCancelled,
  cleanReport,
  type ClientConfig,
  clientsInstalled,
  runClient,
  startHttpServer,
  stdioConfig,
  venvPython,
} from "../clients/harness.ts";
import assert from "node:assert/strict";

const CLIENTS = [
  {
    name: "the MCP Python SDK 1.x",
    venv: "sdk1",
    script: "tests/clients/sdk1_client.py",
    client: /^mcp 1\./,
  },
  {
    name: "the MCP Python SDK 2.x",
    venv: "sdk2",
    script: "tests/clients/sdk2_client.py",
    client: /^mcp 2\./,
  },
  { name: "fastmcp's Client", venv: "sdk2", script: "tests/clients/fastmcp_client.py", client: /^fastmcp / },
] as const;

for (const { name, venv, script, client } of CLIENTS) {
  for (const transport of ["stdio", "Streamable HTTP"] as const) {
    Deno.test(`${name} over ${transport}: tools, results, errors, images, a cancel and a clean exit`, async () => {
      await clientsInstalled();
      const http = transport === "stdio" ? null : await startHttpServer();
      try {
        const config: ClientConfig = http ? { transport: "http", url: http.url } : stdioConfig();
        const report = cleanReport(await runClient(venvPython(venv), [script], { config }));
        assert.match(report.client, client);
        assertCalls(report);
        assertCancelled(report);
      } finally {
        await http?.stop();
      }
    });
  }
}
