/**
 * The host's install planner decides what to install in which order; here it drives a recording installer
 * (the real Pyodide path is tested end to end in tests/e2e/run_python_test.ts).
 */
import assert from "node:assert/strict";
import { type Installer, installFor } from "../../src/python/host.ts";

type Plan = [string[], string[], string[]];

function recorder(plans: Plan[], failing: { load?: string[]; pip?: string[]; missing?: string } = {}) {
  const calls: string[] = [];
  const installer: Installer = {
    plan: (packages) => {
      calls.push(`plan ${packages.join(",")}`);
      return plans.shift() ?? [[], [], []];
    },
    loadPackages: (names) => {
      calls.push(`load ${names.join(",")}`);
      return Promise.resolve(names.filter((name) => failing.load?.includes(name)).map((n) => `no ${n}`));
    },
    pipInstall: (requirements) => {
      calls.push(`pip ${requirements.join(",")}`);
      const bad = requirements.filter((r) => failing.pip?.includes(r));
      return Promise.resolve(bad.length ? `cannot install ${bad.join(",")}` : "");
    },
    checkImports: () => {
      calls.push("check");
      return failing.missing ?? "";
    },
    installing: () => calls.push("installing"),
    progress: () => {},
  };
  return { installer, calls };
}

Deno.test("code without imports or packages plans nothing", async () => {
  const { installer, calls } = recorder([]);
  assert.deepEqual(await installFor("print(1)", [], installer), { installed: [], problems: [] });
  assert.deepEqual(calls, []);
});

Deno.test("distribution packages load first, then declared ones through micropip, then guesses", async () => {
  const { installer, calls } = recorder([[["numpy"], ["humanize"], ["slugify"]], [[], [], ["slugify"]]]);
  const outcome = await installFor("import numpy, humanize, slugify", ["humanize"], installer);
  assert.deepEqual(outcome, { installed: ["numpy", "humanize", "slugify"], problems: [] });
  assert.deepEqual(calls, [
    "plan humanize",
    "installing",
    "load numpy",
    "installing",
    "installing",
    "load micropip",
    "pip humanize",
    "plan ",
    "installing",
    "installing",
    "load micropip",
    "pip slugify",
    "check",
  ]);
});

Deno.test("a failing declared package stops before any guess and is reported", async () => {
  const { installer, calls } = recorder([[[], ["nope"], ["guess"]]], { pip: ["nope"] });
  const outcome = await installFor("import guess", ["nope"], installer);
  assert.deepEqual(outcome.problems, ["cannot install nope"]);
  assert.ok(!calls.includes("pip guess"));
});

Deno.test("imports still missing after installing are a problem", async () => {
  const { installer } = recorder([[[], [], ["thing"]]], { missing: "No module named 'thing'" });
  const outcome = await installFor("import thing", [], installer);
  assert.deepEqual(outcome, { installed: ["thing"], problems: ["No module named 'thing'"] });
});

Deno.test("without a new install, the first plan's guesses are used as they are", async () => {
  const { installer, calls } = recorder([[[], [], ["six"]]]);
  await installFor("import six", [], installer);
  assert.equal(calls.filter((call) => call.startsWith("plan")).length, 1);
});
