import Link from "next/link";

export default function Home() {
  return (
    <main>
      <h1>Socket.IO on Next.js</h1>
      <p>
        One server for the pages and for Socket.IO, with the namespaces <code>/</code>,{" "}
        <code>/chat</code> and <code>/notifications</code>.
      </p>
      <ul>
        <li>
          <Link href="/dashboard">Dashboard</Link>: connections per namespace
        </li>
        <li>
          <a href="/api/admin/monitoring/dashboard">/api/admin/monitoring/dashboard</a>: the
          same as JSON
        </li>
      </ul>
    </main>
  );
}
