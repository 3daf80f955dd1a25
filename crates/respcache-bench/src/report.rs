//! The table: one row per (operation, backend), its raw baseline, its
//! targets checked as PASS or MISS, and a Markdown rendering.

use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::Stats;

/// The backend column of raw baseline rows.
pub const RAW: &str = "raw";

/// What a row measured, or why it has no numbers.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Timings.
    Measured(Stats),
    /// Peak resident memory growth, in bytes, during one run.
    Memory(u64),
    /// The backend's service did not answer.
    Unreachable(String),
    /// The backend is not compiled in.
    NotBuilt(String),
    /// The operation failed (or answered wrongly).
    Failed(String),
}

impl Outcome {
    /// The timings, if any.
    pub fn stats(&self) -> Option<&Stats> {
        match self {
            Outcome::Measured(s) => Some(s),
            _ => None,
        }
    }
}

/// A goal a row is checked against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// The median is at most this.
    MedianAtMost(Duration),
    /// The median is at most this many times the baseline's median.
    RatioAtMost(f64),
    /// The median exceeds the baseline's median by at most this.
    AddedAtMost(Duration),
    /// At least this many items per second.
    ThroughputAtLeast(f64),
    /// Peak memory growth at most this many bytes.
    MemoryAtMost(u64),
    /// The median is at most this many times another row's median,
    /// measured in turns with it (named by the text).
    TimesAtMost(f64, &'static str),
    /// At least this many times faster than a peer's median (the
    /// duration), measured in the same run: `median × factor ≤ peer`.
    FasterThan(f64, Duration, &'static str),
    /// At least the named peer's throughput, measured in the same run.
    ThroughputOf(f64, &'static str),
    /// The p99 is at most the named peer's, measured in the same run.
    P99AtMost(Duration, &'static str),
}

impl Target {
    /// How the target reads in the table.
    pub fn describe(self) -> String {
        match self {
            Target::MedianAtMost(d) => format!("≤ {}", duration(d)),
            Target::RatioAtMost(r) => format!("≤ {r}× raw"),
            Target::AddedAtMost(d) => format!("≤ raw + {}", duration(d)),
            Target::ThroughputAtLeast(t) => format!("≥ {}/s", count(t)),
            Target::MemoryAtMost(b) => format!("≤ {}", bytes(b)),
            Target::TimesAtMost(r, of) => format!("≤ {r}× {of}"),
            Target::FasterThan(f, d, peer) => {
                format!("≥ {f}× faster than {peer} ({})", duration(d))
            }
            Target::ThroughputOf(t, peer) => format!("≥ {peer}'s {}/s", count(t)),
            Target::P99AtMost(d, peer) => format!("p99 ≤ {peer}'s {}", duration(d)),
        }
    }

    /// Whether `outcome` meets the target (given its baseline's median);
    /// `None` when it cannot be judged.
    pub fn check(self, outcome: &Outcome, baseline: Option<Duration>) -> Option<bool> {
        match (self, outcome) {
            (Target::MemoryAtMost(limit), Outcome::Memory(b)) => Some(*b <= limit),
            (Target::MedianAtMost(d), Outcome::Measured(s)) => Some(s.median <= d),
            (Target::ThroughputAtLeast(t), Outcome::Measured(s)) => Some(s.throughput >= t),
            (Target::FasterThan(f, peer, _), Outcome::Measured(s)) => {
                Some(s.median.as_secs_f64() * f <= peer.as_secs_f64())
            }
            (Target::ThroughputOf(t, _), Outcome::Measured(s)) => Some(s.throughput >= t),
            (Target::P99AtMost(d, _), Outcome::Measured(s)) => Some(s.p99 <= d),
            (Target::RatioAtMost(r) | Target::TimesAtMost(r, _), Outcome::Measured(s)) => {
                let base = baseline?;
                Some(s.median.as_secs_f64() <= r * base.as_secs_f64())
            }
            (Target::AddedAtMost(d), Outcome::Measured(s)) => {
                let base = baseline?;
                Some(s.median <= base + d)
            }
            _ => None,
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// What was measured (`get hit 1 KB`, `CachedSession hit`, ...).
    pub operation: String,
    /// The backend, or [`RAW`] for a baseline.
    pub backend: String,
    /// The numbers.
    pub outcome: Outcome,
    /// What one throughput item is (`op`, `entry`, `req`).
    pub unit: &'static str,
    /// The operation of the raw row this one is compared with.
    pub baseline: Option<String>,
    /// The baseline's median measured in turns with this row (see
    /// [`measure_interleaved`](crate::measure::measure_interleaved)); when
    /// set, ratios use it instead of the raw row's own median.
    pub paired: Option<Duration>,
    /// The goals.
    pub targets: Vec<Target>,
    /// What explains a MISS, and what would reach the target.
    pub note: Option<String>,
    /// What the ratio column says instead of the ratio to the baseline
    /// (rows compared with peers: `1.12× varnish, 0.95× nginx`).
    pub versus: Option<String>,
}

impl Row {
    /// A row with no baseline, target or note.
    pub fn new(operation: impl Into<String>, backend: impl Into<String>, outcome: Outcome) -> Row {
        Row {
            operation: operation.into(),
            backend: backend.into(),
            outcome,
            unit: "op",
            baseline: None,
            paired: None,
            targets: Vec::new(),
            note: None,
            versus: None,
        }
    }

    /// Sets the throughput unit.
    pub fn unit(mut self, unit: &'static str) -> Row {
        self.unit = unit;
        self
    }

    /// Compares the row with the raw row `operation`.
    pub fn baseline(mut self, operation: impl Into<String>) -> Row {
        self.baseline = Some(operation.into());
        self
    }

    /// Sets the baseline median measured in turns with this row.
    pub fn paired(mut self, median: Duration) -> Row {
        self.paired = Some(median);
        self
    }

    /// Adds a target.
    pub fn target(mut self, target: Target) -> Row {
        self.targets.push(target);
        self
    }

    /// Sets what the ratio column says (comparisons with peers).
    pub fn versus(mut self, text: impl Into<String>) -> Row {
        self.versus = Some(text.into());
        self
    }

    /// Sets the note printed when a target is missed.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }
}

/// The verdict of one row's targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every target met.
    Pass,
    /// At least one target missed.
    Miss,
    /// Not measured, so not judged.
    NotJudged,
}

/// All rows of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// The rows, in the order they print.
    pub rows: Vec<Row>,
}

impl Table {
    /// Adds a row.
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The median of raw row `operation`, if it was measured.
    pub fn baseline_median(&self, operation: &str) -> Option<Duration> {
        self.rows
            .iter()
            .find(|r| r.backend == RAW && r.operation == operation)
            .and_then(|r| r.outcome.stats())
            .map(|s| s.median)
    }

    /// The baseline median `row` is compared with: the one measured in
    /// turns with it, else its raw row's.
    pub fn base_of(&self, row: &Row) -> Option<Duration> {
        row.baseline.as_ref()?;
        row.paired
            .or_else(|| self.baseline_median(row.baseline.as_deref()?))
    }

    /// `row`'s median over its baseline's median.
    pub fn ratio(&self, row: &Row) -> Option<f64> {
        let base = self.base_of(row)?;
        let s = row.outcome.stats()?;
        (!base.is_zero()).then(|| s.median.as_secs_f64() / base.as_secs_f64())
    }

    /// Whether `row` met its targets.
    pub fn verdict(&self, row: &Row) -> Option<Verdict> {
        if row.targets.is_empty() {
            return None;
        }
        let base = self.base_of(row);
        let mut verdict = Verdict::Pass;
        for t in &row.targets {
            match t.check(&row.outcome, base) {
                Some(true) => {}
                Some(false) => verdict = Verdict::Miss,
                None => return Some(Verdict::NotJudged),
            }
        }
        Some(verdict)
    }

    /// How many rows passed and missed their targets, and how many target
    /// rows could not be judged.
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut t = (0, 0, 0);
        for row in &self.rows {
            match self.verdict(row) {
                Some(Verdict::Pass) => t.0 += 1,
                Some(Verdict::Miss) => t.1 += 1,
                Some(Verdict::NotJudged) => t.2 += 1,
                None => {}
            }
        }
        t
    }

    /// The table in Markdown, then the notes of missed targets and of rows
    /// without numbers.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| operation | backend | median | p99 | throughput | × raw | target | check |\n",
        );
        out.push_str("|---|---|--:|--:|--:|--:|---|---|\n");
        let mut notes = Vec::new();
        let mut misses: Vec<(Vec<String>, String)> = Vec::new();
        for row in &self.rows {
            let (median, p99, throughput) = match &row.outcome {
                Outcome::Measured(s) => (
                    duration(s.median),
                    duration(s.p99),
                    format!("{} {}/s", count(s.throughput), row.unit),
                ),
                Outcome::Memory(b) => (format!("+{}", bytes(*b)), "–".into(), "–".into()),
                Outcome::Unreachable(why) => {
                    let note = format!("{}: unreachable: {why}", row.backend);
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                    ("unreachable".into(), "–".into(), "–".into())
                }
                Outcome::NotBuilt(why) => ("not built".into(), "–".into(), why.clone()),
                Outcome::Failed(why) => {
                    notes.push(format!(
                        "{} / {}: failed: {why}",
                        row.operation, row.backend
                    ));
                    ("failed".into(), "–".into(), "–".into())
                }
            };
            let ratio = match (self.ratio(row), self.base_of(row)) {
                _ if row.versus.is_some() => row.versus.clone().unwrap_or_default(),
                (Some(r), Some(base)) => format!("{r:.2}× of {}", duration(base)),
                _ if row.baseline.is_some() => "?".into(),
                _ => "–".into(),
            };
            let target = row
                .targets
                .iter()
                .map(|t| t.describe())
                .collect::<Vec<_>>()
                .join(", ");
            let check = match self.verdict(row) {
                Some(Verdict::Pass) => "PASS",
                Some(Verdict::Miss) => {
                    if let Some(note) = &row.note {
                        let label = format!("{} / {}", row.operation, row.backend);
                        match misses.iter_mut().find(|(_, n)| n == note) {
                            Some((labels, _)) => labels.push(label),
                            None => misses.push((vec![label], note.clone())),
                        }
                    }
                    "**MISS**"
                }
                Some(Verdict::NotJudged) => "n/a",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {median} | {p99} | {throughput} | {ratio} | {target} | {check} |",
                row.operation, row.backend
            );
        }
        // Rows that miss for the same reason share one note.
        for (labels, note) in misses {
            notes.push(format!("MISS {}: {note}", labels.join("; ")));
        }
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

/// A duration with three significant digits: `850 ns`, `12.3 µs`, `4.56 ms`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", sig3(v))
}

/// A count with a k/M suffix: `950`, `12.3k`, `1.25M`.
pub fn count(n: f64) -> String {
    if !n.is_finite() {
        "∞".into()
    } else if n >= 1e6 {
        format!("{}M", sig3(n / 1e6))
    } else if n >= 1e3 {
        format!("{}k", sig3(n / 1e3))
    } else {
        sig3(n)
    }
}

/// Bytes in KB / MB (powers of 1024).
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{} MB", sig3(b / (1024.0 * 1024.0)))
    } else {
        format!("{} KB", sig3(b / 1024.0))
    }
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(median_us: u64, throughput: f64) -> Outcome {
        Outcome::Measured(Stats {
            samples: 10,
            median: Duration::from_micros(median_us),
            p99: Duration::from_micros(median_us * 2),
            mean: Duration::from_micros(median_us),
            throughput,
            items_per_op: 1,
        })
    }

    #[test]
    fn formats_numbers_with_three_significant_digits() {
        assert_eq!(duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(duration(Duration::from_nanos(12_345)), "12.3 µs");
        assert_eq!(duration(Duration::from_micros(4_560)), "4.56 ms");
        assert_eq!(count(1_250_000.0), "1.25M");
        assert_eq!(count(12_345.0), "12.3k");
        assert_eq!(bytes(3 << 20), "3.00 MB");
    }

    #[test]
    fn ratio_and_added_targets_use_the_baseline_of_the_same_table() {
        let mut t = Table::default();
        t.push(Row::new("raw read", RAW, stats(3, 1.0)));
        t.push(
            Row::new("hit", "sqlite", stats(8, 1.0))
                .baseline("raw read")
                .target(Target::MedianAtMost(Duration::from_micros(8)))
                .target(Target::RatioAtMost(3.0)),
        );
        t.push(
            Row::new("hit", "fs", stats(10, 1.0))
                .baseline("raw read")
                .target(Target::AddedAtMost(Duration::from_micros(5)))
                .note("why"),
        );
        t.push(
            Row::new("hit", "redis", Outcome::Unreachable("refused".into()))
                .target(Target::MedianAtMost(Duration::from_micros(1))),
        );
        assert_eq!(t.verdict(&t.rows[1]), Some(Verdict::Pass));
        assert_eq!(t.verdict(&t.rows[2]), Some(Verdict::Miss));
        assert_eq!(t.verdict(&t.rows[3]), Some(Verdict::NotJudged));
        assert_eq!(t.verdict(&t.rows[0]), None);
        assert_eq!(t.tally(), (1, 1, 1));
        t.push(
            Row::new("hit", "memory", stats(10, 1.0))
                .target(Target::MedianAtMost(Duration::from_micros(5)))
                .note("why"),
        );
        let md = t.markdown();
        assert!(md.contains("| hit | sqlite | 8.00 µs | 16.0 µs | 1.00 op/s | 2.67× of 3.00 µs | ≤ 8.00 µs, ≤ 3× raw | PASS |"), "{md}");
        assert!(md.contains("| hit | redis | unreachable |"), "{md}");
        assert!(md.contains("- MISS hit / fs; hit / memory: why"), "{md}");
        assert!(md.contains("- redis: unreachable: refused"), "{md}");
    }

    #[test]
    fn a_paired_baseline_wins_over_the_raw_row() {
        let mut t = Table::default();
        t.push(Row::new("raw read", RAW, stats(3, 1.0)));
        t.push(
            Row::new("hit", "fs", stats(10, 1.0))
                .baseline("raw read")
                .paired(Duration::from_micros(5))
                .target(Target::RatioAtMost(2.0)),
        );
        assert_eq!(t.ratio(&t.rows[1]), Some(2.0));
        assert_eq!(t.verdict(&t.rows[1]), Some(Verdict::Pass));
        assert!(t.markdown().contains("| 2.00× of 5.00 µs |"));
    }

    #[test]
    fn a_missing_baseline_cannot_pass_a_ratio_target() {
        let mut t = Table::default();
        t.push(
            Row::new("hit", "redis", stats(8, 1.0))
                .baseline("absent")
                .target(Target::RatioAtMost(1.3)),
        );
        assert_eq!(t.verdict(&t.rows[0]), Some(Verdict::NotJudged));
        assert!(t.markdown().contains("| ? |"));
    }

    #[test]
    fn throughput_and_memory_targets() {
        let ok = Target::ThroughputAtLeast(250_000.0).check(&stats(1, 300_000.0), None);
        let low = Target::ThroughputAtLeast(250_000.0).check(&stats(1, 200_000.0), None);
        assert_eq!((ok, low), (Some(true), Some(false)));
        let mem = Target::MemoryAtMost(64 << 20);
        assert_eq!(mem.check(&Outcome::Memory(10 << 20), None), Some(true));
        assert_eq!(mem.check(&Outcome::Memory(65 << 20), None), Some(false));
    }
}
