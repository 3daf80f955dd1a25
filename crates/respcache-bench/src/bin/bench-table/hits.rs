//! The read rows of one backend: `get` hits in turns with the raw read of
//! the same bytes, the `CachedSession` hit, and 64 tasks hitting at once.

use super::*;

impl Ctx {
    /// Point reads and every `CachedSession` path, each measured in turns
    /// with its raw baseline.
    pub(super) async fn reads(&mut self, c: &Connected, cache: &Name) {
        let name = c.kind.name();
        let session = match Session::new(Arc::clone(&c.backend), cache, &self.origin).await {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                let ops = [HTTP_HIT, HTTP_CONCURRENT, HTTP_MISS, HTTP_MISS_XP, HTTP_304]
                    .map(str::to_owned);
                self.fail_all(&ops, name, &e.to_string());
                None
            }
        };
        match Hits::seed(c.backend.as_ref(), cache).await {
            Ok(hits) => {
                for size in [Size::Small, Size::Large] {
                    let http = if size == Size::Small {
                        session.as_deref()
                    } else {
                        None
                    };
                    self.hit_family(c, cache, &hits, size, http).await;
                }
            }
            Err(e) => {
                let ops = [sized(GET_HIT, Size::Small), sized(GET_HIT, Size::Large)];
                self.fail_all(&ops, name, &e.to_string());
            }
        }
        if let Some(session) = session {
            self.concurrent(name, &session).await;
            self.origin_paths(c, cache, &session).await;
            if c.kind == BackendKind::Memory {
                self.front_ends(c, cache, &session).await;
            }
        }
    }

    /// `get` hits of one size — and for 1 KB the `CachedSession` hit — in
    /// turns with the backend's raw read of the same bytes.
    async fn hit_family(
        &mut self,
        c: &Connected,
        cache: &Name,
        hits: &Hits,
        size: Size,
        session: Option<&Session>,
    ) {
        let name = c.kind.name();
        let (plan, rounds) = (self.plan, self.rounds());
        let get = |i| hits.get(size, i);
        let http_hit = |i| async move {
            match session {
                Some(s) => s.hit(i).await,
                None => Ok(()),
            }
        };
        let before = self.origin.requests();
        let Family {
            raws,
            get: get_r,
            hit: hit_r,
        } = match c.kind {
            BackendKind::Sqlite => {
                let opened = match c.sqlite_path.clone() {
                    Some(path) => match RawSqlite::open(&path, cache, "hits") {
                        Ok(inline) => RawTokioSqlite::open(path, cache, "hits")
                            .await
                            .map(|t| (inline, t)),
                        Err(e) => Err(e),
                    },
                    None => Err("no database path".into()),
                };
                match opened {
                    Ok((inline, tokio)) => {
                        let inline_op = |i| {
                            let r = inline.read(hits.key(size, i), size.bytes());
                            async move { r }
                        };
                        let tokio_op = |i| tokio.read(hits.key(size, i), size.bytes());
                        split(
                            measure::measure_interleaved(
                                plan,
                                rounds,
                                (inline_op, tokio_op, get, http_hit),
                            )
                            .await,
                            &[&sized(RAW_SQLITE, size), &sized(RAW_TOKIO_SQLITE, size)],
                        )
                    }
                    Err(e) => Family::no_baseline(sized(RAW_SQLITE, size), e),
                }
            }
            BackendKind::Fs => {
                let store = match (&c.fs, data::spec(cache, "hits")) {
                    (Some(fs), Ok(spec)) => fs.open_fs_store(&spec).await.map_err(BoxError::from),
                    (_, Err(e)) => Err(e),
                    (None, _) => Err("no fs backend".into()),
                };
                match store {
                    Ok(store) => {
                        let raw = RawFile::new(hits, |k| store.entry_path(k));
                        let raw_op = |i| {
                            let r = raw.read(size, i);
                            async move { r }
                        };
                        split(
                            measure::measure_interleaved(plan, rounds, (raw_op, get, http_hit))
                                .await,
                            &[&sized(RAW_FILE, size)],
                        )
                    }
                    Err(e) => Family::no_baseline(sized(RAW_FILE, size), e),
                }
            }
            #[cfg(feature = "redis")]
            BackendKind::Redis => {
                let prefix = format!("{}-raw", cache.as_str());
                let url = c.location.clone().unwrap_or_default();
                match respcache_bench::raw::RawRedis::connect(&url, &prefix).await {
                    Ok(raw) => {
                        let raw_op = |i| raw.get(size, i);
                        let r = split(
                            measure::measure_interleaved(plan, rounds, (raw_op, get, http_hit))
                                .await,
                            &[&sized(RAW_REDIS, size)],
                        );
                        if let Err(e) = raw.cleanup().await {
                            self.log(name, "cleanup", &e.to_string());
                        }
                        r
                    }
                    Err(e) => Family::no_baseline(sized(RAW_REDIS, size), e),
                }
            }
            _ => split(
                measure::measure_interleaved(plan, rounds, (get, http_hit)).await,
                &[],
            ),
        };
        let sent = self.origin.requests() - before;
        let paired = raws
            .first()
            .and_then(|(_, r)| r.as_ref().ok())
            .map(|s| s.median);
        for (op, r) in raws {
            self.record(op, RAW, r);
        }
        self.record_paired(sized(GET_HIT, size), name, get_r, paired);
        if session.is_some() {
            let hit_r = hit_r.and_then(|s| {
                if sent == 0 {
                    Ok(s)
                } else {
                    Err(format!("{sent} hits reached the origin").into())
                }
            });
            self.record_paired(HTTP_HIT, name, hit_r, paired);
        }
    }

    /// 64 tasks hitting at once; logs how many cores they got.
    async fn concurrent(&mut self, name: &str, session: &Arc<Session>) {
        let Some(hit) = self
            .rows
            .iter()
            .find(|r| r.operation == HTTP_HIT && r.backend == name)
            .and_then(|r| r.outcome.stats())
            .map(|s| s.median)
        else {
            return self.fail_all(
                &[HTTP_CONCURRENT.to_owned()],
                name,
                "no sequential hit to size it",
            );
        };
        // As many hits per task as fill the time budget on 2 workers.
        let max = if self.quick { 400 } else { 4_000 };
        let per_task = ((self.plan.budget.as_secs_f64() * 2.0
            / hit.max(Duration::from_micros(1)).as_secs_f64())
            / HIT_URLS as f64)
            .clamp(10.0, max as f64) as usize;
        let s = Arc::clone(session);
        let cpu0 = cpu::process_cpu_time();
        let t0 = Instant::now();
        let r = measure::measure_concurrent(HIT_URLS as usize, 5, per_task, move |task, _| {
            let s = Arc::clone(&s);
            async move { s.hit(task as u64).await }
        })
        .await;
        let wall = t0.elapsed();
        if let (Some(a), Some(b)) = (cpu0, cpu::process_cpu_time()) {
            let cores = cpu::cores_used(a, b, wall);
            self.cores.push((name.to_owned(), cores));
            self.log(
                name,
                "64 tasks: cores used",
                &format!("{cores:.2} (load {})", machine::load().unwrap_or_default()),
            );
        }
        self.record(HTTP_CONCURRENT, name, r);
    }
}
