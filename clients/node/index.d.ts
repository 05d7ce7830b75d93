// Types for socketio-exporter-reporter (index.js). No dependency on
// socket.io's types: any socket.io >= 4 Server fits `SocketIoServer`.

/** The parts of a socket.io Server the reporter reads. */
export interface SocketIoServer {
  _nsps: Map<string, { name: string; sockets: Map<string, unknown> }>;
  engine?: {
    clientsCount: number;
    clients?: Record<string, { transport?: { name: string } }>;
    on?(event: "connection", listener: (socket: unknown) => void): unknown;
    off?(event: "connection", listener: (socket: unknown) => void): unknown;
  };
  on(event: "new_namespace", listener: (nsp: unknown) => void): unknown;
  off(event: "new_namespace", listener: (nsp: unknown) => void): unknown;
}

/** schemas/report.schema.json */
export interface Report {
  /** 2 with boot and seq (events on), else 1. */
  version?: 1 | 2;
  server_id?: string;
  /** Version 2: the reporter process, a random id chosen at start. */
  boot?: string;
  /** Version 2: the seq of the last event the report includes (0 before the first). */
  seq?: number;
  generated_at?: string;
  clients?: number;
  namespaces: Record<string, number>;
  /** The Engine.IO layer; counters since the reporter started. */
  engine?: EngineCounts;
}

/** schemas/report.schema.json's `engine`. */
export interface EngineCounts {
  polling_clients?: number;
  connections?: number;
  disconnections?: Record<string, number>;
  packets?: { in: number; out: number };
  bytes?: { in: number; out: number };
}

/** One entry of schemas/events.schema.json's `events`. */
export interface ConnectionEvent {
  type: "connect" | "disconnect";
  namespace: string;
  /** Version 2: the event's number within the reporter's boot. Not yet set in eventFilter. */
  seq?: number;
}

/** schemas/events.schema.json: the body of one events push. */
export interface EventBatch {
  version?: 1 | 2;
  server_id?: string;
  boot?: string;
  events: ConnectionEvent[];
}

export interface ReporterOptions {
  /** Which server the counts are from. Unset or "": left out (the exporter's own server). */
  serverId?: string | null;
  /** Write the report to this file atomically every intervalMs. */
  file?: string | null;
  /** The exporter's base URL; reports go to <pushUrl>/push/report. */
  pushUrl?: string | null;
  /** Bearer token for the pushes. Unset or "": no Authorization header. */
  token?: string | null;
  /** Also push connect/disconnect events to <pushUrl>/push/events. Default false. */
  events?: boolean;
  /** Count the engine's connections, closes by reason, packets and bytes, and the
   * long-polling clients, into each report's `engine`. Default true. */
  engine?: boolean;
  /** Default 2000, at least 10. */
  intervalMs?: number;
  /** Per push request, and the bound on stop()'s final flush. Default 5000. */
  timeoutMs?: number;
  /** Default 100. */
  eventFlushMs?: number;
  /** Default 500, at most 10000. */
  eventBatchSize?: number;
  /** Default 10000. */
  maxQueuedEvents?: number;
  /** Default: console.warn, each distinct error at most once a minute. */
  onError?: (err: ReporterError) => void;
  /** Test hook: return false to leave an event out (see README). */
  eventFilter?: (event: ConnectionEvent, socket: unknown) => boolean;
}

export interface ReporterStats {
  reportsSent: number;
  reportsFailed: number;
  reportsDropped: number;
  eventsSent: number;
  eventsFailed: number;
  eventsDropped: number;
  eventsFiltered: number;
  fileWrites: number;
  fileErrors: number;
  fileSkipped: number;
  lastError: string | null;
}

export interface Reporter {
  /** Stops timers and listeners, sends what is buffered and a final report. Never rejects. */
  stop(): Promise<ReporterStats>;
  stats(): ReporterStats;
}

export class ReporterError extends Error {
  kind: "file" | "report" | "events" | "backlog" | "overflow" | "snapshot" | "eventFilter";
  status?: number;
  code?: string;
  dropped?: number;
}

export const DEFAULTS: Readonly<{
  intervalMs: number;
  timeoutMs: number;
  eventFlushMs: number;
  eventBatchSize: number;
  maxQueuedEvents: number;
}>;

export function createReporter(io: SocketIoServer, options: ReporterOptions): Reporter;
export function buildReport(
  io: SocketIoServer,
  options?: { serverId?: string; boot?: string; seq?: number; engine?: EngineCounts },
): Report;
