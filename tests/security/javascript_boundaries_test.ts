/**
 * run_javascript's boundaries under special profiles (broad file access, -A, remote imports); the attack
 * suite (attack_suite_test.ts) covers the common ones under the three standard profiles.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DOWNLOAD_SETTINGS } from "../../src/child_env.ts";
import { connectionCanary, denoDir, eventually, startServer, type TestServer } from "../_helpers.ts";

const SECRET_FILE_TEXT = `canary-file-${crypto.randomUUID()}`;
const SECRET_ENV_TEXT = `canary-env-${crypto.randomUUID()}`;

/** A secret file outside every grant. */
async function plantSecretFile(): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "code-runner-canary-" });
  const file = join(dir, "secret.txt");
  await Deno.writeTextFile(file, SECRET_FILE_TEXT);
  return { dir, file };
}

function assertNoCanary(server: TestServer, output: { text: string }): void {
  for (const canary of [SECRET_FILE_TEXT, SECRET_ENV_TEXT]) {
    assert.ok(!output.text.includes(canary), `canary leaked into a result: ${output.text.slice(0, 300)}`);
    assert.ok(!server.stderr().includes(canary), "canary leaked into the server's log");
  }
}

Deno.test("run_javascript with broad file access still cannot reach other runs, the cache or secrets", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "code-runner-tmp-" });
  const server = await startServer({
    TMPDIR: tmp,
    DENO_PERMISSION_ARGS: "--allow-read --allow-write --allow-env",
    CANARY_SECRET: SECRET_ENV_TEXT,
    NODE_OPTIONS: "--max-old-space-size=4000",
    DENO_AUTH_TOKENS: `${SECRET_ENV_TEXT}@registry.example`,
  });
  try {
    await t.step("only download settings reach the run: no secrets, no DENO_*/NODE_* switches", async () => {
      const output = await server.js(`console.log(JSON.stringify(Object.keys(Deno.env.toObject())));`);
      assertNoCanary(server, output);
      const names = JSON.parse(output.result.stdout) as string[];
      const allowed = new Set([
        ...DOWNLOAD_SETTINGS,
        ...["PATH", "HOME", "DENO_DIR", "TMPDIR", "NO_COLOR", "DENO_NO_UPDATE_CHECK"],
      ]);
      assert.ok(names.includes("TMPDIR"), "the run sees its environment");
      assert.deepEqual(names.filter((name) => !allowed.has(name)), []);
    });

    await t.step(
      "the operator's unscoped grants are honoured outside the server's private directories",
      async () => {
        const { dir, file } = await plantSecretFile();
        try {
          const { result } = await server.js(
            `console.log(Deno.readTextFileSync(${JSON.stringify(file)}).length); Deno.writeTextFileSync(${
              JSON.stringify(join(dir, "written.txt"))
            }, "ok");`,
          );
          assert.equal(result.stdout, `${SECRET_FILE_TEXT.length}\n`, result.stderr);
          assert.equal(await Deno.readTextFile(join(dir, "written.txt")), "ok");
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    );

    await t.step("a run cannot see another run's working directory", async () => {
      const slow = server.js(
        `Deno.writeTextFileSync("mine.txt", "private"); console.log(Deno.cwd()); await new Promise((r) => setTimeout(r, 3000));`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const probe = await server.js(
        `const parent = Deno.cwd().replace(/\\/[^/]+$/, ""); console.log([...Deno.readDirSync(parent)].map((e) => e.name));`,
      );
      assert.equal(probe.isError, true, probe.text);
      assert.match(probe.result.stderr, /NotCapable|Requires read access/);
      const first = await slow;
      assert.equal(first.result.status, "ok");
    });

    await t.step(
      "a run cannot read other runs' code from Deno's emit cache, and leaves none there",
      async () => {
        const first = await server.js(
          `Deno.writeTextFileSync("lib.ts", "export const secret: string = 'emit-${SECRET_ENV_TEXT.length}';");\n` +
            `console.log((await import("./lib.ts")).secret, Deno.cwd());`,
        );
        assert.equal(first.result.status, "ok", first.text);
        const workDir = first.result.stdout.trim().split(" ")[1] as string;
        const emitted = join(denoDir(), "gen", "file", workDir);
        assert.ok(
          await eventually(() => {
            try {
              Deno.statSync(emitted);
              return false;
            } catch {
              return true;
            }
          }),
          `the run's emitted code stayed at ${emitted}`,
        );
        const peek = await server.js(
          `console.log([...Deno.readDirSync(Deno.env.get("DENO_DIR") + "/gen")].length)`,
        );
        assert.equal(peek.isError, true, `a run listed the emit cache: ${peek.text}`);
      },
    );

    await t.step("a run's code, string literals included, is not kept in V8's code cache", async () => {
      const secret = `code-cache-${crypto.randomUUID()}`;
      const { result } = await server.js(`const key = "${secret}";\nconsole.log(key.length);`);
      assert.equal(result.stdout, `${secret.length}\n`);
      for (const entry of Deno.readDirSync(denoDir())) {
        if (!entry.isFile || !entry.name.startsWith("v8_code_cache")) continue;
        // Byte for byte (the secret is ASCII): the database and its write-ahead log.
        const text = new TextDecoder("latin1").decode(await Deno.readFile(join(denoDir(), entry.name)));
        assert.equal(text.includes(secret), false, `the run's code is in ${entry.name}`);
      }
    });

    await t.step("a run cannot write into Deno's shared module cache", async () => {
      const { result, isError } = await server.js(
        `const dir = Deno.env.get("DENO_DIR"); Deno.writeTextFileSync(dir + "/poison.txt", "x");`,
      );
      assert.equal(isError, true);
      assert.match(result.stderr, /NotCapable|Requires write access/);
    });

    await t.step("config files planted in the work dir do not redirect imports or registries", async () => {
      const registry = connectionCanary();
      try {
        const { result } = await server.js(
          `
          Deno.writeTextFileSync(".npmrc", "registry=http://127.0.0.1:${registry.port}/\\n");
          Deno.writeTextFileSync("package.json", JSON.stringify({ dependencies: { "is-number": "7.0.0" } }));
          Deno.writeTextFileSync("deno.json", JSON.stringify({ imports: { "evil": "http://127.0.0.1:${registry.port}/e.js" } }));
          const m = await import("npm:is-number@7.0.0");
          console.log(m.default(1));
          try { await import("evil"); console.log("remapped"); } catch { console.log("not remapped"); }
        `,
          { timeoutMs: 20000 },
        );
        assert.equal(result.stdout, "true\nnot remapped\n", result.stderr);
        assert.equal(registry.connections(), 0, "the planted registry was contacted");
      } finally {
        registry.close();
      }
    });

    await t.step("config files planted above the runs' directories do not affect later runs", async () => {
      const registry = connectionCanary();
      try {
        const plant = await server.js(`
          const above = Deno.cwd().split("/").slice(0, -2).join("/");
          Deno.writeTextFileSync(above + "/deno.json", JSON.stringify({ imports: { "evil": "data:text/javascript,console.log('remapped')" } }));
          Deno.writeTextFileSync(above + "/package.json", JSON.stringify({ imports: { "#evil": "./x.js" } }));
          Deno.writeTextFileSync(above + "/.npmrc", "registry=http://127.0.0.1:${registry.port}/\\n");
          console.log(above);
        `);
        assert.equal(plant.result.stdout, `${tmp}\n`, plant.result.stderr);
        const victim = await server.js(
          `
          try { await import("evil"); } catch { console.log("not remapped"); }
          try { await import("npm:code-runner-mcp-missing-canary-pkg@1.0.0"); } catch { console.log("not found"); }
        `,
          { timeoutMs: 20000 },
        );
        assert.equal(victim.result.stdout, "not remapped\nnot found\n", victim.result.stderr);
        assert.equal(registry.connections(), 0, "the planted .npmrc redirected a download");
      } finally {
        registry.close();
      }
    });
    await server.assertAlive();
  } finally {
    await server.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("run_javascript: remote and jsr: imports follow --allow-import, variables follow --allow-env=NAME", async () => {
  // One loopback server plays a module host and, through JSR_URL (a download setting), a JSR registry.
  const jsrModule = "export const greet = (name: string): string => `hello ${name}`;\n";
  const jsrSha = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(jsrModule))),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const moduleServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/@test/greet/meta.json") {
      return Response.json({ scope: "test", name: "greet", latest: "1.0.0", versions: { "1.0.0": {} } });
    }
    if (path === "/@test/greet/1.0.0_meta.json") {
      return Response.json({
        manifest: { "/mod.ts": { size: jsrModule.length, checksum: `sha256-${jsrSha}` } },
        exports: { ".": "./mod.ts" },
      });
    }
    if (path === "/@test/greet/1.0.0/mod.ts") {
      return new Response(jsrModule, { headers: { "content-type": "application/typescript" } });
    }
    return new Response("export const answer: number = 42;", {
      headers: { "content-type": "application/typescript" },
    });
  });
  const port = moduleServer.addr.port;
  const server = await startServer({
    DENO_PERMISSION_ARGS: `--allow-import=127.0.0.1:${port} --allow-env=VISIBLE_VAR`,
    VISIBLE_VAR: "visible-value",
    CANARY_SECRET: SECRET_ENV_TEXT,
    JSR_URL: `http://127.0.0.1:${port}/`,
  });
  try {
    const allowed = await server.js(
      `import { answer } from "http://127.0.0.1:${port}/mod.ts"; console.log(answer);`,
    );
    assert.equal(allowed.result.stdout, "42\n", allowed.result.stderr);
    const jsr = await server.js(`import { greet } from "jsr:@test/greet@1.0.0"; console.log(greet("jsr"));`);
    assert.equal(jsr.result.stdout, "hello jsr\n", jsr.result.stderr);
    const { tools } = await server.client.listTools();
    assert.match(tools[0]?.description ?? "", new RegExp(`import: 127.0.0.1:${port}`));
    const other = await server.js(`await import("http://127.0.0.1:1/mod.ts");`);
    assert.equal(other.isError, true);
    assert.match(other.result.stderr, /Requires import access/);
    const env = await server.js(`console.log(Deno.env.get("VISIBLE_VAR"), Deno.env.toObject !== undefined);`);
    assert.equal(env.result.stdout, "visible-value true\n", env.result.stderr);
    const secret = await server.js(`console.log(Deno.env.get("CANARY_SECRET"));`);
    assert.equal(secret.isError, true);
    assert.ok(!secret.text.includes(SECRET_ENV_TEXT));
  } finally {
    await server.close();
    await moduleServer.shutdown();
  }
});

