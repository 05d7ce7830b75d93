"use strict";

// The app's handle on its Socket.IO server, for API routes and pages.
//
// server.js creates the server once. Next.js bundles route and page modules
// separately from server.js, and in development it re-evaluates them on every
// save, so a module-level variable set by server.js would be empty there (or
// become empty after a reload) and the dashboard would say 0. A property of
// globalThis is shared by both and survives the reloads.
const HANDLE = Symbol.for("socketio-exporter.nextjs-example.io");

function setSocketServer(io) {
  globalThis[HANDLE] = io;
}

/**
 * Sockets per namespace, over every namespace in io._nsps: "/", /chat,
 * /notifications, admin-ui's /admin and any dynamic child namespace.
 * (io.sockets.sockets.size counts "/" only.) null when there is no server:
 * unknown, which is not 0.
 */
function socketStats() {
  const io = globalThis[HANDLE];
  if (!io) return null;
  const namespaces = {};
  io._nsps.forEach((nsp, name) => {
    namespaces[name] = nsp.sockets.size;
  });
  return { engineClients: io.engine.clientsCount, namespaces };
}

module.exports = { setSocketServer, socketStats };
