#!/usr/bin/env node
"use strict";

// Drives real socket.io-client connections for the integration tests.
// Reads one JSON command per line on stdin and writes exactly one JSON answer
// line per command to stdout, in order, echoing the command's "seq".
// Commands run one at a time, in the order received.
//
//   {"seq":1,"op":"connect","id":"c1","url":"http://127.0.0.1:PORT","namespaces":["/","/chat"]}
//       optional: "auth": {...} (CONNECT payload for every namespace),
//                 "path": "/socket.io", "transports": ["websocket"], "timeoutMs": 10000
//       -> {"seq":1,"ok":true} once every namespace socket got "connect"
//   {"seq":2,"op":"disconnect","id":"c1"}                 -> {"seq":2,"ok":true}
//   {"seq":3,"op":"leave","id":"c1","namespace":"/chat"}  -> {"seq":3,"ok":true}
//   {"seq":4,"op":"count"}                                -> {"seq":4,"ok":true,"count":1,"ids":["c1"]}
//   failure: {"seq":N,"ok":false,"error":"..."}; a line that is not a JSON
//   object gives {"seq":null,"ok":false,"error":"..."}. Blank lines are ignored.
//
// Exits 0 when stdin closes, after answering the queued commands and closing
// every client. Diagnostics go to stderr.

const readline = require("node:readline");
const { Manager } = require("socket.io-client");

const DEFAULT_TIMEOUT_MS = 10000;
// How long "disconnect" waits for the WebSocket closing handshake to finish.
const CLOSE_WAIT_MS = 2000;

/** id -> { manager, sockets: Map<namespace, Socket>, open: boolean } */
const clients = new Map();

function log(msg) {
  process.stderr.write(`[clients] ${msg}\n`);
}

function reply(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

class CommandError extends Error {}

function requireString(cmd, key) {
  const value = cmd[key];
  if (typeof value !== "string" || value === "") {
    throw new CommandError(`"${key}" must be a non-empty string`);
  }
  return value;
}

function requireClient(cmd) {
  const id = requireString(cmd, "id");
  const client = clients.get(id);
  if (!client) throw new CommandError(`unknown client id ${JSON.stringify(id)}`);
  return [id, client];
}

function engineWebSocket(manager) {
  const transport = manager.engine && manager.engine.transport;
  return transport && transport.ws ? transport.ws : null;
}

/** Closes every socket and the engine connection; resolves once closed. */
function closeClient(client) {
  const ws = engineWebSocket(client.manager);
  const closed = new Promise((resolve) => {
    if (!ws || ws.readyState === 3 /* CLOSED */) {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, CLOSE_WAIT_MS);
    ws.addEventListener("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  for (const socket of client.sockets.values()) {
    socket.disconnect();
  }
  // Usually already done by the last socket.disconnect(); harmless otherwise.
  client.manager.disconnect();
  client.open = false;
  return closed;
}

async function opConnect(cmd) {
  const id = requireString(cmd, "id");
  const url = requireString(cmd, "url");
  if (clients.has(id)) throw new CommandError(`client id ${JSON.stringify(id)} already in use`);
  const namespaces = cmd.namespaces;
  if (!Array.isArray(namespaces) || namespaces.length === 0) {
    throw new CommandError('"namespaces" must be a non-empty array of strings');
  }
  for (const nsp of namespaces) {
    if (typeof nsp !== "string" || !nsp.startsWith("/")) {
      throw new CommandError(`every namespace must be a string starting with "/", got ${JSON.stringify(nsp)}`);
    }
  }
  if (new Set(namespaces).size !== namespaces.length) {
    throw new CommandError('"namespaces" has duplicates');
  }
  const timeoutMs = cmd.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : cmd.timeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new CommandError('"timeoutMs" must be a positive integer');
  }

  const managerOptions = {
    transports: cmd.transports === undefined ? ["websocket"] : cmd.transports,
    reconnection: false,
    autoConnect: false,
  };
  if (cmd.path !== undefined) managerOptions.path = cmd.path;
  const manager = new Manager(url, managerOptions);
  const client = { manager, sockets: new Map(), open: false };

  manager.on("open", () => {
    client.open = true;
  });
  manager.on("close", (reason) => {
    if (client.open && reason !== "forced close") {
      log(`client ${id}: engine connection closed (${reason})`);
    }
    client.open = false;
  });

  const socketOptions = cmd.auth === undefined ? {} : { auth: cmd.auth };
  const connected = namespaces.map((nsp) => {
    const socket = manager.socket(nsp, socketOptions);
    client.sockets.set(nsp, socket);
    return new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`${nsp}: ${err.message}`)));
    });
  });

  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });

  manager.open();
  for (const socket of client.sockets.values()) socket.connect();

  try {
    await Promise.race([Promise.all(connected), timeout]);
  } catch (err) {
    await closeClient(client);
    throw new CommandError(`connect ${id}: ${err.message}`);
  } finally {
    clearTimeout(timer);
  }
  clients.set(id, client);
  return {};
}

async function opDisconnect(cmd) {
  const [id, client] = requireClient(cmd);
  clients.delete(id);
  await closeClient(client);
  return {};
}

async function opLeave(cmd) {
  const [id, client] = requireClient(cmd);
  const nsp = requireString(cmd, "namespace");
  const socket = client.sockets.get(nsp);
  if (!socket) throw new CommandError(`client ${JSON.stringify(id)} never joined ${JSON.stringify(nsp)}`);
  if (!socket.connected) throw new CommandError(`client ${JSON.stringify(id)} is not connected to ${JSON.stringify(nsp)}`);
  socket.disconnect();
  return {};
}

async function opCount() {
  const ids = [...clients].filter(([, c]) => c.open).map(([id]) => id);
  return { count: ids.length, ids };
}

const OPS = { connect: opConnect, disconnect: opDisconnect, leave: opLeave, count: opCount };

async function handleLine(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    reply({ seq: null, ok: false, error: `malformed line: ${err.message}` });
    return;
  }
  if (cmd === null || typeof cmd !== "object" || Array.isArray(cmd)) {
    reply({ seq: null, ok: false, error: "malformed line: expected a JSON object" });
    return;
  }
  const seq = cmd.seq === undefined ? null : cmd.seq;
  const op = OPS[cmd.op];
  if (typeof cmd.op !== "string" || !Object.hasOwn(OPS, cmd.op)) {
    reply({ seq, ok: false, error: `unknown op ${JSON.stringify(cmd.op)}` });
    return;
  }
  try {
    const extra = await op(cmd);
    reply({ seq, ok: true, ...extra });
  } catch (err) {
    if (!(err instanceof CommandError)) log(`op ${cmd.op} failed: ${err.stack || err}`);
    reply({ seq, ok: false, error: err.message });
  }
}

async function shutdown() {
  await Promise.all([...clients.values()].map(closeClient));
  clients.clear();
  process.exit(0);
}

function main() {
  // A reader that went away must not turn into an uncaught EPIPE.
  process.stdout.on("error", (err) => {
    log(`stdout: ${err.message}`);
    process.exit(1);
  });

  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let queue = Promise.resolve();
  rl.on("line", (line) => {
    if (line.trim() === "") return;
    queue = queue.then(() => handleLine(line));
  });
  rl.on("close", () => {
    queue = queue.then(shutdown);
  });
}

main();
