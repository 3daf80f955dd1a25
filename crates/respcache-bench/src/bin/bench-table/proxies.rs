//! The `respcache serve` rows: the cache's reverse proxy against Varnish and
//! nginx `proxy_cache` on loopback, in interleaved rounds.

use super::*;

impl Ctx {
    /// `respcache serve` (memory, SQLite) against Varnish and nginx: 50
    /// keep-alive connections, hits over 1,000 warm URLs, misses over
    /// 20,000 new URLs, interleaved rounds (issue 20).
    pub(super) async fn proxies(&mut self) {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                for k in ProxyKind::ALL {
                    self.fail_all(
                        &[PROXY_HIT.to_owned(), PROXY_MISS.to_owned()],
                        proxy_name(k),
                        &e.to_string(),
                    );
                }
                return;
            }
        };
        let origin = self.origin.addr();
        let mut running = Vec::new();
        for kind in ProxyKind::ALL {
            self.log(proxy_name(kind), "starting", "");
            match proxy::start(kind, origin, dir.path()).await {
                Ok(r) => {
                    self.log(proxy_name(kind), "listening", &r.addr.to_string());
                    running.push(r);
                }
                Err(e) => {
                    let why = format!("not available: {e}");
                    self.log(proxy_name(kind), "not available", &e.to_string());
                    for op in [PROXY_HIT, PROXY_MISS] {
                        self.push(
                            Row::new(op, proxy_name(kind), Outcome::NotBuilt(why.clone()))
                                .unit("req"),
                        );
                    }
                }
            }
        }
        let limit = Duration::from_secs(120);
        let warm: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(proxy::warm_path);
        // Per server: hit and miss latencies, walls, the first error.
        let mut lanes: Vec<ProxyLane> = running.iter().map(|_| ProxyLane::default()).collect();
        for (r, lane) in running.iter().zip(&mut lanes) {
            if let Err(e) = proxy::drive(r.addr, proxy::WARM_URLS, Arc::clone(&warm), limit).await {
                lane.error = Some(format!("warming: {e}"));
            }
        }
        let rounds: u64 = if self.quick { 2 } else { 4 };
        let hits_per_round: u64 = if self.quick { 10_000 } else { 40_000 };
        let misses_per_round = proxy::MISS_URLS / rounds;
        for round in 0..rounds {
            let n = running.len();
            for j in 0..n {
                // Each round starts with another server.
                let k = (j + round as usize) % n;
                let (r, lane) = (&running[k], &mut lanes[k]);
                if lane.error.is_some() {
                    continue;
                }
                let before = self.origin.requests();
                match proxy::drive(r.addr, hits_per_round, Arc::clone(&warm), limit).await {
                    Ok(s) if self.origin.requests() == before => lane.hits.push(s),
                    Ok(_) => {
                        lane.error = Some(format!(
                            "{} hits reached the origin",
                            self.origin.requests() - before
                        ));
                    }
                    Err(e) => lane.error = Some(e.to_string()),
                }
                let name = proxy_name(r.kind).replace(' ', "-");
                let miss: Arc<dyn Fn(u64) -> String + Send + Sync> =
                    Arc::new(move |i| format!("/proxy/miss/{name}/{round}/{i}"));
                let before = self.origin.requests();
                match proxy::drive(r.addr, misses_per_round, miss, limit).await {
                    Ok(s) if self.origin.requests() - before == misses_per_round => {
                        lane.misses.push(s)
                    }
                    Ok(_) => {
                        lane.error = Some(format!(
                            "{} misses sent {} origin requests",
                            misses_per_round,
                            self.origin.requests() - before
                        ));
                    }
                    Err(e) => lane.error = Some(e.to_string()),
                }
                self.log(
                    proxy_name(r.kind),
                    &format!("round {}/{rounds}", round + 1),
                    &format!(
                        "hits {}/s, misses {}/s (load {})",
                        lane.hits
                            .last()
                            .map_or("–".into(), |s| report::count(s.throughput)),
                        lane.misses
                            .last()
                            .map_or("–".into(), |s| report::count(s.throughput)),
                        machine::load().unwrap_or_default()
                    ),
                );
            }
        }
        let kinds: Vec<ProxyKind> = running.iter().map(|r| r.kind).collect();
        for r in running {
            r.stop().await;
        }
        let results: Vec<(ProxyKind, Result<Stats>, Result<Stats>)> = kinds
            .into_iter()
            .zip(lanes)
            .map(|(k, lane)| {
                let (h, m) = lane.finish();
                (k, h, m)
            })
            .collect();
        let peer = |kind: ProxyKind, hits: bool| -> Option<Stats> {
            results
                .iter()
                .find(|(k, _, _)| *k == kind)
                .and_then(|(_, h, m)| (if hits { h } else { m }).as_ref().ok().cloned())
        };
        let peers = [("varnish", ProxyKind::Varnish), ("nginx", ProxyKind::Nginx)];
        let mut rows = Vec::new();
        for (kind, h, m) in &results {
            for (op, r, hits) in [(PROXY_HIT, h, true), (PROXY_MISS, m, false)] {
                let outcome = match r {
                    Ok(s) => Outcome::Measured(s.clone()),
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                let mut row = Row::new(op, proxy_name(*kind), outcome).unit("req");
                if kind.is_serve() {
                    let mut versus = Vec::new();
                    for (label, pk) in peers {
                        let Some(p) = peer(pk, hits) else { continue };
                        if let Ok(s) = r {
                            versus.push(format!(
                                "{:.2}× {label} req/s",
                                s.throughput / p.throughput.max(1e-12)
                            ));
                        }
                        if hits {
                            row = row
                                .target(Target::ThroughputOf(p.throughput, label))
                                .target(Target::P99AtMost(p.p99, label));
                        } else if *kind == ProxyKind::ServeSqlite && pk == ProxyKind::Nginx {
                            row = row.target(Target::ThroughputOf(p.throughput, label));
                        }
                    }
                    if !versus.is_empty() {
                        row = row.versus(versus.join(", "));
                    }
                    row = row.note(notes::PROXY);
                }
                rows.push(row);
            }
        }
        for row in rows {
            self.push(row);
        }
    }
}

