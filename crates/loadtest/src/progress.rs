//! The live display while the users act: a bar of the run's time and a line of counts
//! and rates on a terminal (indicatif); a plain line every five seconds when stderr is not
//! a terminal (a CI log), so that a stalled run shows in the log as it happens.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::arguments::LoadtestArguments;
use crate::metrics::Live;
use crate::scenario::Run;

const TICK: Duration = Duration::from_millis(250);
/// Ticks between two plain lines when stderr is not a terminal.
const PLAIN_EVERY: u32 = 20;
/// Ticks the "now" rates are averaged over.
const RATE_WINDOW: usize = 4;

/// The running display; [`Progress::finish`] clears it.
#[derive(Debug)]
pub(crate) struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Progress {
    pub fn start(run: Arc<Run>, arguments: &LoadtestArguments) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = if arguments.quiet || !terminal {
            ProgressBar::hidden()
        } else {
            let millis = u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX);
            let bar = ProgressBar::with_draw_target(Some(millis), ProgressDrawTarget::stderr_with_hz(4));
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        };
        let plain = !arguments.quiet && !terminal;
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            let mut history: Vec<Live> = Vec::new();
            let mut ticks = 0u32;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticker.tick() => {}
                }
                ticks += 1;
                let live = run.metrics().live();
                history.push(live);
                if history.len() > RATE_WINDOW + 1 {
                    history.remove(0);
                }
                let line = status_line(&run, &history);
                bar.set_position(u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX));
                bar.set_message(line.clone());
                if plain && ticks % PLAIN_EVERY == 0 {
                    eprintln!("[{:>5.1} s] {line}", run.started.elapsed().as_secs_f64());
                }
            }
            bar.finish_and_clear();
        });
        Progress { stop, task }
    }

    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Users, requests, orders and errors, with the rates of the last second.
fn status_line(run: &Run, history: &[Live]) -> String {
    let (Some(first), Some(now)) = (history.first(), history.last()) else { return String::new() };
    let seconds = TICK.as_secs_f64() * (history.len().saturating_sub(1)) as f64;
    let rate = |now: u64, then: u64| if seconds > 0.0 { (now - then.min(now)) as f64 / seconds } else { 0.0 };
    let in_flight = now.orders_placed.saturating_sub(now.orders_settled);
    let counts = format!(
        "{} req ({:.0}/s) · {} orders confirmed ({:.1}/s), {in_flight} in flight · {} errors",
        now.requests,
        rate(now.requests, first.requests),
        now.orders_confirmed,
        rate(now.orders_confirmed, first.orders_confirmed),
        now.errors,
    );
    if run.over() {
        format!("time is up, following the orders in flight · {counts}")
    } else {
        format!("{}/{} users · {counts}", run.active.load(Ordering::Relaxed), run.users)
    }
}
