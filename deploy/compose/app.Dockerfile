# syntax=docker/dockerfile:1
# The demo Socket.IO app (tests/app/demo.js): namespaces /, /chat and /notifications,
# instrumented with @socket.io/admin-ui, with simulated users that come and go.
# Build context: the repository root (see docker-compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
COPY tests/app/package.json tests/app/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY tests/app/ ./
# The image's "node" user.
USER 1000:1000
# demo.js binds 127.0.0.1 only: the exporter reaches it over the shared loopback
# interface (network_mode "service:app"), as a sidecar does inside a Kubernetes pod.
EXPOSE 3000
ENTRYPOINT ["node", "demo.js", "--port", "3000"]
