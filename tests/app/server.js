#!/usr/bin/env node
"use strict";

// CLI wrapper around lib/server.js. Prints exactly one JSON line to stdout
// once listening; everything else goes to stderr. Exit codes: 0 after
// SIGTERM/SIGINT, 1 on a runtime failure (e.g. port in use, redis
// unreachable), 2 on a usage error.

const { startServer } = require("./lib/server");

const USAGE = `usage: node server.js [options]

  --port N                   listen port on 127.0.0.1 (default 0 = ephemeral)
  --admin-username U         admin-ui basic auth username (default admin)
  --admin-password P         admin-ui basic auth password (default changeit)
  --no-auth                  admin-ui auth: false
  --admin-namespace NAME     admin-ui namespaceName (default /admin)
  --server-id ID             admin-ui serverId and the reporter's server_id
                             (default: admin-ui's, the hostname; the reporter
                             then leaves server_id out)
  --namespaces JSON          JSON array of extra static namespaces
                             (default ["/chat","/notifications"]; "/" always exists)
  --cleanup-empty-children   socket.io cleanupEmptyChildNamespaces: true
  --ping-interval MS         engine.io pingInterval
  --ping-timeout MS          engine.io pingTimeout
  --redis URL                use @socket.io/redis-adapter with this redis URL
  --tls-cert PATH            serve HTTPS with this PEM certificate (with --tls-key)
  --tls-key PATH             the certificate's PEM private key
  --no-admin-ui              do not instrument admin-ui (report only through
                             the reporter options below, if any)

Reporter (clients/node), on when --report-file or --push-url is given; its
server_id is --server-id (left out without it):
  --report-file PATH         write the report file atomically every interval
  --push-url URL             POST reports to URL/push/report every interval
  --push-token TOKEN         bearer token for the pushes (needs --push-url)
  --push-events              also POST connect/disconnect events to
                             URL/push/events, batched (needs --push-url)
  --report-interval MS       report interval (default 2000, at least 10)
  --drift                    test hook: the event stream skips every other
                             disconnect event (the 1st, 3rd, ...), so it drifts
                             from the reports (needs --push-events)
  --help                     print this help to stderr and exit 0

Always present: "/", and the dynamic namespace /^\\/tenant-\\d+$/.
Stdout: one line {"event":"listening","port":P,"serverId":ID|null,"pid":PID}.
GET /truth: {"clientsCount":N,"namespaces":{"<name>":sockets,...}}.
`;

class UsageError extends Error {}

function parseNonNegativeInt(flag, value, max) {
  if (!/^\d+$/.test(value) || Number(value) > max) {
    throw new UsageError(`${flag} must be an integer between 0 and ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function parseNamespaces(value) {
  let parsed;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new UsageError(`--namespaces must be a JSON array of strings: ${err.message}`);
  }
  if (!Array.isArray(parsed)) {
    throw new UsageError("--namespaces must be a JSON array of strings");
  }
  for (const name of parsed) {
    if (typeof name !== "string" || !name.startsWith("/")) {
      throw new UsageError(`--namespaces: every entry must be a string starting with "/", got ${JSON.stringify(name)}`);
    }
  }
  return parsed;
}

function parsePushUrl(value) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--push-url must be an http:// or https:// URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`--push-url must be an http:// or https:// URL, got ${JSON.stringify(value)}`);
  }
  if (url.search || url.hash) throw new UsageError("--push-url must not have a query or fragment");
  return value;
}

function parseArgs(argv) {
  const options = {};
  const withValue = {
    "--port": (v) => { options.port = parseNonNegativeInt("--port", v, 65535); },
    "--admin-username": (v) => { options.adminUsername = v; },
    "--admin-password": (v) => { options.adminPassword = v; },
    "--admin-namespace": (v) => {
      if (!v.startsWith("/")) throw new UsageError(`--admin-namespace must start with "/", got ${JSON.stringify(v)}`);
      options.adminNamespace = v;
    },
    "--server-id": (v) => {
      if (v === "") throw new UsageError("--server-id must not be empty");
      options.serverId = v;
    },
    "--namespaces": (v) => { options.namespaces = parseNamespaces(v); },
    "--ping-interval": (v) => { options.pingInterval = parseNonNegativeInt("--ping-interval", v, 2 ** 31 - 1); },
    "--ping-timeout": (v) => { options.pingTimeout = parseNonNegativeInt("--ping-timeout", v, 2 ** 31 - 1); },
    "--redis": (v) => { options.redisUrl = v; },
    "--tls-cert": (v) => { options.tlsCert = v; },
    "--tls-key": (v) => { options.tlsKey = v; },
    "--report-file": (v) => {
      if (v === "") throw new UsageError("--report-file must not be empty");
      options.reportFile = v;
    },
    "--push-url": (v) => { options.pushUrl = parsePushUrl(v); },
    "--push-token": (v) => {
      if (v === "") throw new UsageError("--push-token must not be empty");
      options.pushToken = v;
    },
    "--report-interval": (v) => {
      options.reportIntervalMs = parseNonNegativeInt("--report-interval", v, 2 ** 31 - 1);
      if (options.reportIntervalMs < 10) throw new UsageError(`--report-interval must be at least 10 ms, got ${v}`);
    },
  };
  const switches = {
    "--no-auth": () => { options.auth = false; },
    "--cleanup-empty-children": () => { options.cleanupEmptyChildNamespaces = true; },
    "--no-admin-ui": () => { options.adminUi = false; },
    "--push-events": () => { options.pushEvents = true; },
    "--drift": () => { options.drift = true; },
    "--help": () => { options.help = true; },
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (Object.hasOwn(switches, flag)) {
      if (eq !== -1) throw new UsageError(`${flag} takes no value`);
      switches[flag]();
    } else if (Object.hasOwn(withValue, flag)) {
      let value;
      if (eq !== -1) {
        value = arg.slice(eq + 1);
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
        value = argv[++i];
      }
      withValue[flag](value);
    } else {
      throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (options.help) return options;
  if (options.pushToken !== undefined && options.pushUrl === undefined) {
    throw new UsageError("--push-token needs --push-url");
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  if (options.pushEvents && options.pushUrl === undefined) {
    throw new UsageError("--push-events needs --push-url");
  }
  if (options.drift && !options.pushEvents) {
    throw new UsageError("--drift needs --push-events");
  }
  return options;
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`server.js: ${err.message} (see --help)\n`);
    process.exit(2);
  }
  if (options.help) {
    process.stderr.write(USAGE);
    process.exit(0);
  }
  delete options.help;

  let app;
  try {
    app = await startServer(options);
  } catch (err) {
    process.stderr.write(`server.js: ${err.message}\n`);
    process.exit(1);
  }

  process.stdout.write(
    `${JSON.stringify({ event: "listening", port: app.port, serverId: app.serverId, pid: process.pid })}\n`,
  );

  let stopping = false;
  const stop = (signal) => {
    if (stopping) {
      // A second signal: exit at once.
      process.exit(0);
    }
    stopping = true;
    // Do not hang on a peer that never finishes the WebSocket close.
    setTimeout(() => {
      process.stderr.write(`server.js: shutdown after ${signal} took over 5 s, exiting\n`);
      process.exit(0);
    }, 5000).unref();
    app.close().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`server.js: error during shutdown: ${err.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err) => {
  process.stderr.write(`server.js: ${err.stack || err}\n`);
  process.exit(1);
});
