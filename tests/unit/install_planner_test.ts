/**
 * The host's install planner decides what to install in which order, and what may stop the code: here it drives
 * a recording installer (the real Pyodide path is tested end to end in tests/e2e/python_packages_test.ts).
 */
import assert from "node:assert/strict";
import { type Installer, installFor, type InstallPlan } from "../../src/python/host.ts";

/** What the recording installer should fail at. */
interface Failing {
  /** Distribution packages the loader cannot load (micropip included). */
  load?: string[];
  /** Requirements micropip cannot install. */
  pip?: string[];
  /** Modules still missing after installing. */
  missing?: string[];
  /** micropip cannot be had from the package indexes either. */
  indexes?: boolean;
}

function plan(fields: Partial<InstallPlan>): InstallPlan {
  return { distribution: [], declared: [], guessed: [], ...fields };
}

function recorder(plans: InstallPlan[], failing: Failing = {}) {
  const calls: string[] = [];
  let ready = false;
  const installer: Installer = {
    plan: (packages) => {
      calls.push(`plan ${packages.join(",")}`);
      return plans.shift() ?? plan({});
    },
    loadPackages: (names) => {
      calls.push(`load ${names.join(",")}`);
      const failed: Record<string, string> = {};
      for (const name of names) {
        if (failing.load?.includes(name)) failed[name] = `no ${name} in the distribution`;
      }
      return Promise.resolve(failed);
    },
    micropipReady: () => ready,
    micropipFromIndexes: () => {
      calls.push("micropip from indexes");
      return Promise.resolve(failing.indexes ? "the index is down" : "");
    },
    configureMicropip: (indexFirst) => {
      calls.push(`configure micropip${indexFirst ? " index first" : ""}`);
      ready = true;
    },
    pipInstall: (requirements, indexFirst) => {
      calls.push(`pip ${requirements.join(",")}${indexFirst ? " index first" : ""}`);
      const bad = requirements.filter((r) => failing.pip?.includes(r));
      return Promise.resolve(bad.length ? `cannot install ${bad.join(",")}` : "");
    },
    missingImports: () => {
      calls.push("check");
      return failing.missing ?? [];
    },
    installing: () => calls.push("installing"),
    progress: () => {},
  };
  return { installer, calls };
}

Deno.test("installFor() plans nothing for code without imports or packages", async () => {
  const { installer, calls } = recorder([]);
  assert.deepEqual(await installFor("print(1)", [], installer), {
    installed: [],
    problems: [],
    notInstalled: [],
  });
  assert.deepEqual(calls, []);
});

Deno.test("installFor() announces nothing when the imports are all there", async () => {
  const { installer, calls } = recorder([plan({})]);
  await installFor("import json", [], installer);
  assert.deepEqual(calls, ["plan "]);
});

Deno.test("installFor() loads distribution packages, then declared ones, then guesses", async () => {
  const { installer, calls } = recorder([
    plan({
      distribution: [["numpy", "numpy"]],
      declared: ["humanize"],
      guessed: [["slugify", "python-slugify"]],
    }),
    plan({ guessed: [["slugify", "python-slugify"]] }),
  ]);
  const outcome = await installFor("import numpy, humanize, slugify", ["humanize"], installer);
  assert.deepEqual(outcome, {
    installed: ["numpy", "humanize", "python-slugify"],
    problems: [],
    notInstalled: [],
  });
  assert.deepEqual(calls, [
    "plan humanize",
    "installing",
    "load numpy",
    "load micropip",
    "configure micropip",
    "pip humanize",
    "plan ",
    "pip python-slugify",
    "check",
  ]);
});

Deno.test("installFor() stops at a declared package that fails, before any guess", async (t) => {
  await t.step("the packages argument", async () => {
    const { installer, calls } = recorder([plan({ declared: ["nope"], guessed: [["guess", "guess"]] })], {
      pip: ["nope"],
    });
    const outcome = await installFor("import guess", ["nope"], installer);
    assert.deepEqual(outcome.problems, ["Could not install nope: cannot install nope"]);
    assert.ok(!calls.includes("pip guess"));
  });
  await t.step("PEP 723 metadata, when micropip cannot be had at all", async () => {
    const { installer } = recorder([plan({ declared: ["attrs"] })], { load: ["micropip"], indexes: true });
    const outcome = await installFor("# /// script\n# dependencies = ['attrs']\n# ///", [], installer);
    assert.equal(outcome.problems.length, 1);
    assert.match(
      outcome.problems[0] ?? "",
      /^Could not install attrs: micropip .*no micropip.*index is down/,
    );
  });
});

