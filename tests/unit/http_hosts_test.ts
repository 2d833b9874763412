import assert from "node:assert/strict";
import { hostAllowed, type HostPolicy, originAllowed } from "../../src/http.ts";

const loopback: HostPolicy = { port: 8787, allowed: null, token: false };
const withToken: HostPolicy = { port: 8787, allowed: null, token: true };
const listed: HostPolicy = {
  port: 8787,
  allowed: ["mcp.example.com", "proxy.internal:8080", "[fd00::1]"],
  token: true,
};

Deno.test("hostAllowed() accepts loopback names on the server's port, and other names only by token or list", async (t) => {
  const table: Array<[string | null, HostPolicy, boolean]> = [
    // Loopback names with the server's own port always pass.
    ["127.0.0.1:8787", loopback, true],
    ["localhost:8787", loopback, true],
    ["LOCALHOST:8787", loopback, true],
    ["[::1]:8787", loopback, true],
    ["127.1.2.3:8787", loopback, true],
    ["localhost.:8787", loopback, true],
    // …but not with another port (another service on this machine), nor a non-loopback name (DNS rebinding).
    ["localhost:8788", loopback, false],
    ["localhost", loopback, false],
    ["build-box:8787", loopback, false],
    ["evil.example:8787", loopback, false],
    ["127.0.0.1.evil.example:8787", loopback, false],
    ["localhost:8787@evil.example", loopback, false],
    [null, loopback, false],
    ["", loopback, false],
    // With a token and no list: any name (a proxy's, a load balancer's, the machine's).
    ["build-box:8787", withToken, true],
    ["code-runner.example.com", withToken, true],
    ["10.0.0.7:30000", withToken, true],
    [null, withToken, false],
    // A list: only its names; an entry without a port matches any port, a Host without one matches 80/443.
    ["mcp.example.com", listed, true],
    ["mcp.example.com:8443", listed, true],
    ["MCP.Example.Com.", listed, true],
    ["proxy.internal:8080", listed, true],
    ["proxy.internal:8081", listed, false],
    ["proxy.internal", listed, false],
    ["[fd00::1]:8787", listed, true],
    ["build-box:8787", listed, false],
    ["sub.mcp.example.com", listed, false],
    ["localhost:8787", listed, true],
  ];
  for (const [host, policy, expected] of table) {
    await t.step(`${JSON.stringify(host)} with ${JSON.stringify(policy)} → ${expected}`, () => {
      assert.equal(hostAllowed(host, policy), expected);
    });
  }
});

Deno.test("originAllowed() accepts the server's own pages, loopback pages and listed ones", async (t) => {
  const table: Array<[string, string | null, HostPolicy, boolean]> = [
    ["http://localhost:8787", "127.0.0.1:8787", loopback, true],
    ["http://evil.example", "127.0.0.1:8787", loopback, false],
    // A rebinding page is same-origin with its own Host, which a token-less loopback server refuses.
    ["http://evil.example:8787", "evil.example:8787", loopback, false],
    // With a token: the server's own name (same origin) passes, other sites' pages do not.
    ["https://code-runner.example.com", "code-runner.example.com", withToken, true],
    ["http://evil.example", "127.0.0.1:8787", withToken, false],
    ["http://evil.example", "build-box:8787", withToken, false],
    ["https://mcp.example.com", "proxy.internal:8080", listed, true],
    ["http://proxy.internal:8080", "proxy.internal:8080", listed, true],
    ["http://other.example", "mcp.example.com", listed, false],
    ["null", "127.0.0.1:8787", loopback, false],
    ["not a url", "127.0.0.1:8787", withToken, false],
  ];
  for (const [origin, host, policy, expected] of table) {
    await t.step(`Origin ${origin} Host ${host} → ${expected}`, () => {
      assert.equal(originAllowed(origin, host, policy), expected);
    });
  }
});
