#!/usr/bin/env node
"use strict";

// A tiny OTLP metrics receiver for scripts/measure-rss: it accepts every export and throws it
// away, so the exporter's OTLP path runs end to end (encode, send, a successful answer)
// without a collector. Node's standard library only.
//   HTTP/protobuf: POST /v1/metrics on an HTTP/1.1 port -> 200, empty
//     ExportMetricsServiceResponse (an empty protobuf body).
//   gRPC: the unary call MetricsService/Export on a cleartext HTTP/2 port (prior knowledge,
//     as tonic speaks to an http:// endpoint) -> an empty message, grpc-status 0.
//   GET /count on the HTTP port: {"http":N,"grpc":M}, the exports received so far.
// Stdout: one line once both listen on 127.0.0.1: {"http":PORT,"grpc":PORT}.

const http = require("node:http");
const http2 = require("node:http2");

const counts = { http: 0, grpc: 0 };

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/count") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(counts));
    return;
  }
  req.resume();
  req.on("end", () => {
    if (req.method === "POST" && req.url === "/v1/metrics") {
      counts.http += 1;
      res.writeHead(200, { "content-type": "application/x-protobuf", "content-length": 0 });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
});

const grpcServer = http2.createServer();
grpcServer.on("stream", (stream, headers) => {
  stream.resume();
  stream.on("end", () => {
    if (headers[":path"] !== "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export") {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" },
        { endStream: true });
      return;
    }
    counts.grpc += 1;
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    // A length-prefixed message: not compressed, length 0 (an empty response).
    stream.end(Buffer.alloc(5));
  });
});

httpServer.listen(0, "127.0.0.1", () => {
  grpcServer.listen(0, "127.0.0.1", () => {
    process.stdout.write(`${JSON.stringify({ http: httpServer.address().port, grpc: grpcServer.address().port })}\n`);
  });
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
