#!/usr/bin/env node
"use strict";

// Demo for the README: a Socket.IO app with admin-ui on 127.0.0.1:PORT and
// simulated users (real socket.io-client connections over WebSocket) that
// come and go, so the exporter has counts that move. Every 5 s it prints the
// app's true per-namespace counts to stderr, to compare with /metrics.
//
//   SOCKETIO_ADMIN_PASSWORD=changeit node demo.js [--port 3000]

const { Manager } = require("socket.io-client");
const { startServer } = require("./lib/server");

const NAMESPACES = ["/", "/chat", "/notifications"];
const OPTIONAL_NAMESPACES = ["/chat", "/notifications"];
const ADMIN_NAMESPACE = "/admin";
const MIN_USERS = 5;
const MAX_USERS = 30;
const INITIAL_USERS = 10;
const REPORT_EVERY_MS = 5000;

function log(msg) {
  process.stderr.write(`[demo] ${msg}\n`);
}

function parseArgs(argv) {
  let port = 3000;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    let value;
    if (arg === "--port") {
      value = argv[++i];
    } else if (arg.startsWith("--port=")) {
      value = arg.slice("--port=".length);
    } else if (arg === "--help") {
      process.stderr.write("usage: node demo.js [--port N]   (default 3000; admin password from SOCKETIO_ADMIN_PASSWORD, default changeit)\n");
      process.exit(0);
    } else {
      process.stderr.write(`demo.js: unknown argument ${JSON.stringify(arg)} (see --help)\n`);
      process.exit(2);
    }
    if (value === undefined || !/^\d+$/.test(value) || Number(value) > 65535) {
      process.stderr.write(`demo.js: --port must be an integer between 0 and 65535, got ${JSON.stringify(value)}\n`);
      process.exit(2);
    }
    port = Number(value);
  }
  return { port };
}

/** One simulated user: one engine connection, "/" plus a random subset of the rest. */
class User {
  constructor(name, url) {
    this.name = name;
    this.namespaces = ["/", ...OPTIONAL_NAMESPACES.filter(() => Math.random() < 0.5)];
    this.manager = new Manager(url, { transports: ["websocket"], reconnection: false });
    this.sockets = this.namespaces.map((nsp) => this.manager.socket(nsp));
    for (const socket of this.sockets) {
      socket.on("connect_error", (err) => log(`${name}: ${socket.nsp}: ${err.message}`));
    }
  }

  leave() {
    for (const socket of this.sockets) socket.disconnect();
    this.manager.disconnect();
  }
}

function trueCounts(io) {
  const parts = [];
  io._nsps.forEach((nsp, name) => {
    if (name !== ADMIN_NAMESPACE) parts.push(`${name}=${nsp.sockets.size}`);
  });
  return parts.join(" ");
}

async function main() {
  const { port } = parseArgs(process.argv.slice(2));
  const password = process.env.SOCKETIO_ADMIN_PASSWORD || "changeit";

  let app;
  try {
    app = await startServer({
      port,
      namespaces: NAMESPACES.filter((n) => n !== "/"),
      adminUsername: "admin",
      adminPassword: password,
      adminNamespace: ADMIN_NAMESPACE,
      // A realistic bcrypt cost for the demo; each admin login costs one compare.
      bcryptCost: 10,
      log,
    });
  } catch (err) {
    log(`cannot start: ${err.message}`);
    process.exit(1);
  }
  const url = `http://127.0.0.1:${app.port}`;
  log(`Socket.IO app listening on ${url}; admin-ui namespace ${ADMIN_NAMESPACE}, user "admin", production mode`);
  log(`simulating ${MIN_USERS}-${MAX_USERS} users on ${NAMESPACES.join(", ")}; true counts every ${REPORT_EVERY_MS / 1000} s (Ctrl-C to stop)`);

  const users = new Set();
  let nextUser = 1;
  const arrive = () => {
    const user = new User(`user-${nextUser++}`, url);
    users.add(user);
  };
  const depart = () => {
    const list = [...users];
    const user = list[Math.floor(Math.random() * list.length)];
    users.delete(user);
    user.leave();
  };

  for (let i = 0; i < INITIAL_USERS; i++) arrive();

  // One arrival or departure about every second; the random walk is pulled
  // back inside [MIN_USERS, MAX_USERS] at the edges.
  let churnTimer;
  const churn = () => {
    const n = users.size;
    const pArrive = n <= MIN_USERS ? 1 : n >= MAX_USERS ? 0 : 0.5;
    if (Math.random() < pArrive) arrive();
    else depart();
    churnTimer = setTimeout(churn, 700 + Math.random() * 600);
  };
  churnTimer = setTimeout(churn, 1000);

  const reportTimer = setInterval(() => {
    log(`${new Date().toISOString()} true counts: ${trueCounts(app.io)} (users=${users.size}, engine clients=${app.io.engine.clientsCount})`);
  }, REPORT_EVERY_MS);

  let stopping = false;
  const stop = (signal) => {
    if (stopping) process.exit(0);
    stopping = true;
    log(`${signal}: stopping`);
    clearTimeout(churnTimer);
    clearInterval(reportTimer);
    setTimeout(() => process.exit(0), 5000).unref();
    for (const user of users) user.leave();
    users.clear();
    app.close().then(
      () => process.exit(0),
      (err) => {
        log(`error during shutdown: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main().catch((err) => {
  log(err.stack || String(err));
  process.exit(1);
});
