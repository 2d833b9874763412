/**
 * The team deployment on one machine: three replicas of the real bin with --http behind a real HAProxy
 * running deploy/haproxy.cfg, all on loopback. Sessions stick to their replica; when one replica is killed,
 * its sessions get a clear error at once and work again after re-initializing, and the others never notice.
 * Needs Debian's `haproxy` (.ci/run installs it; `apt-get install haproxy` elsewhere).
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import assert from "node:assert/strict";
import { childPids, eventually, isAlive } from "../_helpers.ts";
import { connect, eventuallyAsync, type HttpTestServer, py, scrape, startHttp, TOKEN } from "../_http.ts";

const CONFIG = new URL("../../deploy/haproxy.cfg", import.meta.url).pathname;
const SESSIONS = 30;
/** How long a session of a killed replica may take to learn that its session is gone. */
const DEAD_SESSION_ANSWER_MS = 3000;

function findHaproxy(): string | null {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    try {
      if (dir && Deno.statSync(`${dir}/haproxy`).isFile) return `${dir}/haproxy`;
    } catch {
      // Not here.
    }
  }
  return null;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  }));
  return results;
}

const haproxy = findHaproxy();

Deno.test({
  name:
    "HAProxy + 3 replicas: sessions stick; a killed replica's sessions get 404 and recover, others keep state",
  fn: async (t) => {
    if (!haproxy) throw new Error("this test runs Debian's haproxy: apt-get install haproxy (.ci/run does)");
    const replicas: HttpTestServer[] = [];
    let proxy: Deno.ChildProcess | undefined;
    let proxyLog = "";
    const clients = new Map<number, Client>();
    try {
      replicas.push(
        ...await Promise.all(
          [1, 2, 3].map(() =>
            startHttp({
              CODE_RUNNER_HTTP_TOKEN: TOKEN,
              CODE_RUNNER_HTTP_MAX_SESSIONS: "24",
              // Every session here keeps Python state; none may be reclaimed.
              CODE_RUNNER_MAX_PYTHON_PROCESSES: "16",
            })
          ),
        ),
      );
      for (const replica of replicas) assert.ok(replica.url, `a replica did not start: ${replica.text}`);
      const port = freePort();
      proxy = new Deno.Command(haproxy as string, {
        args: ["-db", "-f", CONFIG],
        env: {
          HAPROXY_BIND: `127.0.0.1:${port}`,
          ...Object.fromEntries(replicas.map((r, i) => [`REPLICA${i + 1}`, `127.0.0.1:${r.port}`])),
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      for (const stream of [proxy.stdout, proxy.stderr]) {
        stream.pipeThrough(new TextDecoderStream()).pipeTo(
          new WritableStream({ write: (chunk) => void (proxyLog += chunk) }),
        ).catch(() => {});
      }
      const front = `http://127.0.0.1:${port}/mcp`;
      assert.ok(
        await eventuallyAsync(
          async () => (await fetch(`http://127.0.0.1:${port}/haproxy/healthz`)).ok,
          10_000,
        ),
        `HAProxy did not start:\n${proxyLog}`,
      );

      const sessionsOn = async () =>
        await Promise.all(
          replicas.map(async (r) =>
            (await scrape(r.url as string)).get("code_runner_http_sessions_open") ?? 0
          ),
        );
      const ids = Array.from({ length: SESSIONS }, (_, i) => i);

      await t.step(`${SESSIONS} sessions over the proxy each keep their own Python state`, async () => {
        await pool(ids, 6, async (i) => {
          const client = await connect(front);
          clients.set(i, client);
          await py(client, `value = "session-${i}"`);
        });
        const answers = await pool(
          ids,
          6,
          async (i) => (await py(clients.get(i) as Client, "value")).result.result,
        );
        assert.deepEqual(answers, ids.map((i) => `'session-${i}'`));
        const counts = await sessionsOn();
        assert.equal(counts.reduce((a, b) => a + b, 0), SESSIONS);
        assert.ok(counts.every((count) => count > 0), `sessions not spread over the replicas: ${counts}`);
      });

      let failed: Array<{ i: number }> = [];
      await t.step(
        "kill -9 of one replica: its sessions get 404 at once, the others keep working",
        async () => {
          const counts = await sessionsOn();
          const lost = Math.max(...counts);
          const victim = replicas[counts.indexOf(lost)] as HttpTestServer;
          const children = childPids(victim.child.pid);
          assert.ok(children.length > 0, "the replica has no child processes");
          victim.child.kill("SIGKILL");
          await victim.child.status;

          const outcomes = await Promise.all(ids.map(async (i) => {
            try {
              const { result } = await py(clients.get(i) as Client, "value", DEAD_SESSION_ANSWER_MS);
              return { i, value: result.result, error: null };
            } catch (error) {
              return { i, value: null, error: (error as Error).message };
            }
          }));
          for (const o of outcomes) {
            if (o.error === null) assert.equal(o.value, `'session-${o.i}'`, "a session lost its state");
            else assert.match(o.error, /404|Session not found/, `session ${o.i}: unclear error ${o.error}`);
          }
          failed = outcomes.filter((o) => o.error !== null);
          assert.equal(failed.length, lost, `expected the ${lost} sessions of the killed replica to fail`);
          assert.ok(
            await eventually(() => children.every((pid) => !isAlive(pid)), 3000),
            "a process of the killed replica is still alive",
          );
        },
      );

      await t.step("the sessions of the killed replica work again after re-initializing", async () => {
        assert.ok(failed.length > 0);
        await pool(failed, 4, async ({ i }) => {
          await clients.get(i)?.close().catch(() => {});
          const client = await connect(front);
          clients.set(i, client);
          await py(client, `value = "session-${i}-again"`);
        });
        const answers = await pool(
          ids,
          6,
          async (i) => (await py(clients.get(i) as Client, "value")).result.result,
        );
        const lostIds = new Set(failed.map((o) => o.i));
        assert.deepEqual(answers, ids.map((i) => `'session-${i}${lostIds.has(i) ? "-again" : ""}'`));
      });

      await t.step(
        "SIGTERM drains a replica: its run in flight finishes, new sessions go elsewhere",
        async () => {
          const client = clients.get(failed[0]?.i ?? 0) as Client;
          const slow = py(client, "import time; time.sleep(3); value");
          const live = replicas.filter((r) => r.child.pid && isAlive(r.child.pid));
          let target: HttpTestServer | undefined;
          assert.ok(
            await eventuallyAsync(async () => {
              for (const replica of live) {
                const inFlight = (await scrape(replica.url as string)).get(
                  "code_runner_http_requests_in_flight",
                );
                if (inFlight) target = replica;
              }
              return target !== undefined;
            }),
            "the slow run never showed up on a replica",
          );
          (target as HttpTestServer).child.kill("SIGTERM");
          const fresh = await pool([0, 1, 2], 3, async () => {
            const newcomer = await connect(front);
            try {
              return (await py(newcomer, "6 * 7")).result.result;
            } finally {
              await newcomer.close().catch(() => {});
            }
          });
          assert.deepEqual(fresh, ["42", "42", "42"]);
          assert.match((await slow).result.result ?? "", /^'session-\d+-again'$/);
          assert.equal((await (target as HttpTestServer).child.status).code, 0);
        },
      );
    } finally {
      await Promise.all([...clients.values()].map((client) => client.close().catch(() => {})));
      if (proxy) {
        try {
          proxy.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        await proxy.status;
      }
      await Promise.all(replicas.map((replica) => replica.stop()));
    }
  },
});
