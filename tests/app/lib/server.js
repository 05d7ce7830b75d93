"use strict";

// The Socket.IO test app behind server.js and demo.js: a real socket.io
// server instrumented with @socket.io/admin-ui and/or reporting through the
// repo's reporter module (clients/node), plus GET /truth, the app's own view
// of its counts, for the exporter's integration tests to compare against.

const fs = require("node:fs");
const http = require("node:http");
const https = require("node:https");
// TEST_APP_SOCKETIO=socket.io-v3 runs the same app on socket.io 3.1 (an npm alias in
// package.json), for the compatibility test over pinned versions.
const { Server } = require(process.env.TEST_APP_SOCKETIO || "socket.io");
const { instrument } = require("@socket.io/admin-ui");
const bcrypt = require("bcryptjs");
// The repo's own reporter, required by path: it has no npm dependencies.
const { createReporter } = require("../../../clients/node");

const HOST = "127.0.0.1";

// Dynamic namespace pattern that is always registered; children such as
// /tenant-1 appear in io._nsps (and in server_stats) once a client joins one.
const TENANT_NAMESPACE = /^\/tenant-\d+$/;

const DEFAULTS = Object.freeze({
  port: 0,
  adminUsername: "admin",
  adminPassword: "changeit",
  auth: true,
  adminNamespace: "/admin",
  serverId: null,
  namespaces: ["/chat", "/notifications"],
  cleanupEmptyChildNamespaces: false,
  pingInterval: undefined,
  pingTimeout: undefined,
  redisUrl: null,
  // PEM files: serve HTTPS (and WSS) instead of HTTP.
  tlsCert: null,
  tlsKey: null,
  // false: do not instrument admin-ui; the app then reports only through
  // the reporter (if any reporter option is set).
  adminUi: true,
  // Reporter (clients/node): any of reportFile / pushUrl turns it on.
  reportFile: null,
  pushUrl: null,
  pushToken: null,
  pushEvents: false,
  reportIntervalMs: 2000,
  // Test hook: with pushEvents, deliberately drop the 1st, 3rd, 5th, ...
  // disconnect event, so the exporter sees the event stream drift from the
  // (still correct) full reports. Never a user-facing feature.
  drift: false,
  // Cost 4 keeps each admin login's bcrypt compare around a millisecond.
  bcryptCost: 4,
  log: (msg) => process.stderr.write(`[test-app] ${msg}\n`),
});

/**
 * The app's own counts: engine connections and sockets per concrete namespace
 * (static, dynamic children and the admin namespace), read from io._nsps just
 * like admin-ui does.
 */
function truth(io) {
  const namespaces = {};
  io._nsps.forEach((nsp, name) => {
    namespaces[name] = nsp.sockets.size;
  });
  return { clientsCount: io.engine ? io.engine.clientsCount : 0, namespaces };
}

/**
 * Test hook: POST /disconnect?namespace=/chat closes every socket of that
 * namespace on this server with socket.disconnect(true), which also closes
 * their engine connections (Engine.IO reason "forced close"). 404 for a
 * namespace the server does not have; 405 for other methods.
 */
function disconnectRoute(io, req, res) {
  if (req.method !== "POST") {
    res.writeHead(405, { allow: "POST", "content-type": "text/plain" });
    res.end("method not allowed\n");
    return;
  }
  const name = new URL(req.url, "http://localhost").searchParams.get("namespace");
  const nsp = io._nsps.get(name);
  if (!nsp) {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("no such namespace\n");
    return;
  }
  const sockets = [...nsp.sockets.values()];
  for (const socket of sockets) socket.disconnect(true);
  const body = JSON.stringify({ disconnected: sockets.length });
  res.writeHead(200, { "content-type": "application/json" });
  res.end(body);
}

