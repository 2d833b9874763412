/**
 * Works unchanged under third-party MCP clients: the MCP Inspector's CLI and mcporter, fetched with npx
 * (pinned versions) and pointed at the bin over stdio, as their users would.
 */
import assert from "node:assert/strict";
import { BIN, serverEnv } from "../_helpers.ts";

async function npx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command("npx", {
    args: ["-y", ...args],
    env: { ...serverEnv(), PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "" },
    stdin: "null",
  }).output();
  return { code, stdout: new TextDecoder().decode(stdout), stderr: new TextDecoder().decode(stderr) };
}

const serverCommand = [Deno.execPath(), "run", "-A", BIN];

Deno.test("the MCP Inspector CLI lists and calls the tools", async () => {
  const list = await npx([
    "@modelcontextprotocol/inspector@2.12.0",
    "--cli",
    ...serverCommand,
    "--method",
    "tools/list",
  ]);
  assert.equal(list.code, 0, list.stderr);
  const tools = (JSON.parse(list.stdout) as { tools: Array<{ name: string }> }).tools.map((tool) =>
    tool.name
  );
  assert.deepEqual(tools.sort(), ["run_javascript", "run_python"]);
  const call = await npx([
    "@modelcontextprotocol/inspector@2.12.0",
    "--cli",
    ...serverCommand,
    "--method",
    "tools/call",
    "--tool-name",
    "run_javascript",
    "--tool-arg",
    "code=console.log(6 * 7)",
  ]);
  assert.equal(call.code, 0, call.stderr);
  assert.equal(
    (JSON.parse(call.stdout) as { structuredContent: { stdout: string } }).structuredContent.stdout,
    "42\n",
  );
});

Deno.test("mcporter calls run_python", async () => {
  const call = await npx([
    "mcporter@0.12.3",
    "call",
    "--stdio",
    serverCommand.join(" "),
    "run_python",
    "code=sum(range(10))",
    "--output",
    "json",
  ]);
  assert.equal(call.code, 0, call.stderr);
  assert.equal((JSON.parse(call.stdout) as { result: string }).result, "45");
});