Deno.test("run_javascript with -A runs, and still cannot write the shared module cache", async () => {
  const server = await startServer({ DENO_PERMISSION_ARGS: "-A" });
  try {
    const ok = await server.js(`Deno.writeTextFileSync("f", "1"); console.log(Deno.readTextFileSync("f"));`);
    assert.equal(ok.result.stdout, "1\n", ok.result.stderr);
    const poison = await server.js(`Deno.writeTextFileSync(Deno.env.get("DENO_DIR") + "/poison.txt", "x");`);
    assert.equal(poison.isError, true);
    assert.match(poison.result.stderr, /NotCapable|Requires write access/);
    const { tools } = await server.client.listTools();
    assert.equal(tools[0]?.annotations?.openWorldHint, true);
  } finally {
    await server.close();
  }
});

Deno.test("an operator's deny inside an allowed directory that sorts before the runs root still lets runs start", async () => {
  // Deno 2.9 refused runs their own main.ts for `--allow-read=/tmp/a… --deny-read=…` (see sandbox_command.ts).
  const allowed = await Deno.realPath(await Deno.makeTempDir({ prefix: "a-code-runner-allowed-" }));
  await Deno.mkdir(join(allowed, "secret"));
  await Deno.writeTextFile(join(allowed, "open.txt"), "open");
  await Deno.writeTextFile(join(allowed, "secret", "s.txt"), "secret");
  const server = await startServer({
    DENO_PERMISSION_ARGS: `--allow-read=${allowed} --deny-read=${join(allowed, "secret")}`,
  });
  try {
    const open = await server.js(
      `console.log(Deno.readTextFileSync(${JSON.stringify(join(allowed, "open.txt"))}))`,
    );
    assert.equal(open.result.stdout, "open\n", open.text);
    const secret = await server.js(
      `console.log(Deno.readTextFileSync(${JSON.stringify(join(allowed, "secret", "s.txt"))}))`,
    );
    assert.equal(secret.isError, true, secret.text);
    assert.doesNotMatch(secret.text, /\bsecret\n/);
  } finally {
    await server.close();
    await Deno.remove(allowed, { recursive: true });
  }
});
