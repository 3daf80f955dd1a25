//! The front-end rows (issue 15): the hit through `CacheLayer` and through
//! the reqwest middleware, against `CachedClient` and http-cache-reqwest.

use super::*;

impl Ctx {
    /// The 1 KiB hit through `CacheLayer` over hyper in turns with
    /// `CachedClient`'s, and through the reqwest middleware in turns with
    /// the peer http-cache-reqwest (moka, redb), on the same origin
    /// (issue 15).
    pub(super) async fn front_ends(&mut self, c: &Connected, cache: &Name, session: &Session) {
        let name = c.kind.name();
        let (plan, rounds) = (self.plan, self.rounds());
        match LayerHits::new(Arc::clone(&c.backend), cache, &self.origin).await {
            Ok(layer) => {
                let before = self.origin.requests();
                let client = |i| session.hit(i);
                let over_hyper = |i| layer.hit(i);
                let r = measure::measure_interleaved(plan, rounds, (client, over_hyper)).await;
                let sent = self.origin.requests() - before;
                let (paired, r) = pair(r);
                let r = r.and_then(|s| no_origin(s, sent));
                self.record(LAYER_HIT, name, r);
                if let Some(row) = self.rows.last_mut() {
                    row.baseline = Some(HTTP_HIT.to_owned());
                    row.paired = paired;
                    row.targets
                        .push(Target::TimesAtMost(1.10, "CachedClient hit"));
                    row.note = Some(notes::LAYER.to_owned());
                    if let (Some(p), Some(s)) = (paired, row.outcome.stats()) {
                        row.versus = Some(format!(
                            "{:.2}× CachedClient's {}",
                            s.median.as_secs_f64() / p.as_secs_f64().max(1e-12),
                            report::duration(p)
                        ));
                    }
                }
            }
            Err(e) => self.fail_all(&[LAYER_HIT.to_owned()], name, &e.to_string()),
        }
        let dir = tempfile::tempdir();
        let clients = async {
            let dir = dir.as_ref().map_err(|e| e.to_string())?;
            let ours = ReqwestHits::respcache(Arc::clone(&c.backend), cache, &self.origin).await?;
            let moka = ReqwestHits::peer_moka(&self.origin).await?;
            let redb = ReqwestHits::peer_redb(&self.origin, &dir.path().join("peer.redb")).await?;
            Ok::<_, BoxError>((ours, moka, redb))
        }
        .await;
        let (ours, moka, redb) = match clients {
            Ok(c) => c,
            Err(e) => {
                let why = e.to_string();
                self.fail_all(&[REQWEST_HIT.to_owned()], name, &why);
                self.fail_all(&[REQWEST_HIT.to_owned()], PEER_MOKA, &why);
                return self.fail_all(&[REQWEST_HIT.to_owned()], PEER_REDB, &why);
            }
        };
        let before = self.origin.requests();
        let r = measure::measure_interleaved(
            plan,
            rounds,
            (|i| ours.hit(i), |i| moka.hit(i), |i| redb.hit(i)),
        )
        .await;
        let sent = self.origin.requests() - before;
        let (ours_r, moka_r, redb_r) = match r.and_then(|s| no_origin_all(s, sent)) {
            Ok(stats) => match <[Stats; 3]>::try_from(stats) {
                Ok([a, b, c]) => (Ok(a), Ok(b), Ok(c)),
                Err(_) => {
                    let e = || Err::<Stats, BoxError>("wrong number of results".into());
                    (e(), e(), e())
                }
            },
            Err(e) => {
                let m = e.to_string();
                (Err(m.clone().into()), Err(m.clone().into()), Err(m.into()))
            }
        };
        let moka_m = moka_r.as_ref().ok().map(|s| s.median);
        let redb_m = redb_r.as_ref().ok().map(|s| s.median);
        self.record(REQWEST_HIT, PEER_MOKA, moka_r);
        self.record(REQWEST_HIT, PEER_REDB, redb_r);
        self.record(REQWEST_HIT, name, ours_r);
        if let Some(row) = self.rows.last_mut() {
            let mut versus = Vec::new();
            for (peer, m) in [("moka", moka_m), ("redb", redb_m)] {
                let Some(m) = m else { continue };
                let label = if peer == "moka" { PEER_MOKA } else { PEER_REDB };
                row.targets.push(Target::FasterThan(2.0, m, label));
                if let Some(s) = row.outcome.stats() {
                    versus.push(format!(
                        "{:.2}× faster than {peer}",
                        m.as_secs_f64() / s.median.as_secs_f64().max(1e-12)
                    ));
                }
            }
            row.versus = Some(versus.join(", "));
            row.note = Some(notes::REQWEST.to_owned());
        }
    }
}
