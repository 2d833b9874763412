/**
 * Streamable HTTP: the bin with --http, driven by the SDK's StreamableHTTPClientTransport.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import assert from "node:assert/strict";
import { BIN, serverEnv, toolOutput } from "../_helpers.ts";

const TOKEN = "test-token-0123456789abcdef";

/** Starts the bin over HTTP on a free port; resolves with its MCP URL once it says it listens. */
async function startHttp(env: Record<string, string>, args: string[] = []) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BIN, "--http", "--port", "0", ...args],
    env: serverEnv(env),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream());
  let text = "";
  const reader = lines.getReader();
  while (!/at (http:\S+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  lines.cancel().catch(() => {});
  const url = text.match(/at (http:\S+)/)?.[1];
  return {
    url,
    text,
    child,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
}

async function connect(url: string, token: string | null = TOKEN): Promise<Client> {
  const client = new Client({ name: "http-test", version: "0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : {},
    }),
  );
  return client;
}

const py = async (client: Client, code: string) =>
  toolOutput(
    await client.callTool({ name: "run_python", arguments: { code } }, undefined, { timeout: 120_000 }),
  );

Deno.test("Streamable HTTP: sessions, authentication, expiry and limits", async (t) => {
  const server = await startHttp({
    CODE_RUNNER_HTTP_TOKEN: TOKEN,
    CODE_RUNNER_HTTP_SESSION_IDLE_MS: "3000",
    CODE_RUNNER_HTTP_MAX_SESSIONS: "2",
  });
  assert.ok(server.url, `no URL in: ${server.text}`);
  const url = server.url as string;
  const clients: Client[] = [];
  try {
    await t.step("two sessions run at once and never see each other's state", async () => {
      const [a, b] = await Promise.all([connect(url), connect(url)]);
      clients.push(a, b);
      await Promise.all([py(a, "who = 'a'"), py(b, "who = 'b'")]);
      const [fromA, fromB] = await Promise.all([py(a, "who"), py(b, "who")]);
      assert.equal(fromA.result.result, "'a'");
      assert.equal(fromB.result.result, "'b'");
      const js = toolOutput(
        await a.callTool({ name: "run_javascript", arguments: { code: "console.log(2 + 2)" } }),
      );
      assert.equal(js.result.stdout, "4\n");
    });

    await t.step("a session over the limit is refused clearly", async () => {
      await assert.rejects(connect(url), /Too many sessions|503/);
    });

    await t.step("a request without the token gets 401", async () => {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate") ?? "", /Bearer/);
      await response.body?.cancel();
      await assert.rejects(connect(url, "wrong-token-0123456789abcdef"), /401|Unauthorized/);
    });

    await t.step("a request from another origin (DNS rebinding) is refused", async () => {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${TOKEN}`,
          origin: "http://evil.example",
        },
        body: "{}",
      });
      assert.equal(response.status, 403);
      await response.body?.cancel();
    });

    await t.step("an idle session expires and says so", async () => {
      await new Promise((resolve) => setTimeout(resolve, 6500));
      const error = await py(clients[0] as Client, "who").then(() => null, (e: Error) => e);
      assert.ok(error, "the expired session still answered");
      assert.match(error.message, /expired/);
      const fresh = await connect(url);
      clients.push(fresh);
      assert.equal((await py(fresh, "'who' in globals()")).result.result, "False");
    });
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});

Deno.test("Streamable HTTP refuses to listen beyond loopback without a token", async () => {
  const server = await startHttp({}, ["--host", "0.0.0.0"]);
  try {
    assert.equal(server.url, undefined);
    assert.equal((await server.child.status).code, 1);
    assert.match(server.text, /without a token/);
  } finally {
    await server.stop();
  }
});
