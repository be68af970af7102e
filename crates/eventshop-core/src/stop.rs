//! Telling a background task to stop. Every long-running task on the bus (a consumer, a
//! relay) holds a [`StopSignal`] and asks it the same questions, between two pieces of work.

use std::time::Duration;

use tokio::sync::watch;

/// The receiving end of a stop request: a `watch` channel that turns `true`. A task whose
/// sender is gone stops too, so that dropping a handle can never leave a task behind
/// that nobody can stop.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl From<watch::Receiver<bool>> for StopSignal {
    fn from(receiver: watch::Receiver<bool>) -> Self {
        StopSignal(receiver)
    }
}

impl StopSignal {
    /// True once told to stop.
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once told to stop.
    pub async fn stopped(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sleeps for `duration`; true if told to stop meanwhile.
    pub async fn pause(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = self.stopped() => true,
            () = tokio::time::sleep(duration) => self.is_stopping(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_stops_when_told_or_when_its_sender_is_gone() {
        let (stop, receiver) = watch::channel(false);
        let mut signal = StopSignal::from(receiver);
        assert!(!signal.is_stopping());
        assert!(!signal.pause(Duration::from_millis(1)).await);
        stop.send_replace(true);
        assert!(signal.is_stopping());
        signal.stopped().await;

        let (stop, receiver) = watch::channel(false);
        let mut orphan = StopSignal::from(receiver);
        drop(stop);
        assert!(orphan.is_stopping());
        orphan.stopped().await;
    }
}
