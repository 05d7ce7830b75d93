#!/usr/bin/env node
"use strict";

// The test app as a Node `cluster`: real worker processes behind one port,
// each a lib/server.js Socket.IO server instrumented with admin-ui, joined by
// the Redis adapter so that whichever worker the exporter's admin client
// lands on carries every worker's server_stats. admin-ui names each worker
// `<hostname>#<pid>`. A worker that dies is forked again, as a process
// manager would.
//
// usage: node cluster.js --workers N --redis URL
//
// Stdout, one JSON line each:
//   {"event":"listening","port":P,"truthPort":T,"workers":[pid,...]} once every worker listens
//   {"event":"forked","pid":N} when a replacement worker listens
// GET http://127.0.0.1:T/truth: {"clientsCount":N,"namespaces":{...},"workers":{"<pid>":{...}}},
// the counts of every live worker, summed, and each worker's own.
// Exits 0 on SIGTERM/SIGINT, 2 on a usage error.

const cluster = require("node:cluster");
const http = require("node:http");

const { startServer, truth, HOST } = require("./lib/server");

// The namespaces every test app has (see tests/e2e/support: App::start_with).
const NAMESPACES = ["/chat", "/notifications", '/we"ird\\ns'];
const TRUTH_TIMEOUT_MS = 5000;

function usage(message) {
  process.stderr.write(`cluster.js: ${message}\nusage: node cluster.js --workers N --redis URL\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { workers: 2, redisUrl: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${flag} needs a value`);
    if (flag === "--workers" && /^[1-9]\d?$/.test(value)) options.workers = Number(value);
    else if (flag === "--redis") options.redisUrl = value;
    else usage(`unknown or invalid argument ${JSON.stringify(flag)} ${JSON.stringify(value)}`);
  }
  if (!options.redisUrl) usage("--redis is required: workers share server_stats through it");
  return options;
}

async function worker() {
  const app = await startServer({
    port: Number(process.env.CLUSTER_PORT),
    redisUrl: process.env.CLUSTER_REDIS,
    namespaces: NAMESPACES,
    pingInterval: 1000,
    pingTimeout: 1000,
    log: (msg) => process.stderr.write(`[worker ${process.pid}] ${msg}\n`),
  });
  process.on("message", (message) => {
    if (message && message.op === "truth") {
      process.send({ op: "truth", id: message.id, truth: truth(app.io) });
    }
  });
  process.send({ op: "listening", port: app.port });
}

function primary({ workers, redisUrl }) {
  let port = null;
  let stopping = false;
  let nextQuery = 0;
  const listening = new Set();

  // listen(0) in every worker, replacements too: the primary keys its shared
  // handles by the requested address and port, so they all get its one port.
  const fork = () => cluster.fork({ CLUSTER_PORT: "0", CLUSTER_REDIS: redisUrl });
  const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

  const server = http.createServer(async (req, res) => {
    if (new URL(req.url, "http://localhost").pathname !== "/truth") {
      res.writeHead(404).end();
      return;
    }
    const answers = await Promise.all(Object.values(cluster.workers).map(ask));
    const sum = { clientsCount: 0, namespaces: {}, workers: {} };
    for (const answer of answers.filter(Boolean)) {
      sum.clientsCount += answer.truth.clientsCount;
      for (const [name, n] of Object.entries(answer.truth.namespaces)) {
        sum.namespaces[name] = (sum.namespaces[name] || 0) + n;
      }
      sum.workers[answer.pid] = answer.truth.namespaces;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(sum));
  });

  // One worker's truth, or null if it is gone or does not answer in time.
  function ask(w) {
    const id = ++nextQuery;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(null), TRUTH_TIMEOUT_MS);
      const onMessage = (message) => {
        if (message && message.op === "truth" && message.id === id) {
          done({ pid: w.process.pid, truth: message.truth });
        }
      };
      function done(value) {
        clearTimeout(timer);
        w.off("message", onMessage);
        resolve(value);
      }
      w.on("message", onMessage);
      try {
        w.send({ op: "truth", id });
      } catch {
        done(null);
      }
    });
  }

  cluster.on("message", (w, message) => {
    if (!message || message.op !== "listening") return;
    if (listening.size < workers) {
      listening.add(w.process.pid);
      port = message.port;
      if (listening.size === workers) {
        server.listen(0, HOST, () =>
          emit({ event: "listening", port, truthPort: server.address().port, workers: [...listening] }),
        );
      }
    } else {
      emit({ event: "forked", pid: w.process.pid });
    }
  });
  cluster.on("exit", (w, code, signal) => {
    if (stopping) return;
    process.stderr.write(`[cluster] worker ${w.process.pid} died (${signal || code}); forking another\n`);
    fork();
  });
  const stop = () => {
    if (stopping) process.exit(0);
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill("SIGTERM");
    server.close();
    setTimeout(() => process.exit(0), 5000).unref();
    cluster.on("exit", () => {
      if (Object.keys(cluster.workers).length === 0) process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  for (let i = 0; i < workers; i++) fork();
}

if (cluster.isPrimary) {
  primary(parseArgs(process.argv.slice(2)));
} else {
  worker().catch((err) => {
    process.stderr.write(`[worker ${process.pid}] ${err.stack || err}\n`);
    process.exit(1);
  });
}
