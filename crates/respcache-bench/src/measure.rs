//! The measurement loop: warm-up, then timed operations one by one, and the
//! statistics the table prints (median, p99, throughput).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Result;

/// How long and how often an operation is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Untimed runs before sampling starts, at most this long.
    pub warmup: Duration,
    /// Fewest timed operations, even past `budget`.
    pub min_samples: usize,
    /// Most timed operations.
    pub max_samples: usize,
    /// Stop sampling after this much timed time (once `min_samples` ran).
    pub budget: Duration,
}

impl Plan {
    /// For operations of micro- to milliseconds, in a full run.
    pub const FULL: Plan = Plan {
        warmup: Duration::from_millis(500),
        min_samples: 50,
        max_samples: 200_000,
        budget: Duration::from_secs(3),
    };

    /// For operations of micro- to milliseconds, in a `--quick` run.
    pub const QUICK: Plan = Plan {
        warmup: Duration::from_millis(60),
        min_samples: 20,
        max_samples: 20_000,
        budget: Duration::from_millis(250),
    };

    /// For operations that take a large part of a second (100,000 entries).
    pub const fn heavy(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::ZERO,
                min_samples: 1,
                max_samples: 1,
                budget: Duration::ZERO,
            }
        } else {
            Plan {
                warmup: Duration::ZERO,
                min_samples: 5,
                max_samples: 10,
                budget: Duration::from_secs(10),
            }
        }
    }

    /// For operations of a millisecond or so (batches of 1,000).
    pub const fn batch(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_millis(30),
                min_samples: 5,
                max_samples: 200,
                budget: Duration::from_millis(250),
            }
        } else {
            Plan {
                warmup: Duration::from_millis(300),
                min_samples: 20,
                max_samples: 2_000,
                budget: Duration::from_secs(3),
            }
        }
    }
}

/// What a measured operation did: per-operation times and the work done.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Timed operations.
    pub samples: usize,
    /// Median time of one operation.
    pub median: Duration,
    /// 99th percentile time of one operation.
    pub p99: Duration,
    /// Mean time of one operation.
    pub mean: Duration,
    /// Items (entries, requests) per second over the timed period.
    pub throughput: f64,
    /// Items one operation handles (1 for a `get`, 1,000 for `get_many`).
    pub items_per_op: u64,
}

impl Stats {
    /// Statistics of per-operation `times`, each operation handling
    /// `items_per_op` items, the operations having taken `wall` together.
    /// `None` when there are no times.
    pub fn from_times(
        mut times: Vec<Duration>,
        items_per_op: u64,
        wall: Duration,
    ) -> Option<Stats> {
        if times.is_empty() {
            return None;
        }
        times.sort_unstable();
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2
        };
        // Nearest rank: the smallest time at least 99 % of the samples reach.
        let rank = (n * 99).div_ceil(100).max(1);
        let p99 = times[rank - 1];
        let total: Duration = times.iter().sum();
        let mean = total / u32::try_from(n).unwrap_or(u32::MAX);
        let wall = if wall.is_zero() { total } else { wall };
        let items = (n as f64) * (items_per_op as f64);
        let throughput = if wall.is_zero() {
            f64::INFINITY
        } else {
            items / wall.as_secs_f64()
        };
        Some(Stats {
            samples: n,
            median,
            p99,
            mean,
            throughput,
            items_per_op,
        })
    }
}

/// Measures `op` run one at a time: warm-up, then timed runs until the plan
/// is done. `op(i)` gets the run number. The throughput is over the timed
/// operations only. The first error stops the measurement.
pub async fn measure<F, Fut>(plan: Plan, items_per_op: u64, mut op: F) -> Result<Stats>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    measure_with_setup(plan, items_per_op, |_| async { Ok(()) }, move |i, ()| op(i)).await
}

