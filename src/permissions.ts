/**
 * Parses the operator's `DENO_PERMISSION_ARGS` into Deno permission flags.
 *
 * Security: this is the boundary between the operator's intent and what a run may do. It accepts only
 * permission flags; anything else (`--inspect`, `--v8-flags`, `--config`, a script path, …) would let
 * the operator's string change how Deno loads or runs code, so it is refused with the token named.
 *
 * @module
 */

/** The Deno permission kinds a flag can grant or deny. */
export const PERMISSION_KINDS = [
  "read",
  "write",
  "net",
  "env",
  "sys",
  "run",
  "ffi",
  "import",
] as const;

/** One Deno permission kind, such as `read` or `net`. */
export type PermissionKind = typeof PERMISSION_KINDS[number];

/** What the operator granted for one kind: nothing, everything, or a list of scopes. */
export type Grant = "none" | "all" | readonly string[];

/** The parsed permissions: canonical flags for `deno run` and a summary per kind. */
export interface Permissions {
  /** Canonical long-form flags, e.g. `["--allow-read=/data", "--allow-net"]`. */
  readonly flags: readonly string[];
  /** What each kind grants once `--deny-*` flags are ignored (they only narrow). */
  readonly grants: Readonly<Record<PermissionKind, Grant>>;
  /** Kinds that are denied outright or in part by `--deny-*` flags. */
  readonly denies: Readonly<Partial<Record<PermissionKind, Grant>>>;
}

/** Thrown when `DENO_PERMISSION_ARGS` holds anything but permission flags. */
export class PermissionArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PermissionArgsError";
  }
}

const SHORT_FLAGS: Readonly<Record<string, string>> = {
  "-A": "--allow-all",
  "-R": "--allow-read",
  "-W": "--allow-write",
  "-N": "--allow-net",
  "-E": "--allow-env",
  "-S": "--allow-sys",
  "-I": "--allow-import",
};

const FLAG_PATTERN = new RegExp(
  `^--(allow|deny)-(${PERMISSION_KINDS.join("|")})(?:=(.*))?$`,
  "s",
);

/**
 * Splits a string into words the way a POSIX shell would for plain words, single quotes, double
 * quotes and backslash escapes. No expansion of any kind happens.
 *
 * @example
 * ```ts
 * splitShellWords(`--allow-read="/my data" -N`); // ["--allow-read=/my data", "-N"]
 * ```
 */
export function splitShellWords(input: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < input.length; i++) {
    const ch = input[i] as string;
    if (quote === "'") {
      if (ch === "'") quote = null;
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === "\\" && i + 1 < input.length && '"\\$`\n'.includes(input[i + 1] as string)) {
        word += input[++i];
      } else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\") {
      if (i + 1 >= input.length) throw new PermissionArgsError("trailing backslash");
      word += input[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new PermissionArgsError(`unterminated ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}

/**
 * Parses the operator's permission string.
 *
 * Accepts `-A`/`--allow-all`, the short forms `-R -W -N -E -S -I` without values, and every
 * `--allow-<kind>` / `--deny-<kind>` flag with or without `=list`. Throws
 * {@linkcode PermissionArgsError} naming the first token that is anything else.
 *
 * @example
 * ```ts
 * parsePermissionArgs("--allow-net=example.com --allow-read='/srv/data'").flags;
 * // ["--allow-net=example.com", "--allow-read=/srv/data"]
 * ```
 */
export function parsePermissionArgs(input: string): Permissions {
  let words: string[];
  try {
    words = splitShellWords(input);
  } catch (error) {
    throw new PermissionArgsError(
      `DENO_PERMISSION_ARGS could not be split into words: ${(error as Error).message}`,
    );
  }
  const flags: string[] = [];
  const grants: Record<PermissionKind, Grant> = Object.fromEntries(
    PERMISSION_KINDS.map((kind) => [kind, "none"]),
  ) as Record<PermissionKind, Grant>;
  const denies: Partial<Record<PermissionKind, Grant>> = {};

  for (const word of words) {
    const token = SHORT_FLAGS[word] ?? word;
    if (token === "--allow-all") {
      flags.push(token);
      for (const kind of PERMISSION_KINDS) grants[kind] = "all";
      continue;
    }
    const match = FLAG_PATTERN.exec(token);
    if (!match) {
      throw new PermissionArgsError(
        `DENO_PERMISSION_ARGS may hold only Deno permission flags (--allow-*, --deny-*, -A); ` +
          `refusing ${JSON.stringify(word)}`,
      );
    }
    const [, mode, kind, list] = match as unknown as [string, "allow" | "deny", PermissionKind, string?];
    let scopes: string[] | null = null;
    if (list !== undefined) {
      scopes = list.split(",");
      if (scopes.some((scope) => scope.trim() === "")) {
        throw new PermissionArgsError(
          `DENO_PERMISSION_ARGS has an empty value in ${JSON.stringify(word)}; ` +
            `write --${mode}-${kind} for all, or list the values`,
        );
      }
    }
    const target = mode === "allow" ? grants : denies;
    target[kind] = mergeGrant(target[kind] ?? "none", scopes);
    flags.push(scopes ? `--${mode}-${kind}=${scopes.join(",")}` : `--${mode}-${kind}`);
  }
  return { flags, grants, denies };
}

function mergeGrant(current: Grant, scopes: string[] | null): Grant {
  if (current === "all" || scopes === null) return "all";
  return [...(current === "none" ? [] : current), ...scopes];
}

/** A one-line human summary, e.g. `read: /data; net: all` or `none`. */
export function describePermissions(permissions: Permissions): string {
  const parts: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    const grant = permissions.grants[kind];
    if (grant === "none") continue;
    const denied = permissions.denies[kind];
    const deniedText = denied && denied !== "none"
      ? ` (except ${denied === "all" ? "all" : denied.join(", ")})`
      : "";
    parts.push(`${kind}: ${grant === "all" ? "all" : grant.join(", ")}${deniedText}`);
  }
  return parts.length ? parts.join("; ") : "none";
}
