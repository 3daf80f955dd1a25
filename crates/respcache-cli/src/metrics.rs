//! `serve --metrics ADDR`: the HTTP layer's metrics (see
//! `respcache_http::metrics`) in Prometheus text form at `GET /metrics`,
//! served by a small hyper server of our own on `ADDR`.
//!
//! The recorder is installed process-wide before the client is built (the
//! client registers its metric handles when it is built). Histograms get
//! buckets (so they render as Prometheus histograms, not summaries), and
//! the recorder's upkeep runs every few seconds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use respcache_http::metrics::{ORIGIN_SECONDS, STORE_SECONDS};
use tokio::net::TcpListener;

use crate::failure::{CliResult, Failure};

/// The Prometheus text exposition format's content type.
const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4";

/// How often the recorder's upkeep (histogram windows) runs.
const UPKEEP: Duration = Duration::from_secs(5);

/// Cache calls take microseconds (SQLite, memory) to a command timeout
/// (servers); origin answers, milliseconds to a minute.
const STORE_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];
const ORIGIN_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Installs the Prometheus recorder and serves it on `addr`; returns the
/// address taken (port 0: any free port). The server runs until the
/// process ends.
pub(crate) async fn serve(addr: SocketAddr) -> CliResult<SocketAddr> {
    let handle = install()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::new(format!("--metrics: cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("--metrics: cannot listen on {addr}: {e}")))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    crate::note(&format!("--metrics: accepting a connection failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = handle.clone();
            let service = service_fn(move |req| answer(handle.clone(), req));
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

fn install() -> CliResult<PrometheusHandle> {
    let bad = |e: &dyn std::fmt::Display| Failure::new(format!("--metrics: {e}"));
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(STORE_SECONDS.to_owned()), &STORE_BUCKETS)
        .map_err(|e| bad(&e))?
        .set_buckets_for_metric(Matcher::Full(ORIGIN_SECONDS.to_owned()), &ORIGIN_BUCKETS)
        .map_err(|e| bad(&e))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| bad(&e))?;
    Ok(handle)
}

async fn answer(
    handle: PrometheusHandle,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, handle.render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: try /metrics\n".to_owned(),
        ),
    };
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    Ok(response)
}
