"use strict";

// socketio-exporter reporter: reports a Socket.IO server's real per-namespace
// connection counts to socketio-exporter, for apps that do not run
// @socket.io/admin-ui. Node >= 20, CommonJS, Node built-ins only.
//
// Three channels, each optional (at least one of `file` and `pushUrl`):
//   file     the full report, written atomically every intervalMs
//   pushUrl  the full report, POSTed to <pushUrl>/push/report every intervalMs
//   events   connect/disconnect events, POSTed in batches to <pushUrl>/push/events
// The formats are schemas/report.schema.json and schemas/events.schema.json.
//
// Ordering is what keeps the exporter's drift figure honest. With events on,
// reports and events are version 2: this reporter names itself with a random
// `boot`, numbers every event it sends (`seq`, 1, 2, 3, ...), and each report
// says which seq it was cut at. The exporter then applies only the events after
// a report, holds one that overtook another, and never counts one twice, so a
// correct event stream never disagrees with the next report even if requests
// race. Pushes also go out one at a time, in order, and every report is cut at
// the same synchronous moment as the event buffer, so races are rare anyway.
//
// Nothing here throws into the app after createReporter() returns: failures go
// to onError, and what could not be delivered is dropped and counted (stats()).

const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const https = require("node:https");
const path = require("node:path");

const { version: VERSION } = require("./package.json");

// Version 1 without events; version 2 (boot and seq) orders reports and events.
const UNORDERED_VERSION = 1;
const ORDERED_VERSION = 2;
const USER_AGENT = `socketio-exporter-reporter/${VERSION} node/${process.versions.node}`;

const DEFAULTS = Object.freeze({
  intervalMs: 2000,
  timeoutMs: 5000,
  eventFlushMs: 100,
  eventBatchSize: 500,
  maxQueuedEvents: 10000,
});

// The exporter accepts at most this many events in one POST (events.schema.json).
const MAX_EVENTS_PER_POST = 10000;
// Enough of an error response to show the exporter's {"error": "..."}.
const MAX_ERROR_BODY_BYTES = 4096;
// The default onError logs each distinct error once per this period.
const WARN_REPEAT_MS = 60000;
const WARN_PREFIX = "[socketio-exporter-reporter]";

const KNOWN_OPTIONS = new Set([
  "serverId",
  "file",
  "pushUrl",
  "token",
  "events",
  "engine",
  "intervalMs",
  "timeoutMs",
  "eventFlushMs",
  "eventBatchSize",
  "maxQueuedEvents",
  "onError",
  "eventFilter",
]);

/**
 * A failure of one channel. `kind` is "file", "report" (push of a report),
 * "events" (push of an event batch), "backlog" (queued pushes dropped because
 * the exporter is slower than the app), "overflow" (events dropped because
 * maxQueuedEvents was reached), "snapshot" (reading the counts failed) or
 * "eventFilter" (the test hook threw). `status` is the HTTP status when the
 * exporter answered, `code` the system error code (ECONNREFUSED, ...) or
 * "ETIMEDOUT", `dropped` how many events were lost with this failure.
 */
class ReporterError extends Error {
  constructor(kind, message, { cause, status, code, dropped } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "ReporterError";
    this.kind = kind;
    if (status !== undefined) this.status = status;
    if (code !== undefined) this.code = code;
    if (dropped !== undefined) this.dropped = dropped;
  }
}

/**
 * The full report of one Socket.IO server, as a plain object in the format of
 * schemas/report.schema.json. Exported so that an app can also serve it from
 * its own endpoint (for the exporter's http_json source). With `boot` (and
 * `seq`, the last event the counts include) it is a version 2 report.
 */
function buildReport(io, { serverId, boot, seq, engine } = {}) {
  // Count io._nsps, not io.sockets: io.sockets is only the root namespace "/"
  // (io.sockets.sockets.size missing /chat is the bug this project started
  // from). io._nsps is the server's map of every concrete namespace: static
  // ones, the children that dynamic namespaces (io.of(/regex/), io.of(fn))
  // create on first connection, and admin-ui's own if it is instrumented.
  // Parent namespaces of dynamic ones are not in it and hold no sockets.
  // admin-ui's server_stats reads the same map; it is not public API, so
  // createReporter() checks that it exists.
  const namespaces = Object.create(null); // a namespace may be named "/__proto__"
  for (const [name, nsp] of io._nsps) {
    namespaces[name] = nsp.sockets.size;
  }
  const report = { version: boot ? ORDERED_VERSION : UNORDERED_VERSION };
  if (serverId) report.server_id = serverId;
  if (boot) {
    report.boot = boot;
    report.seq = seq || 0;
  }
  report.generated_at = new Date().toISOString();
  const clients = io.engine ? io.engine.clientsCount : undefined;
  if (Number.isSafeInteger(clients) && clients >= 0) report.clients = clients;
  report.namespaces = namespaces;
  if (engine) report.engine = engine;
  return report;
}

