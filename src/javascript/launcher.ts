/**
 * The fixed main module of every JavaScript run.
 *
 * Security: Deno loads the main module's static imports without permission checks, so user code must
 * never be the main module. The launcher is; it loads the user's `main.ts` with a dynamic `import()`,
 * and every import that file makes is then checked against the run's permissions.
 *
 * @module
 */

/** Name of the user's code file inside the run's working directory. */
export const USER_MODULE = "main.ts";

/**
 * Body of the launcher. It runs in the child, serialized with `toString()`, so it may use only globals.
 */
async function launch(userModule: string): Promise<void> {
  // The server starts launchers before there is code; closing stdin says the code is in place.
  for await (const _ of Deno.stdin.readable) {
    // Nothing is sent; the loop ends at EOF.
  }
  // Once the event loop is empty, exit at once (keeping Deno.exitCode) instead of tearing V8 down.
  globalThis.addEventListener("unload", () => Deno.exit());
  const url = new URL("file:///");
  url.pathname = `${Deno.cwd()}/${userModule}`;
  try {
    await import(url.href);
  } catch (error) {
    // Printed here so the report shows the user's error, not a frame of this launcher.
    const text = error instanceof Error ? (error.stack ?? String(error)) : `Uncaught ${String(error)}`;
    console.error(`error: Uncaught ${text}`);
    Deno.exit(1);
  }
}

/** The launcher as a `data:` URL, ready to be the main module of `deno run`. */
export const LAUNCHER_URL = `data:application/javascript,${
  encodeURIComponent(`(${launch.toString()})(${JSON.stringify(USER_MODULE)});`)
}`;
