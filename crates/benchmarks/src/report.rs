//! Reads what criterion wrote under `target/criterion` and prints it as the markdown
//! tables of `docs/BENCHMARKS.md`: per case, the median time per iteration, the rate
//! in elements per second, and the ratio to the baselines measured in the same run.
//!
//! The benches name things so that this needs no configuration: a group is one case
//! (`postgres/append 1 event`), its functions are the contenders (`eventshop`,
//! `eventshop, cache off`, …) and the baselines (`raw`, `cqrs-es`), and the parameter is
//! the variant (`1 writer`). Ratios compare contenders with the baselines of the same
//! group and parameter.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

/// Functions that other functions of a group are compared with.
pub const BASELINES: [&str; 2] = ["raw", "cqrs-es"];

/// One benchmark's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub group: String,
    pub function: String,
    pub parameter: String,
    /// Median time of one iteration, in nanoseconds.
    pub median_ns: f64,
    /// Elements (events, rows) one iteration handles, when the bench said.
    pub elements: Option<u64>,
}

impl Measurement {
    /// Elements per second, when the bench declared a throughput.
    pub fn rate(&self) -> Option<f64> {
        self.elements.map(|elements| elements as f64 * 1e9 / self.median_ns)
    }
}

#[derive(Deserialize)]
struct BenchmarkFile {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    /// `{"Elements": n}`, `{"Bytes": n}`, …; only elements are reported.
    throughput: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct EstimatesFile {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Every measurement under `root` (criterion's output directory), from the newest run of
/// each benchmark.
pub fn read_measurements(root: &Path) -> std::io::Result<Vec<Measurement>> {
    let mut found = Vec::new();
    visit(root, &mut found)?;
    found.sort_by(|a: &Measurement, b| {
        (&a.group, &a.parameter, &a.function).cmp(&(&b.group, &b.parameter, &b.function))
    });
    Ok(found)
}

fn visit(directory: &Path, found: &mut Vec<Measurement>) -> std::io::Result<()> {
    let benchmark = directory.join("new").join("benchmark.json");
    let estimates = directory.join("new").join("estimates.json");
    if benchmark.is_file() && estimates.is_file() {
        let invalid = |error: serde_json::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, error);
        let benchmark: BenchmarkFile = serde_json::from_slice(&std::fs::read(&benchmark)?).map_err(invalid)?;
        let estimates: EstimatesFile = serde_json::from_slice(&std::fs::read(&estimates)?).map_err(invalid)?;
        found.push(Measurement {
            group: benchmark.group_id,
            function: benchmark.function_id.unwrap_or_default(),
            parameter: benchmark.value_str.unwrap_or_default(),
            median_ns: estimates.median.point_estimate,
            elements: benchmark.throughput.and_then(|throughput| throughput.get("Elements")?.as_u64()),
        });
        return Ok(());
    }
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && entry.file_name() != "report" {
            visit(&entry.path(), found)?;
        }
    }
    Ok(())
}

/// A duration in nanoseconds, in the unit that keeps 3–4 significant digits.
pub fn format_time(nanoseconds: f64) -> String {
    if nanoseconds >= 1e9 {
        format!("{:.2} s", nanoseconds / 1e9)
    } else if nanoseconds >= 1e6 {
        format!("{:.2} ms", nanoseconds / 1e6)
    } else if nanoseconds >= 1e3 {
        format!("{:.1} µs", nanoseconds / 1e3)
    } else {
        format!("{nanoseconds:.0} ns")
    }
}

/// A rate, rounded to three significant digits.
pub fn format_rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M/s", per_second / 1e6)
    } else if per_second >= 1e4 {
        format!("{:.1} k/s", per_second / 1e3)
    } else if per_second >= 1e3 {
        format!("{:.2} k/s", per_second / 1e3)
    } else {
        format!("{per_second:.0}/s")
    }
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

/// The same benchmark in every run that has it.
fn across_runs<'a>(runs: &'a [Vec<Measurement>], like: &Measurement, function: &str) -> Vec<&'a Measurement> {
    runs.iter()
        .filter_map(|run| {
            run.iter().find(|m| m.group == like.group && m.parameter == like.parameter && m.function == function)
        })
        .collect()
}