// Close reasons kept apart at most; any further one is counted as "other".
// Engine.IO has five (transport close, transport error, ping timeout, forced
// close, parse error), so this only bounds a misbehaving engine.
const MAX_CLOSE_REASONS = 16;

/**
 * Counts io.engine's own events the way admin-ui's aggregatedEvents does:
 * connections, closes by reason, and packets and bytes of data each way, all
 * since the reporter started. snapshot() adds the long-polling clients and
 * gives the report's `engine` object, or undefined while io.engine does not
 * exist (no engine: unknown, not zero).
 */
function watchEngine(io) {
  const totals = {
    connections: 0,
    disconnections: Object.create(null),
    packets: { in: 0, out: 0 },
    bytes: { in: 0, out: 0 },
  };
  let reasons = 0;
  let engine = null;
  const count = (direction, data) => {
    if (!data) return;
    totals.packets[direction] += 1;
    totals.bytes[direction] += Buffer.byteLength(data);
  };
  const onPacketIn = ({ data }) => count("in", data);
  const onPacketOut = ({ data }) => count("out", data);
  function onClose(reason) {
    let key = typeof reason === "string" ? reason : "other";
    if (!(key in totals.disconnections)) {
      if (reasons >= MAX_CLOSE_REASONS) key = "other";
      else reasons += 1;
    }
    totals.disconnections[key] = (totals.disconnections[key] || 0) + 1;
  }
  function onConnection(socket) {
    totals.connections += 1;
    socket.on("packet", onPacketIn);
    socket.on("packetCreate", onPacketOut);
    socket.once("close", onClose);
  }
  function start() {
    if (engine || !io.engine || typeof io.engine.on !== "function") return;
    engine = io.engine;
    engine.on("connection", onConnection);
  }
  start();
  // io.engine appears once the server is attached to an HTTP server.
  if (!engine) process.nextTick(start);
  return {
    snapshot() {
      start();
      if (!engine) return undefined;
      let polling = 0;
      for (const socket of Object.values(engine.clients || {})) {
        if (socket.transport && socket.transport.name === "polling") polling += 1;
      }
      return {
        polling_clients: polling,
        connections: totals.connections,
        disconnections: { ...totals.disconnections },
        packets: { ...totals.packets },
        bytes: { ...totals.bytes },
      };
    },
    stop() {
      if (engine) engine.off("connection", onConnection);
    },
  };
}

/** onError's default: console.warn, each distinct error at most once a minute. */
function rateLimitedWarn(repeatMs = WARN_REPEAT_MS) {
  const seen = new Map(); // key -> { last, suppressed }
  return (err) => {
    // Distinct = same channel and same cause; not the message, which
    // carries counts that change from one failure to the next.
    const key = `${err.kind}:${err.status || err.code || ""}`;
    const now = Date.now();
    const entry = seen.get(key);
    if (entry && now - entry.last < repeatMs) {
      entry.suppressed += 1;
      return;
    }
    const repeats = entry && entry.suppressed > 0 ? ` (and ${entry.suppressed} more like it since the last warning)` : "";
    // Bounded: distinct keys are few in practice, but never let them pile up.
    if (!entry && seen.size >= 100) seen.clear();
    seen.set(key, { last: now, suppressed: 0 });
    console.warn(`${WARN_PREFIX} ${err.message}${repeats}`);
  };
}

function optionalString(name, value) {
  // An unset environment variable is undefined and an empty one is "": both
  // mean "not set", so `serverId: process.env.POD_NAME` does the right thing.
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") {
    throw new TypeError(`createReporter: ${name} must be a string, got ${typeof value}`);
  }
  return value;
}

