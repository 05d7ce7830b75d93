#!/usr/bin/env node
"use strict";

// A scripted admin-ui server for scripts/bench-local-scale: it plays what an admin client of
// one server in a cluster of N (Redis adapter) receives, namely every server's `server_stats`
// every 2 s, each server on its own random phase, over Engine.IO v4 / Socket.IO v5 on a
// WebSocket (the `ws` package from tests/app/node_modules).
//
//   node admin-ui-sim.js --servers N [--namespaces K] [--period-ms 2000]
//
// Server ids are sim-0000 ... sim-(N-1). Each server has the namespaces /, /chat,
// /notifications, /admin and K-4 more (/ns-4 ...), with counts that drift by ±1 at every
// tick, as live servers do. The frames follow admin-ui 0.5.1 in production mode
// (see /work/shared/reference/socketio-admin-protocol.md and
// src/sources/socketio_admin/protocol.rs): `0{open}`, then on `40/admin,{auth}` the session
// event, the CONNECT ack and `config`; a ping (`2`) every pingInterval. Any auth is accepted.
// Stdout: one line once listening on 127.0.0.1: {"port":P}.

const http = require("node:http");
const path = require("node:path");
const { WebSocketServer } = require(path.join(__dirname, "../../tests/app/node_modules/ws"));

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

const SERVERS = arg("--servers", 10);
const NAMESPACES = Math.max(4, arg("--namespaces", 4));
const PERIOD_MS = arg("--period-ms", 2000);
const PING_INTERVAL_MS = 25000;
const ADMIN = "/admin";
const started = Date.now();

const admins = new Set();

function id(n) {
  return Math.random().toString(36).slice(2, 2 + n).padEnd(n, "x");
}

const servers = [];
for (let i = 0; i < SERVERS; i++) {
  const names = ["/", "/chat", "/notifications", ADMIN];
  for (let k = 4; k < NAMESPACES; k++) names.push(`/ns-${k}`);
  const counts = names.map((name) => (name === ADMIN ? 1 : Math.floor(Math.random() * 50)));
  servers.push({ serverId: `sim-${String(i).padStart(4, "0")}`, pid: 1000 + i, names, counts });
}

function statsFrame(server) {
  for (let k = 0; k < server.counts.length; k++) {
    if (server.names[k] !== ADMIN) {
      server.counts[k] = Math.max(0, server.counts[k] + Math.floor(Math.random() * 3) - 1);
    }
  }
  const now = Date.now();
  const stats = {
    serverId: server.serverId,
    hostname: "sim",
    pid: server.pid,
    uptime: (now - started) / 1000,
    clientsCount: server.counts[0] + 1,
    pollingClientsCount: 0,
    aggregatedEvents: [
      { timestamp: Math.floor(now / 1000) * 1000, type: "packetsIn", count: 3 },
      { timestamp: Math.floor(now / 1000) * 1000, type: "bytesIn", count: 96 },
    ],
    namespaces: server.names.map((name, k) => ({ name, socketsCount: server.counts[k] })),
  };
  return `42${ADMIN},${JSON.stringify(["server_stats", stats])}`;
}

function broadcast(server) {
  if (admins.size === 0) return;
  const frame = statsFrame(server);
  for (const ws of admins) ws.send(frame);
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ server: httpServer, path: "/socket.io/" });
wss.on("connection", (ws) => {
  ws.send(`0${JSON.stringify({ sid: id(20), upgrades: [], pingInterval: PING_INTERVAL_MS, pingTimeout: 20000, maxPayload: 1000000 })}`);
  const ping = setInterval(() => ws.send("2"), PING_INTERVAL_MS);
  ws.on("message", (data) => {
    const frame = data.toString();
    if (frame.startsWith(`40${ADMIN},`) || frame === `40${ADMIN}`) {
      ws.send(`42${ADMIN},${JSON.stringify(["session", id(16)])}`);
      ws.send(`40${ADMIN},${JSON.stringify({ sid: id(20) })}`);
      ws.send(`42${ADMIN},${JSON.stringify(["config", { supportedFeatures: ["AGGREGATED_EVENTS"] }])}`);
      admins.add(ws);
    } else if (frame.startsWith(`41${ADMIN}`)) {
      admins.delete(ws);
    }
  });
  ws.on("close", () => {
    clearInterval(ping);
    admins.delete(ws);
  });
});

httpServer.listen(0, "127.0.0.1", () => {
  for (const server of servers) {
    setTimeout(() => {
      broadcast(server);
      setInterval(() => broadcast(server), PERIOD_MS);
    }, Math.random() * PERIOD_MS);
  }
  process.stdout.write(`${JSON.stringify({ port: httpServer.address().port })}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
