import { hostname } from "node:os";
import { socketStats } from "../../../../../lib/socketio";

export const dynamic = "force-dynamic";

// {"serverId": ..., "socketio": {"engineClients": N, "namespaces": {"/": N, ...}}},
// for the dashboard and for socketio-exporter's http_json source.
export function GET() {
  const stats = socketStats();
  if (stats === null) {
    // Unknown is not 0: an error takes the exporter's source down instead.
    return Response.json({ error: "Socket.IO is not running in this process" }, { status: 503 });
  }
  // serverId: admin-ui's default, the hostname (the pod name in Kubernetes).
  return Response.json(
    { serverId: hostname(), socketio: stats },
    { headers: { "Cache-Control": "no-store" } },
  );
}
