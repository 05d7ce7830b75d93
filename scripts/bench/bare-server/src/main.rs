//! `bare-server BODY_FILE [ADDR]`: serves BODY_FILE's bytes as `/metrics` (text format 0.0.4)
//! on ADDR (default 127.0.0.1:0) with hyper 1 on a single-threaded Tokio runtime, as the
//! exporter does, but with no routing, no rendering and no state. Prints
//! `listening 127.0.0.1:PORT` on stdout once bound. It is the ceiling the exporter's
//! `/metrics` is compared with in scripts/bench-scrape.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const CONTENT_TYPE_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), addr) = (args.next(), args.next()) else {
        eprintln!("usage: bare-server BODY_FILE [ADDR]");
        std::process::exit(2);
    };
    let body = Bytes::from(std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("bare-server: {path}: {e}");
        std::process::exit(2);
    }));
    let addr = addr.unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
            eprintln!("bare-server: cannot listen on {addr}: {e}");
            std::process::exit(1);
        });
        println!("listening {}", listener.local_addr().expect("a local address"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let mut response = Response::new(Full::new(body.clone()));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_0_0_4));
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
