//! End-to-end tests: the real exporter binary against the real Socket.IO app with
//! admin-ui, real socket.io-client clients, and real promtool.
//!
//! Every test runs its own app, clients and exporter on ephemeral ports.

// The support module is shared by the test modules of this one crate, so `pub` is the
// natural visibility there.
#![allow(unreachable_pub)]

mod admin;
mod cli;
mod cluster;
mod dashboard;
mod engine;
mod events;
mod faults;
mod hostile;
mod nextjs;
mod otlp;
mod reload;
mod sources;
mod support;
mod web;