async function connectRedis(url, log) {
  // Required lazily so that runs without --redis never load the client.
  const { createClient } = require("redis");
  const { createAdapter } = require("@socket.io/redis-adapter");

  const pub = createClient({ url });
  const sub = pub.duplicate();
  let lastErrorLog = 0;
  for (const [role, client] of [["pub", pub], ["sub", sub]]) {
    // Without an "error" listener, node-redis turns a lost connection into
    // an uncaught exception. Log at most one line per second.
    client.on("error", (err) => {
      const now = Date.now();
      if (now - lastErrorLog >= 1000) {
        lastErrorLog = now;
        log(`redis ${role} client error: ${err.message}`);
      }
    });
  }

  // @socket.io/redis-adapter 8.3.0 fires PUBLISH without handling the
  // promise, and admin-ui broadcasts server_stats every 2 s, so a redis
  // outage (or the ticks after close()) would crash the process with an
  // unhandled rejection. Swallow and log instead; the test app must survive
  // a redis restart.
  const publish = pub.publish.bind(pub);
  pub.publish = (...args) => {
    const result = publish(...args);
    if (result && typeof result.catch === "function") {
      result.catch((err) => log(`redis publish failed: ${err.message}`));
    }
    return result;
  };

  const timeoutMs = 10000;
  let timer;
  try {
    await Promise.race([
      Promise.all([pub.connect(), sub.connect()]),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`could not connect to redis at ${url} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    await Promise.allSettled([pub.disconnect(), sub.disconnect()]);
    throw err;
  } finally {
    clearTimeout(timer);
  }

  const close = async () => {
    // A closed client makes later publishes reject; the wrapper above logs
    // them, so keep quiet by dropping further publishes instead.
    pub.publish = () => Promise.resolve(0);
    await Promise.allSettled([pub.quit(), sub.quit()]);
  };
  return { adapter: createAdapter(pub, sub), close };
}

/**
 * --drift's event filter: drops every other disconnect event, starting with
 * the first, and keeps every connect. Exported for tests.
 */
function driftFilter() {
  let disconnects = 0;
  return (event) => event.type !== "disconnect" || disconnects++ % 2 === 1;
}

/**
 * Starts the test app on 127.0.0.1.
 *
 * options (all optional, see DEFAULTS): port, adminUsername, adminPassword,
 * auth (false => admin-ui `auth: false`), adminNamespace, serverId,
 * namespaces (extra static namespaces; "/" always exists),
 * cleanupEmptyChildNamespaces, pingInterval, pingTimeout, redisUrl,
 * tlsCert and tlsKey (PEM paths: serve HTTPS),
 * bcryptCost, log (function taking one line, default stderr),
 * adminUi (false => no admin-ui), and the reporter's: reportFile, pushUrl,
 * pushToken, pushEvents, reportIntervalMs, drift (see DEFAULTS).
 *
 * Resolves to { io, httpServer, port, serverId, reporter, close() }; serverId
 * is the one passed in, or null when admin-ui falls back to os.hostname()
 * (and the reporter leaves server_id out); reporter is null without
 * reportFile and pushUrl. close() stops the reporter first (its final flush
 * sends the last true counts), then the server.
 */
async function startServer(options = {}) {
  const opts = { ...DEFAULTS, ...options };
  const log = opts.log;

  let redis = null;
  if (opts.redisUrl) {
    redis = await connectRedis(opts.redisUrl, log);
  }

  let io;
  const handler = (req, res) => {
    // socket.io answers its own path (/socket.io/) before this handler runs.
    const { pathname } = new URL(req.url, "http://localhost");
    if (pathname === "/truth") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
        res.end("method not allowed\n");
        return;
      }
      const body = JSON.stringify(truth(io));
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "cache-control": "no-store",
      });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    if (pathname === "/disconnect") {
      disconnectRoute(io, req, res);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  };
  const httpServer = opts.tlsCert
    ? https.createServer(
        { cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey) },
        handler,
      )
    : http.createServer(handler);

  const serverOptions = {
    cleanupEmptyChildNamespaces: Boolean(opts.cleanupEmptyChildNamespaces),
    serveClient: false,
  };
  if (opts.pingInterval !== undefined) serverOptions.pingInterval = opts.pingInterval;
  if (opts.pingTimeout !== undefined) serverOptions.pingTimeout = opts.pingTimeout;
  if (redis) serverOptions.adapter = redis.adapter;

  io = new Server(httpServer, serverOptions);

  // Every namespace accepts every connection; there is no app logic.
  const accept = () => {};
  io.of("/").on("connection", accept);
  for (const name of opts.namespaces) {
    io.of(name).on("connection", accept);
  }
  io.of(TENANT_NAMESPACE).on("connection", accept);

  const serverId = opts.serverId !== null && opts.serverId !== undefined ? String(opts.serverId) : null;
  if (opts.adminUi) {
    let auth = false;
    if (opts.auth) {
      const hash = bcrypt.hashSync(String(opts.adminPassword), opts.bcryptCost);
      auth = { type: "basic", username: String(opts.adminUsername), password: hash };
    }
    const adminOptions = {
      auth,
      namespaceName: opts.adminNamespace,
      mode: "production",
      readonly: true,
    };
    if (serverId !== null) adminOptions.serverId = serverId;
    instrument(io, adminOptions);
  }

  try {
    await new Promise((resolve, reject) => {
      const onError = (err) => reject(err);
      httpServer.once("error", onError);
      httpServer.listen(opts.port, HOST, () => {
        httpServer.off("error", onError);
        resolve();
      });
    });
  } catch (err) {
    io.close();
    if (redis) await redis.close();
    throw err;
  }

  let reporter = null;
  if (opts.reportFile || opts.pushUrl) {
    const reporterOptions = {
      serverId,
      file: opts.reportFile || undefined,
      pushUrl: opts.pushUrl || undefined,
      token: opts.pushToken || undefined,
      events: Boolean(opts.pushEvents),
      intervalMs: opts.reportIntervalMs,
    };
    if (opts.drift) reporterOptions.eventFilter = driftFilter();
    try {
      reporter = createReporter(io, reporterOptions);
    } catch (err) {
      httpServer.closeIdleConnections();
      await io.close();
      if (redis) await redis.close();
      throw err;
    }
  }

  let closing = null;
  const close = () => {
    if (!closing) {
      closing = (async () => {
        if (reporter) {
          // The final flush gets at most a second: shutdown must stay quick
          // even when the exporter does not answer.
          let timer;
          await Promise.race([reporter.stop(), new Promise((resolve) => { timer = setTimeout(resolve, 1000); })]);
          clearTimeout(timer);
        }
        // io.close() disconnects every socket, closes the engine and the
        // http server (waiting for open keep-alive requests to finish).
        httpServer.closeIdleConnections();
        await io.close();
        if (redis) await redis.close();
      })();
    }
    return closing;
  };

  return {
    io,
    httpServer,
    port: httpServer.address().port,
    serverId,
    reporter,
    close,
  };
}

module.exports = { startServer, truth, driftFilter, TENANT_NAMESPACE, DEFAULTS, HOST };
