#!/usr/bin/env node
"use strict";

// Holds many real socket.io-client connections open, for scripts/measure-app-cost.
//
//   node socket-load.js --url http://127.0.0.1:PORT --count N [--offset I] [--concurrency C]
//
// Client i (i = offset .. offset+N-1) is one Engine.IO connection over WebSocket
// (reconnection off) with one socket in namespace ["/", "/chat", "/notifications"][i % 3].
// Stdout: {"connected":N} once all N sockets got "connect"; then it holds them until
// SIGTERM/SIGINT, and exits 1 if a connection fails.

const path = require("node:path");
const { io } = require(path.join(__dirname, "../../tests/app/node_modules/socket.io-client"));

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
}

const URL = arg("--url");
const COUNT = Number(arg("--count", 1000));
const OFFSET = Number(arg("--offset", 0));
const CONCURRENCY = Number(arg("--concurrency", 50));
const NAMESPACES = ["/", "/chat", "/notifications"];

const sockets = [];
let connected = false;

function connectOne(i) {
  return new Promise((resolve, reject) => {
    const nsp = NAMESPACES[i % NAMESPACES.length];
    const socket = io(URL + nsp, { transports: ["websocket"], reconnection: false, forceNew: true, timeout: 30000 });
    sockets.push(socket);
    socket.once("connect", resolve);
    socket.once("connect_error", (err) => reject(new Error(`client ${i} ${nsp}: ${err.message}`)));
    socket.on("disconnect", (reason) => {
      if (connected) {
        process.stderr.write(`[socket-load] client ${i} disconnected: ${reason}\n`);
      }
    });
  });
}

async function main() {
  let next = OFFSET;
  const end = OFFSET + COUNT;
  async function worker() {
    while (next < end) {
      await connectOne(next++);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  connected = true;
  process.stdout.write(`${JSON.stringify({ connected: COUNT })}\n`);
}

function exit(code) {
  connected = false;
  for (const socket of sockets) socket.close();
  process.exit(code);
}

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => exit(0));

main().catch((err) => {
  process.stderr.write(`[socket-load] ${err.message}\n`);
  exit(1);
});