/// Markdown tables, one per group prefix (`postgres`, `sqlite`, …): a row per contender
/// and parameter, with the median, the rate and the ratio to each baseline of its group.
///
/// The ratio is baseline time / contender time, computed within each run: above 1 the
/// contender is faster, and for a case with a throughput it is the contender's rate as a
/// fraction of the baseline's. With several runs (`runs`, e.g. one criterion directory
/// each), times are the median of the runs' medians and ratios the median of the runs'
/// ratios, followed by their range.
pub fn render(runs: &[Vec<Measurement>]) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    let mut by_prefix: BTreeMap<&str, Vec<&Measurement>> = BTreeMap::new();
    for measurement in first {
        let prefix = measurement.group.split_once('/').map_or(measurement.group.as_str(), |(prefix, _)| prefix);
        by_prefix.entry(prefix).or_default().push(measurement);
    }
    let mut out = String::new();
    if runs.len() > 1 {
        let _ =
            writeln!(out, "Medians of {} runs; ratios: median of the per-run ratios [lowest–highest].\n", runs.len());
    }
    for (prefix, measurements) in by_prefix {
        let baselines: Vec<&str> =
            BASELINES.into_iter().filter(|baseline| measurements.iter().any(|m| m.function == *baseline)).collect();
        let _ = writeln!(out, "### {prefix}\n");
        let mut header = String::from("| case | contender | median | rate |");
        let mut rule = String::from("|---|---|---:|---:|");
        for baseline in &baselines {
            let _ = write!(header, " {baseline} median | {baseline} rate | ratio to {baseline} |");
            rule.push_str("---:|---:|---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for contender in measurements.iter().filter(|m| !BASELINES.contains(&m.function.as_str())) {
            let case = contender.group.split_once('/').map_or(contender.group.as_str(), |(_, case)| case);
            let case = if contender.parameter.is_empty() {
                case.to_owned()
            } else {
                format!("{case}, {}", contender.parameter)
            };
            let contender_runs = across_runs(runs, contender, &contender.function);
            let contender_median = median(contender_runs.iter().map(|m| m.median_ns).collect());
            let rate = rate_text(contender.elements, contender_median);
            let _ = write!(out, "| {case} | {} | {} | {rate} |", contender.function, format_time(contender_median));
            for baseline in &baselines {
                let baseline_runs = across_runs(runs, contender, baseline);
                if baseline_runs.is_empty() {
                    out.push_str(" — | — | — |");
                    continue;
                }
                let baseline_median = median(baseline_runs.iter().map(|m| m.median_ns).collect());
                let ratios: Vec<f64> = runs
                    .iter()
                    .filter_map(|run| {
                        let find = |function: &str| {
                            run.iter().find(|m| {
                                m.group == contender.group
                                    && m.parameter == contender.parameter
                                    && m.function == function
                            })
                        };
                        Some(find(baseline)?.median_ns / find(&contender.function)?.median_ns)
                    })
                    .collect();
                let range = if ratios.len() > 1 {
                    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!(" [{low:.2}–{high:.2}]")
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    " {} | {} | {:.2}{range} |",
                    format_time(baseline_median),
                    rate_text(baseline_runs[0].elements, baseline_median),
                    median(ratios)
                );
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn rate_text(elements: Option<u64>, median_ns: f64) -> String {
    elements.map_or("—".to_owned(), |elements| format_rate(elements as f64 * 1e9 / median_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(group: &str, function: &str, parameter: &str, median_ns: f64) -> Measurement {
        Measurement {
            group: group.into(),
            function: function.into(),
            parameter: parameter.into(),
            median_ns,
            elements: Some(1),
        }
    }

    #[test]
    fn contenders_are_compared_with_the_baseline_of_their_group_and_parameter() {
        let table = render(&[vec![
            measurement("postgres/append", "eventshop", "1 writer", 2_000_000.0),
            measurement("postgres/append", "raw", "1 writer", 1_000_000.0),
            measurement("postgres/append", "eventshop", "8 writers", 500_000.0),
            measurement("postgres/append", "raw", "8 writers", 500_000.0),
        ]]);
        assert!(
            table.contains("| append, 1 writer | eventshop | 2.00 ms | 500/s | 1.00 ms | 1.00 k/s | 0.50 |"),
            "{table}"
        );
        assert!(table.contains("| append, 8 writers | eventshop | 500.0 µs | 2.00 k/s | 500.0 µs | 2.00 k/s | 1.00 |"));
    }

    #[test]
    fn several_runs_give_medians_and_the_range_of_the_ratios() {
        let run = |eventshop: f64, raw: f64| {
            vec![measurement("sqlite/append", "eventshop", "", eventshop), measurement("sqlite/append", "raw", "", raw)]
        };
        let table = render(&[run(1000.0, 500.0), run(2000.0, 2000.0), run(3000.0, 2400.0)]);
        assert!(
            table.contains("| append | eventshop | 2.0 µs | 500.0 k/s | 2.0 µs | 500.0 k/s | 0.80 [0.50–1.00] |"),
            "{table}"
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn criterion_output_is_read_from_its_directories() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("postgres_append").join("raw").join("1 writer").join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"postgres/append","function_id":"raw","value_str":"1 writer",
                "throughput":{"Elements":10},"full_id":"x","directory_name":"x","title":"x"}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"point_estimate":3.0},"median":{"point_estimate":2.0}}"#,
        )
        .unwrap();
        let found = read_measurements(root.path()).unwrap();
        assert_eq!(
            found,
            vec![Measurement { elements: Some(10), ..measurement("postgres/append", "raw", "1 writer", 2.0) }]
        );
        assert_eq!(found[0].rate(), Some(5e9));
    }
}
