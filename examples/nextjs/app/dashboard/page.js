import { socketStats } from "../../lib/socketio";

// Counts at request time, never from the build.
export const dynamic = "force-dynamic";

export default function Dashboard() {
  const stats = socketStats();
  return (
    <main>
      <h1>Connections</h1>
      {stats === null ? (
        <p>Socket.IO is not running in this process.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>namespace</th>
              <th>sockets</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(stats.namespaces).map(([name, count]) => (
              <tr key={name}>
                <td>{name}</td>
                <td>{count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