/// What one server measured over the rounds of [`Ctx::proxies`].
#[derive(Default)]
struct ProxyLane {
    hits: Vec<Stats>,
    misses: Vec<Stats>,
    error: Option<String>,
}

impl ProxyLane {
    /// The rounds pooled: requests over summed wall time, the p99 and
    /// median of the rounds' (the worst round's p99, the median of the
    /// medians).
    fn finish(self) -> (Result<Stats>, Result<Stats>) {
        if let Some(e) = self.error {
            return (Err(e.clone().into()), Err(e.into()));
        }
        (pool(&self.hits), pool(&self.misses))
    }
}

fn pool(rounds: &[Stats]) -> Result<Stats> {
    let first = rounds.first().ok_or("no rounds")?;
    let samples: usize = rounds.iter().map(|s| s.samples).sum();
    let wall: f64 = rounds
        .iter()
        .map(|s| s.samples as f64 / s.throughput.max(1e-12))
        .sum();
    let mut medians: Vec<Duration> = rounds.iter().map(|s| s.median).collect();
    medians.sort_unstable();
    Ok(Stats {
        samples,
        median: medians[medians.len() / 2],
        p99: rounds.iter().map(|s| s.p99).max().unwrap_or(first.p99),
        mean: first.mean,
        throughput: samples as f64 / wall.max(1e-12),
        items_per_op: 1,
    })
}

pub(super) fn proxy_name(kind: ProxyKind) -> &'static str {
    match kind {
        ProxyKind::ServeMemory => "serve memory",
        ProxyKind::ServeSqlite => "serve sqlite",
        ProxyKind::Varnish => "varnish",
        ProxyKind::Nginx => "nginx",
    }
}
