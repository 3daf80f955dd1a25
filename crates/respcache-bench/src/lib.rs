//! Benchmarks of respcache against raw baselines.