function integerOption(options, name, min, max) {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name];
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`createReporter: ${name} must be an integer between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}

function functionOption(options, name) {
  const value = options[name];
  if (value !== undefined && value !== null && typeof value !== "function") {
    throw new TypeError(`createReporter: ${name} must be a function`);
  }
  return value || undefined;
}

function parsePushUrl(value) {
  let base;
  try {
    base = new URL(value);
  } catch {
    throw new TypeError(`createReporter: pushUrl must be an http:// or https:// URL, got ${JSON.stringify(value)}`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`createReporter: pushUrl must be an http:// or https:// URL, got ${JSON.stringify(value)}`);
  }
  if (base.search || base.hash) {
    throw new TypeError("createReporter: pushUrl must not have a query or fragment");
  }
  const at = (route) => {
    const url = new URL(base.href);
    url.pathname = `${base.pathname.replace(/\/+$/, "")}${route}`;
    return url;
  };
  // For messages: never show credentials that may be in the URL.
  const display = (url) => {
    const shown = new URL(url.href);
    shown.username = "";
    shown.password = "";
    return shown.href;
  };
  const report = at("/push/report");
  const events = at("/push/events");
  return { report, events, reportShown: display(report), eventsShown: display(events) };
}

function validate(io, options) {
  if (!io || !(io._nsps instanceof Map) || typeof io.on !== "function") {
    throw new TypeError("createReporter: the first argument must be a socket.io Server (io._nsps not found; socket.io >= 4 is required)");
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError("createReporter: options must be an object");
  }
  const unknown = Object.keys(options).filter((key) => !KNOWN_OPTIONS.has(key));
  if (unknown.length > 0) {
    throw new TypeError(`createReporter: unknown option${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}`);
  }

  const cfg = {
    serverId: optionalString("serverId", options.serverId),
    token: optionalString("token", options.token),
    file: undefined,
    push: undefined,
    events: false,
    intervalMs: integerOption(options, "intervalMs", 10, 2 ** 31 - 1),
    timeoutMs: integerOption(options, "timeoutMs", 1, 2 ** 31 - 1),
    eventFlushMs: integerOption(options, "eventFlushMs", 1, 2 ** 31 - 1),
    eventBatchSize: integerOption(options, "eventBatchSize", 1, MAX_EVENTS_PER_POST),
    maxQueuedEvents: integerOption(options, "maxQueuedEvents", 1, 2 ** 31 - 1),
    onError: functionOption(options, "onError"),
    eventFilter: functionOption(options, "eventFilter"),
  };

  const file = optionalString("file", options.file);
  if (file !== undefined) cfg.file = path.resolve(file);
  const pushUrl = optionalString("pushUrl", options.pushUrl);
  if (pushUrl !== undefined) cfg.push = parsePushUrl(pushUrl);
  if (!cfg.file && !cfg.push) {
    throw new TypeError("createReporter: set file, pushUrl or both");
  }

  if (options.events !== undefined && typeof options.events !== "boolean") {
    throw new TypeError("createReporter: events must be a boolean");
  }
  cfg.events = options.events === true;
  if (options.engine !== undefined && typeof options.engine !== "boolean") {
    throw new TypeError("createReporter: engine must be a boolean");
  }
  cfg.engine = options.engine !== false;
  if (cfg.events && !cfg.push) {
    throw new TypeError("createReporter: events: true needs pushUrl (events are only pushed)");
  }
  if (cfg.eventFilter && !cfg.events) {
    throw new TypeError("createReporter: eventFilter needs events: true");
  }
  if (cfg.token && !cfg.push) {
    throw new TypeError("createReporter: token needs pushUrl");
  }
  return cfg;
}

let instances = 0;

/**
 * Starts reporting `io`'s counts. Reports once at once, then every
 * intervalMs. See README.md for every option. Throws a TypeError for invalid
 * options, and never throws afterwards.
 *
 * Returns { stop(): Promise<stats>, stats(): stats }.
 */
