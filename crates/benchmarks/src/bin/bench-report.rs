//! Prints the results of `cargo bench -p benchmarks` as the markdown tables of
//! `docs/BENCHMARKS.md`.
//!
//! `cargo run -p benchmarks --bin bench-report [CRITERION_DIR...]`. The directory defaults
//! to the workspace's `target/criterion`. Given several (copies of `target/criterion` from
//! several runs), it prints the median of the runs and the range of their ratios.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut roots: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if roots.is_empty() {
        roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion"));
    }
    let mut runs = Vec::with_capacity(roots.len());
    for root in &roots {
        match benchmarks::report::read_measurements(root) {
            Ok(measurements) if measurements.is_empty() => {
                eprintln!("no criterion results under {}: run `cargo bench -p benchmarks` first", root.display());
                return ExitCode::FAILURE;
            }
            Ok(measurements) => runs.push(measurements),
            Err(error) => {
                eprintln!("cannot read {}: {error}", root.display());
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{}", benchmarks::report::render(&runs));
    ExitCode::SUCCESS
}
