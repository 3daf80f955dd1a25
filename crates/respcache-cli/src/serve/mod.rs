//! `serve`: a caching reverse proxy in front of one upstream —
//! [`respcache_http::Proxy`] behind a listener — so any HTTP client in any
//! language gets the cache.
//!
//! The request-level work — forwarding, caching, screening, bodies — is
//! [`respcache_http::Proxy`]'s (see its documentation: every method
//! forwarded, hop-by-hop headers dropped, redirects passed back, answers
//! cached by the HTTP rules alone, private or with `--shared` shared, a
//! `Cache-Status` on each, `502`/`504` for a failing upstream, paths kept
//! under the upstream's base path, `Host`/`CONNECT`/`OPTIONS *` answered
//! here, GET/HEAD request bodies read whole within `--max-body-size`,
//! `--body-timeout` and the shared `--buffer-budget`, everything else
//! streamed). The command adds the listener and the connections.
//!
//! Connections ([`limits`], [`watch`]): at most `--max-connections` (1024)
//! at once, the rest wait in the listen backlog; a request head must arrive
//! within `--header-timeout` (10 s) of its first byte; a connection idle for
//! `--idle-timeout` (60 s), or whose client leaves an answer unread that
//! long, is closed. The open-file limit is raised to its hard limit and the
//! default cap lowered to fit it; failed accepts (out of file descriptors)
//! back off and are reported at most every 10 s.
//!
//! No message prints a password from the command line's URLs or a
//! secret-looking query parameter ([`crate::redact`]).

mod backend_url;
mod limits;
mod shutdown;
mod watch;

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use respcache_http::proxy::UpstreamError;
use respcache_http::tower::ServiceExt;
use respcache_http::{Proxy, ResponseBody};
use tokio::net::TcpListener;

use self::limits::{AcceptBackoff, Slots};
use self::shutdown::Shutdown;
use self::watch::{InFlight, Timeouts, Tracked, Watch, Watched};
use crate::args::ServeArgs;
use crate::failure::{CliResult, Failure};
use crate::location::Location;

/// How long open connections may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs the proxy until SIGINT (Ctrl-C) or SIGTERM, then lets open
/// connections finish (up to 10 s) and returns.
///
/// The backend is connected by the client itself: a backend that cannot be
/// reached at start (a Redis that is down) does not stop the proxy — it
/// starts degraded, passes requests to the upstream, and connects in the
/// background (issue 16: a cache failure never fails a request).
pub(crate) async fn run(
    location: &Location,
    args: &ServeArgs,
    out: &mut impl Write,
) -> CliResult<()> {
    let builder = Proxy::builder(&args.upstream)
        // The message names the URL, redacted: `upstream "…": why`.
        .map_err(|e| Failure::new(format!("--{}", e.message())))?;
    let shutdown = Shutdown::install()?;
    // Before the client: it registers its metrics when built.
    let metrics = match args.metrics {
        Some(addr) => format!(
            ", metrics http://{}/metrics",
            crate::metrics::serve(addr).await?
        ),
        None => String::new(),
    };
    let retention = location.retention;
    let cache_name = location.cache.as_str().to_owned();
    let timeout = args.timeout;
    let url = backend_url::for_serve(location.backend_url())
        .map_err(|e| Failure::new(format!("{location}: {e}")))?;
    let proxy = builder
        .shared(args.shared)
        .max_body_size(args.max_body_size)
        .body_timeout(args.body_timeout)
        .buffer_budget(args.buffer_budget)
        .timeout(timeout)
        .client(move |client| {
            let client = client
                .cache_name(cache_name)
                .connect_timeout(timeout.min(Duration::from_secs(10)));
            match retention {
                Some(retention) => client.retention(retention),
                None => client,
            }
        })
        .build_connecting(move || {
            let url = url.clone();
            async move { respcache::connect(&url).await }
        })
        .await
        .map_err(|e| Failure::new(format!("{location}: {e}")))?;
    if let Some(why) = proxy.client().store_error() {
        crate::note(&format!(
            "{location}: the cache cannot be opened yet ({why}); requests go to the upstream while it is retried"
        ));
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.listen)))?;
    let start_line = format!(
        "respcache serve: listening on http://{local}, upstream {}, {location}{metrics}",
        proxy.upstream()
    );
    writeln!(out, "{}", crate::redact::scrub(&start_line))?;
    out.flush()?;

    let timeouts = Timeouts {
        header: args.header_timeout,
        idle: args.idle_timeout,
    };
    let graceful = GracefulShutdown::new();
    let mut server = auto::Builder::new(TokioExecutor::new());
    // hyper's own HTTP/1 limit, behind the watch (which also covers the
    // first bytes read to tell HTTP/1 from HTTP/2, and HTTP/2 itself): it
    // counts from the end of the previous answer, so never below the idle
    // limit.
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(args.header_timeout.max(args.idle_timeout));
    let (max_connections, mismatch) = limits::connection_cap(args.max_connections);
    if let Some(note) = mismatch {
        crate::note(&note);
    }
    let slots = Slots::new(max_connections);
    let mut backoff = AcceptBackoff::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.take() => slot,
            () = &mut stop => break,
        };
        let Some(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff.succeeded();
                stream
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, go on.
                let (report, wait) = backoff.failed(&e);
                if let Some(report) = report {
                    crate::note(&report);
                }
                drop(slot);
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut stop => break,
                }
            }
        };
        let watch = Watch::new(timeouts);
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&watch)));
        let proxy = proxy.clone();
        let requests = Arc::clone(&watch);
        let service = service_fn(move |req| handle(proxy.clone(), req, requests.request()));
        let conn = graceful.watch(server.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            let _slot = slot;
            // A client that goes away mid-request is not an error of ours;
            // a connection past its time limit is dropped (closed).
            tokio::select! {
                _ = conn => {}
                () = watch.expired() => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        crate::note(&format!(
            "connections still open after {DRAIN:?} were closed"
        ));
    }
    if tokio::time::timeout(DRAIN, proxy.client().wait_background())
        .await
        .is_err()
    {
        crate::note("background revalidations still running were abandoned");
    }
    Ok(())
}

/// Answers one request through the proxy, noting upstream failures; the
/// answer's body counts as in flight until it is sent.
async fn handle(
    proxy: Proxy,
    req: Request<Incoming>,
    request: InFlight,
) -> Result<Response<Tracked<ResponseBody>>, Infallible> {
    let answer = proxy.oneshot(req).await?;
    if let Some(failure) = answer.extensions().get::<UpstreamError>() {
        crate::note(&format!("upstream: {}", failure.error()));
    }
    Ok(answer.map(|body| Tracked::new(body, request)))
}
