export const metadata = {
  title: "Socket.IO on Next.js",
  description: "A Next.js app with a Socket.IO custom server, watched by socketio-exporter",
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
