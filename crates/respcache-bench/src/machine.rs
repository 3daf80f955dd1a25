//! A one-paragraph description of the machine a run measured, for the table
//! header: CPU, cores, memory, kernel, load, compiler.

/// `CPU model, N cores, M GB RAM, Linux x.y, load a b c, rustc v`.
pub fn describe() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = cores();
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(
            || "?".to_owned(),
            |kb| format!("{:.0}", kb / 1024.0 / 1024.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| std::env::consts::OS.to_owned(),
        |s| format!("Linux {}", s.trim()),
    );
    format!(
        "{cpu}, {cores} cores, {mem_gb} GB RAM, {kernel}, load average {}, {}",
        load().unwrap_or_else(|| "?".to_owned()),
        rustc().unwrap_or_else(|| "rustc ?".to_owned())
    )
}

/// The 1, 5 and 15 minute load averages.
pub fn load() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn rustc() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?;
    Some(v.split(" (").next().unwrap_or(&v).trim().to_owned())
}

/// The number of cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}
