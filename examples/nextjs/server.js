"use strict";

// The custom server: one HTTP server for Next.js and Socket.IO, with admin-ui
// instrumented for socketio-exporter.
//
//   PORT=3000 SOCKETIO_ADMIN_PASSWORD=... npm run dev     development (hot reload)
//   npm run build && PORT=3000 SOCKETIO_ADMIN_PASSWORD=... npm start
//
// HOST is the address to bind (default 127.0.0.1; PORT=0 picks a free port).
// The line "> Ready on http://HOST:PORT (mode)" says it is serving.

process.env.NEXT_TELEMETRY_DISABLED = "1";

const http = require("node:http");
const bcrypt = require("bcryptjs");
const next = require("next");
const { Server } = require("socket.io");
const { instrument } = require("@socket.io/admin-ui");
const { setSocketServer } = require("./lib/socketio");

const dev = process.env.NODE_ENV !== "production";
const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 3000);
const password = process.env.SOCKETIO_ADMIN_PASSWORD;
if (!password) {
  console.error("SOCKETIO_ADMIN_PASSWORD must be set: the admin-ui password socketio-exporter logs in with");
  process.exit(2);
}

// Requests wait for Next.js to be ready; Socket.IO serves from the start.
let ready;
const handler = new Promise((resolve) => {
  ready = resolve;
});
const server = http.createServer((req, res) => {
  handler.then((handle) => handle(req, res));
});

const io = new Server(server, {
  // Next.js answers its own WebSocket upgrades (the dev server's hot reload);
  // engine.io must not close the ones it does not handle.
  destroyUpgrade: false,
});
const chat = io.of("/chat");
chat.on("connection", (socket) => {
  socket.on("message", (text) => chat.emit("message", text));
});
io.of("/notifications");

// admin-ui in production mode (only the cheap server_stats broadcast) and
// read-only; admin-ui wants the password as a bcrypt hash.
instrument(io, {
  auth: { type: "basic", username: "admin", password: bcrypt.hashSync(password, 10) },
  mode: "production",
  readonly: true,
});

setSocketServer(io);

server.listen(port, host, async () => {
  const { port: bound } = server.address();
  const app = next({ dev, dir: __dirname, hostname: host, port: bound, httpServer: server });
  await app.prepare();
  ready(app.getRequestHandler());
  console.log(`> Ready on http://${host}:${bound} (${dev ? "development" : "production"})`);
});