function createReporter(io, options = {}) {
  const cfg = validate(io, options);
  const instance = ++instances;

  const counters = {
    reportsSent: 0,
    reportsFailed: 0,
    reportsDropped: 0,
    eventsSent: 0,
    eventsFailed: 0,
    eventsDropped: 0,
    eventsFiltered: 0,
    fileWrites: 0,
    fileErrors: 0,
    fileSkipped: 0,
    lastError: null,
  };

  // The event order (see the top of this file): this reporter's process for the
  // exporter, and the seq of the last event numbered.
  const boot = cfg.events ? crypto.randomUUID() : undefined;
  let seq = 0;

  const engine = cfg.engine ? watchEngine(io) : null;

  const onError = cfg.onError || rateLimitedWarn();
  const fail = (err) => {
    counters.lastError = err.message;
    try {
      onError(err);
    } catch {
      // The app's handler must not break the reporter either.
    }
  };

  let stopped = false;
  // While stop() flushes, in-flight requests keep the process alive; before
  // that they never do (see the "socket" handler in post()).
  let holdProcess = false;

  // ---- push: one request at a time, in order -----------------------------

  const agent = cfg.push
    ? new (cfg.push.report.protocol === "https:" ? https : http).Agent({ keepAlive: true, maxSockets: 1 })
    : null;
  /** Items waiting to be sent: { kind: "events", events } | { kind: "report", report }. */
  let queue = [];
  let queuedEvents = 0; // events in `queue` (not counting the one in flight)
  let sending = false;
  let inFlightSocket = null;
  let drainWaiters = [];

  let buffer = []; // events not yet cut into a batch
  let flushTimer = null;
  let overflowing = false;

  function post(url, payload) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        inFlightSocket = null;
        fn(value);
      };
      const headers = {
        "content-type": "application/json",
        "content-length": payload.length,
        "user-agent": USER_AGENT,
      };
      if (cfg.token) headers.authorization = `Bearer ${cfg.token}`;
      const mod = url.protocol === "https:" ? https : http;
      const req = mod.request(url, { method: "POST", headers, agent }, (res) => {
        const chunks = [];
        let size = 0;
        res.on("data", (chunk) => {
          if (size < MAX_ERROR_BODY_BYTES) {
            chunks.push(chunk);
            size += chunk.length;
          }
        });
        res.on("end", () => {
          const body = Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES).toString("utf8");
          settle(resolve, { status: res.statusCode, body });
        });
        res.on("error", (err) => settle(reject, err));
      });
      const deadline = setTimeout(() => {
        const err = new Error(`timed out after ${cfg.timeoutMs} ms`);
        err.code = "ETIMEDOUT";
        settle(reject, err);
        req.destroy(err);
      }, cfg.timeoutMs);
      deadline.unref();
      req.on("socket", (socket) => {
        // A monitoring side channel must not keep the app's process alive.
        inFlightSocket = socket;
        if (holdProcess) socket.ref();
        else socket.unref();
      });
      req.on("error", (err) => {
        err.reusedSocket = req.reusedSocket;
        settle(reject, err);
      });
      req.end(payload);
    });
  }

  async function postWithRetry(url, payload) {
    try {
      return await post(url, payload);
    } catch (err) {
      // The exporter may close an idle keep-alive connection just as we reuse
      // it; retry once on a fresh connection, as Node's docs recommend.
      if (err.reusedSocket && err.code === "ECONNRESET" && !stopped) return post(url, payload);
      throw err;
    }
  }

  function describeResponse(status, body) {
    let detail = "";
    try {
      const parsed = JSON.parse(body);
      if (parsed && typeof parsed.error === "string") detail = parsed.error;
    } catch {
      detail = body.trim().slice(0, 200);
    }
    return detail ? `HTTP ${status}: ${detail}` : `HTTP ${status}`;
  }

  async function send(item) {
    const isReport = item.kind === "report";
    const url = isReport ? cfg.push.report : cfg.push.events;
    const shown = isReport ? cfg.push.reportShown : cfg.push.eventsShown;
    let body;
    if (isReport) {
      body = item.report;
    } else {
      body = { version: ORDERED_VERSION };
      if (cfg.serverId) body.server_id = cfg.serverId;
      body.boot = boot;
      body.events = item.events;
    }
    const what = isReport ? "report" : `${item.events.length} event${item.events.length === 1 ? "" : "s"}`;
    const lost = () => {
      if (isReport) counters.reportsFailed += 1;
      else counters.eventsFailed += item.events.length;
    };
    try {
      const payload = Buffer.from(JSON.stringify(body), "utf8");
      const { status, body: answer } = await postWithRetry(url, payload);
      if (status >= 200 && status < 300) {
        if (isReport) counters.reportsSent += 1;
        else counters.eventsSent += item.events.length;
        return;
      }
      lost();
      fail(
        new ReporterError(item.kind, `push ${what} to ${shown}: ${describeResponse(status, answer)}`, {
          status,
          dropped: isReport ? undefined : item.events.length,
        }),
      );
    } catch (err) {
      lost();
      fail(
        new ReporterError(item.kind, `push ${what} to ${shown}: ${err.message}`, {
          cause: err,
          code: err.code,
          dropped: isReport ? undefined : item.events.length,
        }),
      );
    }
  }

  async function pump() {
    if (sending) return;
    sending = true;
    try {
      while (queue.length > 0) {
        const item = queue.shift();
        if (item.kind === "events") queuedEvents -= item.events.length;
        await send(item); // never rejects
      }
    } finally {
      sending = false;
      if (queuedEvents < cfg.maxQueuedEvents) overflowing = false;
      const waiters = drainWaiters;
      drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  function drained() {
    if (!sending && queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => drainWaiters.push(resolve));
  }

  function enqueue(item) {
    queue.push(item);
    if (item.kind === "events") queuedEvents += item.events.length;
    pump().catch(() => {}); // pump() cannot reject; belt and braces
  }

  function enqueueReport(report) {
    // A report that is still waiting when the next one is due is obsolete, and
    // so is every batch queued before it: the newer report is authoritative.
    // This bounds the queue to about one interval of events when the exporter
    // is slower than the app; what it drops is counted and reported.
    const older = queue.findIndex((item) => item.kind === "report");
    if (older !== -1) {
      const dropped = queue.slice(0, older + 1);
      queue = queue.slice(older + 1);
      let events = 0;
      for (const item of dropped) if (item.kind === "events") events += item.events.length;
      queuedEvents -= events;
      counters.reportsDropped += 1;
      counters.eventsDropped += events;
      fail(
        new ReporterError(
          "backlog",
          `push to ${cfg.push.reportShown}: the exporter is not keeping up; dropped an unsent report and ${events} unsent events`,
          { dropped: events },
        ),
      );
    }
    enqueue({ kind: "report", report });
  }

  // ---- events ------------------------------------------------------------

  function cutEvents() {
    if (flushTimer) {
      clearTimeout(flushTimer);
      flushTimer = null;
    }
    if (buffer.length === 0) return;
    const events = buffer;
    buffer = [];
    enqueue({ kind: "events", events });
  }

  function onEvent(type, socket) {
    try {
      if (stopped) return;
      const event = { type, namespace: socket.nsp.name };
      if (cfg.eventFilter) {
        let keep = true;
        try {
          keep = cfg.eventFilter(event, socket);
        } catch (err) {
          fail(new ReporterError("eventFilter", `eventFilter threw: ${err && err.message}`, { cause: err }));
        }
        if (!keep) {
          counters.eventsFiltered += 1;
          return;
        }
      }
      if (buffer.length + queuedEvents >= cfg.maxQueuedEvents) {
        counters.eventsDropped += 1;
        if (!overflowing) {
          overflowing = true;
          fail(
            new ReporterError(
              "overflow",
              `push events to ${cfg.push.eventsShown}: ${cfg.maxQueuedEvents} events are waiting to be sent; dropping new ones until the queue drains (the next report corrects the counts)`,
              { dropped: 1 },
            ),
          );
        }
        return;
      }
      // Numbered only once it is sent for sure: a filtered or dropped event
      // leaves no gap, and the next report corrects the counts.
      seq += 1;
      event.seq = seq;
      buffer.push(event);
      if (buffer.length >= cfg.eventBatchSize) {
        cutEvents();
      } else if (!flushTimer) {
        flushTimer = setTimeout(cutEvents, cfg.eventFlushMs);
        flushTimer.unref();
      }
    } catch (err) {
      fail(new ReporterError("events", `recording a ${type} event failed: ${err && err.message}`, { cause: err }));
    }
  }

  // One shared listener per kind, so stop() can remove them again. Socket.IO
  // calls "disconnect" listeners with `this` bound to the socket, after the
  // socket has left nsp.sockets, so the event and the counts agree.
  function onDisconnect() {
    onEvent("disconnect", this);
  }
  function onConnection(socket) {
    try {
      // An app "connection" handler that ran before this one may already
      // have disconnected the socket (its "disconnect" fired unseen): then
      // neither event is sent, and the counts stay right.
      if (!socket.connected) return;
      socket.on("disconnect", onDisconnect);
    } catch (err) {
      fail(new ReporterError("events", `watching a socket failed: ${err && err.message}`, { cause: err }));
      return;
    }
    onEvent("connect", socket);
  }

  const attached = new WeakSet(); // WeakSet: removed dynamic children must not leak
  function attach(nsp) {
    try {
      if (stopped || attached.has(nsp)) return;
      attached.add(nsp);
      nsp.on("connection", onConnection);
      // Sockets connected before the reporter started are in the first
      // report; their disconnects must still arrive as events.
      for (const socket of nsp.sockets.values()) socket.on("disconnect", onDisconnect);
    } catch (err) {
      fail(new ReporterError("events", `watching namespace ${nsp && nsp.name} failed: ${err && err.message}`, { cause: err }));
    }
  }

  function detach() {
    try {
      io.off("new_namespace", attach);
      for (const nsp of io._nsps.values()) {
        nsp.off("connection", onConnection);
        for (const socket of nsp.sockets.values()) socket.off("disconnect", onDisconnect);
      }
    } catch {
      // Nothing left to do about it while stopping.
    }
  }

  // ---- file --------------------------------------------------------------

  // Hidden and not ending in .json, so a directory watcher can ignore it;
  // in the same directory, so the rename is atomic.
  const tmpFile = cfg.file
    ? path.join(path.dirname(cfg.file), `.${path.basename(cfg.file)}.${process.pid}-${instance}.tmp`)
    : null;
  let fileWrite = null; // the write in progress

  async function writeReportFile(report) {
    const data = `${JSON.stringify(report)}\n`;
    let handle;
    try {
      handle = await fs.promises.open(tmpFile, "w", 0o644);
      try {
        // No fsync: the rename alone makes the swap atomic for readers, and
        // durability across a crash does not matter for a report that goes
        // stale in seconds (a torn file after power loss is just invalid).
        await handle.writeFile(data, "utf8");
      } finally {
        await handle.close();
      }
      await fs.promises.rename(tmpFile, cfg.file);
      counters.fileWrites += 1;
    } catch (err) {
      counters.fileErrors += 1;
      fs.promises.unlink(tmpFile).catch(() => {});
      fail(new ReporterError("file", `write report file ${cfg.file}: ${err.message}`, { cause: err, code: err.code }));
    }
  }

  function startFileWrite(report) {
    if (fileWrite) {
      // A slow volume: skip this tick rather than pile up writes. If it
      // stays stuck, the file ages and the exporter marks it stale.
      counters.fileSkipped += 1;
      return;
    }
    fileWrite = writeReportFile(report).finally(() => {
      fileWrite = null;
    });
  }

  // ---- ticks -------------------------------------------------------------

  function snapshot() {
    try {
      // Synchronous with the event buffer's cut: the report includes exactly
      // the events numbered so far.
      const engineCounts = engine ? engine.snapshot() : undefined;
      return buildReport(io, { serverId: cfg.serverId, boot, seq, engine: engineCounts });
    } catch (err) {
      fail(new ReporterError("snapshot", `reading the Socket.IO counts failed: ${err && err.message}`, { cause: err }));
      return null;
    }
  }

  function tick() {
    try {
      const report = snapshot();
      if (!report) return;
      if (cfg.push) {
        // The cut: every buffered event happened before this snapshot, so it
        // goes out before the report (see the top of this file).
        if (cfg.events) cutEvents();
        enqueueReport(report);
      }
      if (cfg.file) startFileWrite(report);
    } catch (err) {
      fail(new ReporterError("snapshot", `reporting failed: ${err && err.message}`, { cause: err }));
    }
  }

  if (cfg.events) {
    for (const nsp of io._nsps.values()) attach(nsp);
    // Namespaces created later, dynamic children included, announce
    // themselves here (on the root namespace; io.on proxies to it).
    io.on("new_namespace", attach);
  }
  tick();
  const interval = setInterval(tick, cfg.intervalMs);
  interval.unref();

  // ---- stop --------------------------------------------------------------

  let stopping = null;
  function stop() {
    if (stopping) return stopping;
    stopped = true;
    holdProcess = true;
    clearInterval(interval);
    if (cfg.events) detach();

    const report = snapshot();
    if (engine) engine.stop();
    if (cfg.push) {
      if (cfg.events) cutEvents();
      if (report) enqueueReport(report);
      if (inFlightSocket) inFlightSocket.ref();
    }
    const fileDone = cfg.file
      ? (async () => {
          if (fileWrite) await fileWrite;
          if (report) await writeReportFile(report);
        })()
      : Promise.resolve();

    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(resolve, cfg.timeoutMs);
    });
    stopping = Promise.race([Promise.all([drained(), fileDone]), deadline]).then(() => {
      clearTimeout(timer);
      // Whatever did not go out in time is lost; count it.
      for (const item of queue) {
        if (item.kind === "report") counters.reportsDropped += 1;
        else counters.eventsDropped += item.events.length;
      }
      queue = [];
      queuedEvents = 0;
      if (agent) agent.destroy();
      return { ...counters };
    });
    return stopping;
  }

  return {
    stop,
    stats: () => ({ ...counters }),
  };
}

module.exports = { createReporter, buildReport, ReporterError, DEFAULTS };