Deno.test("installFor() never lets an import that cannot be installed stop the code", async (t) => {
  await t.step("a guess that fails is noted, with the project tried", async () => {
    const { installer } = recorder([plan({ guessed: [["jwt", "PyJWT"]] })], { pip: ["PyJWT"] });
    const outcome = await installFor("import jwt", [], installer);
    assert.deepEqual(outcome.problems, []);
    assert.deepEqual(outcome.notInstalled, [
      { module: "jwt", error: "tried the PyPI project PyJWT: cannot install PyJWT" },
    ]);
  });
  await t.step("one failing guess does not keep the others out", async () => {
    const { installer, calls } = recorder(
      [plan({ guessed: [["ujson", "ujson"], ["humanize", "humanize"]] })],
      { pip: ["ujson"] },
    );
    const outcome = await installFor("import ujson, humanize", [], installer);
    assert.deepEqual(outcome.installed, ["humanize"]);
    assert.deepEqual(outcome.notInstalled.map((entry) => entry.module), ["ujson"]);
    assert.deepEqual(calls.filter((call) => call.startsWith("pip")), [
      "pip ujson,humanize",
      "pip ujson",
      "pip humanize",
    ]);
  });
  await t.step("a distribution package that does not load is tried on the indexes, then noted", async () => {
    const { installer, calls } = recorder([plan({ distribution: [["ujson", "ujson"]] })], {
      load: ["ujson"],
      pip: ["ujson"],
    });
    const outcome = await installFor("try:\n    import ujson\nexcept ImportError:\n    pass", [], installer);
    assert.deepEqual(outcome.problems, []);
    assert.ok(calls.includes("pip ujson index first"));
    assert.equal(outcome.notInstalled[0]?.module, "ujson");
    assert.match(
      outcome.notInstalled[0]?.error ?? "",
      /no ujson in the distribution.*indexes: cannot install/,
    );
  });
  await t.step("an installed guess that does not provide the module is noted", async () => {
    const { installer } = recorder([plan({ guessed: [["thing", "thing"]] })], { missing: ["thing"] });
    const outcome = await installFor("import thing", [], installer);
    assert.deepEqual(outcome, {
      installed: ["thing"],
      problems: [],
      notInstalled: [{
        module: "thing",
        error: "the PyPI project thing was installed but does not provide it",
      }],
    });
  });
  await t.step("the code's own import of micropip that cannot be had is noted", async () => {
    const { installer } = recorder([plan({ distribution: [["micropip", "micropip"]] })], {
      load: ["micropip"],
      indexes: true,
    });
    const outcome = await installFor("import micropip", [], installer);
    assert.deepEqual(outcome.problems, []);
    assert.equal(outcome.notInstalled[0]?.module, "micropip");
  });
});

Deno.test("installFor() gets micropip from the indexes when the distribution cannot be reached", async () => {
  const { installer, calls } = recorder(
    [
      plan({ distribution: [["six", "six"]], guessed: [["humanize", "humanize"]] }),
      plan({ guessed: [["humanize", "humanize"]] }),
    ],
    { load: ["micropip", "six"] },
  );
  const outcome = await installFor("import six, humanize", [], installer);
  assert.deepEqual(outcome, { installed: ["six", "humanize"], problems: [], notInstalled: [] });
  assert.deepEqual(calls, [
    "plan ",
    "installing",
    "load six",
    "load micropip",
    "micropip from indexes",
    "configure micropip index first",
    "pip six index first",
    "plan ",
    "pip humanize index first",
    "check",
  ]);
});

Deno.test("installFor() sets micropip up once: the code's `import micropip` uses the same", async () => {
  const { installer, calls } = recorder([
    plan({ distribution: [["micropip", "micropip"]], guessed: [["slugify", "python-slugify"]] }),
  ]);
  const outcome = await installFor("import micropip\nfrom slugify import slugify", [], installer);
  assert.deepEqual(outcome.installed, ["python-slugify"]);
  assert.deepEqual(calls.filter((call) => /micropip/.test(call)), ["load micropip", "configure micropip"]);
});

Deno.test("installFor() uses the first plan's guesses when nothing new was installed", async () => {
  const { installer, calls } = recorder([plan({ guessed: [["six", "six"]] })]);
  await installFor("import six", [], installer);
  assert.equal(calls.filter((call) => call.startsWith("plan")).length, 1);
});
