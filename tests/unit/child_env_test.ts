import assert from "node:assert/strict";
import { childEnv } from "../../src/child_env.ts";

const server = {
  PATH: "/usr/bin",
  HOME: "/home/op",
  DENO_CERT: "/etc/ca.pem",
  HTTPS_PROXY: "http://proxy:3128",
  NPM_CONFIG_REGISTRY: "https://npm.mirror/",
  OPENAI_API_KEY: "sk-secret",
  DENO_DIR: "/somewhere/else",
  DENO_V8_FLAGS: "--allow-natives-syntax",
  NODE_OPTIONS: "--require /tmp/evil.js",
  DENO_AUTH_TOKENS: "token@host",
  AWS_REGION: "eu-west-1",
  AWS_SECRET_ACCESS_KEY: "aws-secret",
  MY_VAR: "mine",
};

Deno.test("childEnv() passes only download settings, PATH and HOME", () => {
  assert.deepEqual(childEnv(server, { denoDir: "/cache/deno", workDir: "/t/run" }), {
    PATH: "/usr/bin",
    HOME: "/home/op",
    DENO_CERT: "/etc/ca.pem",
    HTTPS_PROXY: "http://proxy:3128",
    NPM_CONFIG_REGISTRY: "https://npm.mirror/",
    DENO_DIR: "/cache/deno",
    TMPDIR: "/t/run",
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
  });
});

Deno.test("childEnv() adds the variables the operator named, with Deno's trailing wildcard", () => {
  const env = childEnv(server, { denoDir: "/c", workDir: "/w", passThrough: ["MY_VAR", "AWS_*", "UNSET"] });
  assert.equal(env.MY_VAR, "mine");
  assert.equal(env.AWS_REGION, "eu-west-1");
  assert.equal(env.AWS_SECRET_ACCESS_KEY, "aws-secret");
  assert.equal("UNSET" in env, false);
  assert.equal("OPENAI_API_KEY" in env, false);
});
