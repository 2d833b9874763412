# code-runner-mcp over Streamable HTTP, for a team: see "Run it for a team" in README.md.
#
#   docker build -t code-runner-mcp .
#   docker run --read-only --tmpfs /tmp -v code-runner-cache:/deno-dir -p 8787:8787 \
#     -e CODE_RUNNER_HTTP_TOKEN="$(openssl rand -hex 32)" code-runner-mcp
#
# The root file system can be read-only: the server writes only /tmp (run directories, a tmpfs or emptyDir)
# and DENO_DIR=/deno-dir (module and package caches, the Python snapshot; a volume, filled from this image the
# first time it is mounted). Runs never get write access to either cache.
FROM denoland/deno:debian-2.9.6

WORKDIR /app
COPY deno.json deno.lock LICENSE ./
COPY bin/ bin/
COPY src/ src/

# The official image's unprivileged user `deno`, which owns DENO_DIR; numeric, so Kubernetes can check
# runAsNonRoot.
USER 1993:1993

# Prepared at build time, so a new container answers its first run_python in under a second: the
# dependencies (MCP SDK, zod, Pyodide) in DENO_DIR, then `doctor`, which runs both sandboxes once and thereby
# builds the Python memory snapshot into the package cache.
# `doctor` also exits non-zero when a package source is unreachable from the build (Pyodide's CDN behind a
# firewall); the snapshot is what matters here, so its presence is the check.
RUN deno cache bin/code_runner.ts \
  && (deno run -A bin/code_runner.ts doctor || echo "doctor reported a problem; see above") \
  && ls /deno-dir/code-runner-mcp/packages/snapshots/*.bin

EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:8787/healthz'); Deno.exit(r.ok ? 0 : 1)"]

# A token is required beyond loopback: set CODE_RUNNER_HTTP_TOKEN or CODE_RUNNER_HTTP_TOKEN_FILE.
# SIGTERM (docker stop, a rolling update) drains: runs in flight finish within CODE_RUNNER_HTTP_DRAIN_GRACE_MS.
STOPSIGNAL SIGTERM
CMD ["deno", "run", "-A", "bin/code_runner.ts", "--http", "--host", "0.0.0.0", "--port", "8787"]
