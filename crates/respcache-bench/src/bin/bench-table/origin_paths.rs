//! The rows that reach the origin: miss + store, `304` revalidation and
//! the cross-process miss, each in turns with a plain hyper request.

use super::*;

impl Ctx {
    /// Miss-and-store and `304` revalidation, each in turns with the same
    /// request sent by a plain hyper client.
    pub(super) async fn origin_paths(&mut self, c: &Connected, cache: &Name, session: &Session) {
        let name = c.kind.name();
        let (plan, rounds) = (self.plan, self.rounds());
        // The same miss with the cross-process lease around it (issue 17).
        let xp = MissSession::new(
            CachedClient::builder().cross_process(CrossProcess::new()),
            Arc::clone(&c.backend),
            cache,
            &self.origin,
            "xp",
        )
        .await;
        let http = self.http.clone();
        let raw_url = self.origin.url("/raw");
        let raw = |_| {
            let (http, url) = (&http, &raw_url);
            async move { http.get(url, &[], 200).await.map(drop) }
        };
        let miss = |_| session.miss_and_store();
        let xp_ref = &xp;
        let miss_xp = move |_| async move {
            match xp_ref {
                Ok(xp) => xp.miss_and_store().await,
                Err(e) => Err::<(), BoxError>(e.to_string().into()),
            }
        };
        let (requests, connections) = (self.origin.requests(), self.origin.connections());
        let r = measure::measure_interleaved(plan, rounds, (raw, miss, miss_xp)).await;
        self.log(
            name,
            "origin during miss + store",
            &format!(
                "{} requests on {} new connections",
                self.origin.requests() - requests,
                self.origin.connections() - connections
            ),
        );
        let (paired, r, xp_r) = match r {
            Ok(stats) => match <[Stats; 3]>::try_from(stats) {
                Ok([raw, miss, xp]) => (Some(raw.median), Ok(miss), Ok(xp)),
                Err(_) => (
                    None,
                    Err("wrong number of results".into()),
                    Err("wrong number of results".into()),
                ),
            },
            Err(e) => (None, Err(e.to_string().into()), Err(e)),
        };
        let plain = self.record_paired(HTTP_MISS, name, r, paired);
        self.record(HTTP_MISS_XP, name, xp_r);
        self.lease_row(name, plain.map(|s| s.median));
        let etag_url = self.origin.url("/etag/raw");
        let raw = |_| {
            let (http, url) = (&http, &etag_url);
            async move {
                http.get(url, &[("if-none-match", ETAG)], 304)
                    .await
                    .map(drop)
            }
        };
        let reval = |i| session.revalidate(i);
        let r = measure::measure_interleaved(plan, rounds, (raw, reval)).await;
        let (paired, r) = pair(r);
        self.record_paired(HTTP_304, name, r, paired);
    }

    /// The cross-process row: compared with the plain miss measured in
    /// turns with it; on Redis judged against the expectation of
    /// about one round trip each for acquire and release (at most 2.5 raw
    /// `GET`s of this run).
    fn lease_row(&mut self, name: &str, plain: Option<Duration>) {
        let redis_get = self
            .rows
            .iter()
            .find(|r| r.backend == RAW && r.operation == sized(RAW_REDIS, Size::Small))
            .and_then(|r| r.outcome.stats())
            .map(|s| s.median);
        let Some(row) = self.rows.last_mut() else {
            return;
        };
        if row.operation != HTTP_MISS_XP {
            return;
        }
        row.baseline = Some(HTTP_MISS.to_owned());
        row.paired = plain;
        if let (Some(plain), Some(s)) = (plain, row.outcome.stats()) {
            let added = s.median.as_secs_f64() - plain.as_secs_f64();
            let sign = if added < 0.0 { "−" } else { "+" };
            row.versus = Some(format!(
                "{sign}{} ({:.2}×) over the plain miss",
                report::duration(Duration::from_secs_f64(added.abs())),
                s.median.as_secs_f64() / plain.as_secs_f64().max(1e-12)
            ));
        }
        if let ("redis", Some(get)) = (name, redis_get) {
            row.targets.push(Target::AddedAtMost(get.mul_f64(2.5)));
            row.note = Some(notes::LEASE_REDIS.to_owned());
        }
    }
}
