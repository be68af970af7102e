//! What every bench file shares: the tokio runtime, concurrent writers timed by wall
//! clock, unique names, and how big the data sets are in a real run and in a smoke run.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventshop_core::{Metadata, NewEvent, Payload};

/// The runtime the benches drive: multi-threaded, one worker per core, as a service runs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

/// Runs `operation` `iterations` times, split as evenly as possible across `writers`
/// concurrent tasks, and returns the wall time until the last one finished: the figure
/// that criterion's `iter_custom` wants, so that iterations per second is the aggregate
/// rate of all writers together.
pub async fn split_across_writers<F, Fut>(iterations: u64, writers: usize, operation: F) -> Duration
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let operation = Arc::new(operation);
    let shares = shares(iterations, writers);
    let started = Instant::now();
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let operation = Arc::clone(&operation);
            tokio::spawn(async move {
                for _ in 0..share {
                    operation().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a bench writer panicked");
    }
    started.elapsed()
}

/// `iterations` split into `writers` shares that differ by at most one.
pub fn shares(iterations: u64, writers: usize) -> Vec<u64> {
    let writers = writers.max(1) as u64;
    (0..writers).map(|writer| iterations / writers + u64::from(writer < iterations % writers)).collect()
}

/// Hands out names no other iteration of this process has used, so that every append to
/// "a new stream" really creates one.
#[derive(Debug, Default)]
pub struct UniqueNames {
    next: AtomicU64,
}

impl UniqueNames {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// A store-level event like the ones the command benches write: a `Deposited` with a
/// small JSON payload, so every bench row has the same shape and size.
pub fn deposit_event(amount: i64) -> NewEvent {
    NewEvent::new(
        "Deposited",
        1,
        Payload::from_json_unchecked(format!(r#"{{"amount":{amount}}}"#)),
        Metadata::new_transaction(None),
    )
}

/// `count` events of the shape of [`deposit_event`].
pub fn deposit_events(count: usize) -> Vec<NewEvent> {
    (0..count).map(|i| deposit_event(100 + i as i64)).collect()
}

/// How big the data sets are. `cargo bench` passes `--bench` to the bench binaries;
/// without it (`cargo test --benches`, which runs each bench once to see that it works)
/// the benches seed far less, so a smoke run takes seconds.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Whether this is a real measurement rather than a smoke run.
    pub measuring: bool,
    /// Events in the store that `read_all` and the projection rebuild go through.
    pub read_all_events: usize,
    /// Events already in a stream before the command bench runs against it.
    pub command_history: usize,
    /// Streams the command bench rotates over, so each grows slowly.
    pub command_streams: usize,
    /// The history lengths of the aggregate-load benches.
    pub load_histories: [usize; 2],
    /// Rows in each table of the `json` vs `jsonb` scan.
    pub payload_rows: usize,
}

impl Scale {
    pub fn from_args() -> Self {
        if std::env::args().any(|arg| arg == "--bench") { Self::measuring() } else { Self::smoke() }
    }

    pub fn measuring() -> Self {
        Scale {
            measuring: true,
            read_all_events: 50_000,
            command_history: 100,
            command_streams: 100,
            load_histories: [1_000, 10_000],
            payload_rows: 100_000,
        }
    }

    pub fn smoke() -> Self {
        Scale {
            measuring: false,
            read_all_events: 2_000,
            command_history: 100,
            command_streams: 4,
            load_histories: [1_000, 2_000],
            payload_rows: 2_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (iterations, writers) in [(0, 1), (1, 8), (7, 8), (8, 8), (1001, 8), (5, 1)] {
            let shares = shares(iterations, writers);
            assert_eq!(shares.len(), writers);
            assert_eq!(shares.iter().sum::<u64>(), iterations);
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn unique_names_do_not_repeat() {
        let names = UniqueNames::new();
        assert_ne!(names.next("s"), names.next("s"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_iteration_runs_once() {
        let count = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&count);
        split_across_writers(101, 8, move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
        assert_eq!(count.load(Ordering::Relaxed), 101);
    }
}