/// Like [`measure`], with an untimed `setup(i)` before each timed `op(i, s)`
/// (e.g. putting back the expired entries a `clear` removes).
pub async fn measure_with_setup<S, Fs, FutS, F, Fut>(
    plan: Plan,
    items_per_op: u64,
    mut setup: Fs,
    mut op: F,
) -> Result<Stats>
where
    Fs: FnMut(u64) -> FutS,
    FutS: Future<Output = Result<S>>,
    F: FnMut(u64, S) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut i = 0u64;
    let warm_start = Instant::now();
    while warm_start.elapsed() < plan.warmup {
        let s = setup(i).await?;
        op(i, s).await?;
        i += 1;
    }
    let mut times = Vec::with_capacity(plan.max_samples.min(1 << 20));
    let mut timed = Duration::ZERO;
    while times.len() < plan.max_samples && (times.len() < plan.min_samples || timed < plan.budget)
    {
        let s = setup(i).await?;
        let t0 = Instant::now();
        op(i, s).await?;
        let dt = t0.elapsed();
        times.push(dt);
        timed += dt;
        i += 1;
    }
    Stats::from_times(times, items_per_op, timed).ok_or_else(|| "no samples".into())
}

/// One operation to time: `call(i)` runs it for the `i`-th time. Every
/// `FnMut(u64) -> impl Future<Output = Result<()>>` is one.
pub trait Op {
    /// Runs the operation once.
    fn call(&mut self, i: u64) -> impl Future<Output = Result<()>>;
}

impl<F, Fut> Op for F
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    fn call(&mut self, i: u64) -> impl Future<Output = Result<()>> {
        self(i)
    }
}

/// The times one operation collected during [`measure_interleaved`].
#[derive(Debug, Default)]
pub struct Lane {
    times: Vec<Duration>,
    timed: Duration,
    i: u64,
}

impl Lane {
    /// Runs `op` until `budget` of timed time passed or the lane holds
    /// `max` samples.
    async fn run(&mut self, op: &mut impl Op, budget: Duration, max: usize) -> Result<()> {
        let mut spent = Duration::ZERO;
        while self.times.len() < max && spent < budget {
            let t0 = Instant::now();
            op.call(self.i).await?;
            let dt = t0.elapsed();
            self.times.push(dt);
            self.timed += dt;
            spent += dt;
            self.i += 1;
        }
        Ok(())
    }

    /// Untimed runs for `warmup`.
    async fn warm(&mut self, op: &mut impl Op, warmup: Duration) -> Result<()> {
        let t0 = Instant::now();
        while t0.elapsed() < warmup {
            op.call(self.i).await?;
            self.i += 1;
        }
        Ok(())
    }
}

/// A tuple of [`Op`]s that [`measure_interleaved`] takes turns on.
pub trait Ops {
    /// How many operations.
    const LEN: usize;
    /// Warms every operation up.
    fn warm(&mut self, lanes: &mut [Lane], warmup: Duration) -> impl Future<Output = Result<()>>;
    /// One round: each operation in turn, for `budget` each.
    fn round(
        &mut self,
        lanes: &mut [Lane],
        budget: Duration,
        max: usize,
    ) -> impl Future<Output = Result<()>>;
}

macro_rules! tuple_ops {
    ($len:literal; $($op:ident $idx:tt),+) => {
        impl<$($op: Op),+> Ops for ($($op,)+) {
            const LEN: usize = $len;
            async fn warm(&mut self, lanes: &mut [Lane], warmup: Duration) -> Result<()> {
                $( lanes[$idx].warm(&mut self.$idx, warmup).await?; )+
                Ok(())
            }
            async fn round(&mut self, lanes: &mut [Lane], budget: Duration, max: usize) -> Result<()> {
                $( lanes[$idx].run(&mut self.$idx, budget, max).await?; )+
                Ok(())
            }
        }
    };
}
tuple_ops!(1; A 0);
tuple_ops!(2; A 0, B 1);
tuple_ops!(3; A 0, B 1, C 2);
tuple_ops!(4; A 0, B 1, C 2, D 3);

/// Measures several operations taking turns: `rounds` rounds in which each
/// operation runs for its share of the plan's budget. An operation and its
/// raw baseline measured this way see the same machine — on a shared VM
/// whose load drifts by the second, that is what keeps their ratio honest.
/// Returns one [`Stats`] per operation, in order.
pub async fn measure_interleaved<O: Ops>(
    plan: Plan,
    rounds: u32,
    mut ops: O,
) -> Result<Vec<Stats>> {
    let rounds = rounds.max(1);
    let mut lanes: Vec<Lane> = (0..O::LEN).map(|_| Lane::default()).collect();
    ops.warm(&mut lanes, plan.warmup / (O::LEN as u32)).await?;
    let budget = plan.budget / rounds;
    for r in 0..rounds {
        let max = plan.max_samples * (r as usize + 1) / rounds as usize;
        ops.round(&mut lanes, budget, max).await?;
    }
    // Top up to the minimum.
    ops.round(&mut lanes, Duration::MAX, plan.min_samples)
        .await?;
    lanes
        .into_iter()
        .map(|l| Stats::from_times(l.times, 1, l.timed).ok_or_else(|| "no samples".into()))
        .collect()
}

/// Measures `tasks` tasks running `op` at once on the current runtime,
/// `per_task` times each after `warmup` untimed runs each; the throughput
/// is all operations over the wall time from the start signal to the last
/// task's end. `op(task, i)`.
pub async fn measure_concurrent<F, Fut>(
    tasks: usize,
    warmup: usize,
    per_task: usize,
    op: F,
) -> Result<Stats>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks + 1));
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let op = Arc::clone(&op);
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            for i in 0..warmup {
                op(t, i as u64).await?;
            }
            barrier.wait().await;
            let mut times = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let t0 = Instant::now();
                op(t, (warmup + i) as u64).await?;
                times.push(t0.elapsed());
            }
            Ok::<_, crate::BoxError>(times)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut times = Vec::with_capacity(tasks * per_task);
    for handle in handles {
        times.extend(handle.await??);
    }
    let wall = start.elapsed();
    Stats::from_times(times, 1, wall).ok_or_else(|| "no samples".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn median_and_p99_of_known_samples() {
        // 1..=100 µs: median of an even count is the mean of the middle two,
        // p99 is the 99th smallest.
        let times: Vec<Duration> = (1..=100).rev().map(us).collect();
        let s = Stats::from_times(times, 1, Duration::ZERO).unwrap();
        assert_eq!(s.median, Duration::from_nanos(50_500));
        assert_eq!(s.p99, us(99));
        assert_eq!(s.samples, 100);
        // Sequential: throughput is items over the summed times (5,050 µs).
        assert!((s.throughput - 100.0 / 0.005_05).abs() < 1e-6);
    }

    #[test]
    fn throughput_counts_items_over_wall_time() {
        let s = Stats::from_times(vec![us(10); 4], 1000, Duration::from_millis(1)).unwrap();
        assert!((s.throughput - 4_000_000.0).abs() < 1e-6);
        assert_eq!(s.p99, us(10));
        assert!(Stats::from_times(Vec::new(), 1, Duration::ZERO).is_none());
    }

    #[tokio::test]
    async fn measure_respects_the_sample_limits_and_stops_on_error() {
        let plan = Plan {
            warmup: Duration::ZERO,
            min_samples: 3,
            max_samples: 7,
            budget: Duration::from_secs(60),
        };
        let s = measure(plan, 1, |_| async { Ok(()) }).await.unwrap();
        assert_eq!(s.samples, 7);
        let err = measure(plan, 1, |i| async move {
            if i == 2 { Err("boom".into()) } else { Ok(()) }
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[tokio::test]
    async fn interleaved_measures_each_operation_in_turns() {
        let plan = Plan {
            warmup: Duration::ZERO,
            min_samples: 5,
            max_samples: 40,
            budget: Duration::from_secs(60),
        };
        let order = std::sync::Mutex::new(Vec::new());
        let a = |_| {
            order.lock().unwrap().push('a');
            async { Ok(()) }
        };
        let b = |_| {
            order.lock().unwrap().push('b');
            async { Ok(()) }
        };
        let stats = measure_interleaved(plan, 4, (a, b)).await.unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].samples, stats[1].samples), (40, 40));
        // Ten of each per round, in turns: a×10 b×10 a×10 ...
        let order: String = order.into_inner().unwrap().into_iter().collect();
        assert!(
            order.starts_with(&format!("{}{}a", "a".repeat(10), "b".repeat(10))),
            "{order}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_runs_every_task_the_given_number_of_times() {
        let s = measure_concurrent(8, 1, 5, |_, _| async { Ok(()) })
            .await
            .unwrap();
        assert_eq!(s.samples, 40);
    }
}
