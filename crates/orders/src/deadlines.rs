//! The payment deadline (SPEC §2.6): an order that has not been confirmed, rejected or
//! cancelled within `orders.payment_timeout` of its placement is rejected with reason
//! `timeout`, and the services that react to the rejection compensate what was done.
//!
//! The orders waiting are in the orders view, which is replayed from the store at start:
//! a restarted instance finds every deadline it must still enforce, and one long past is
//! enforced at the first tick. The timeout is read from the live settings at every tick,
//! so a change applies without a restart. The rejection is decided by the `Order`
//! aggregate, which does nothing if the order moved on meanwhile; several instances may
//! tick at once, and the stream's expected version lets one of them win.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use contracts::orders::{PAYMENT_TIMEOUT_SETTING, RejectionReason};
use eventshop_core::bus::Running;
use eventshop_core::settings::Settings;
use eventshop_core::stop::StopSignal;
use eventshop_core::{CommandError, CommandHandler};
use runtime::LiveView;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::{Order, OrderCommand};
use crate::views::OrdersView;

/// How often the deadlines are checked.
pub const TICK: Duration = Duration::from_millis(250);

/// The payment timeout when the setting is absent or unreadable (SPEC §2.6).
pub const DEFAULT_PAYMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The payment timeout as the setting says now: a humantime duration such as `30s`, or
/// the default when the setting is absent or unreadable.
pub async fn payment_timeout(settings: &dyn Settings) -> Duration {
    match settings.get(PAYMENT_TIMEOUT_SETTING).await {
        Ok(Some(value)) => parse_timeout(&value).unwrap_or_else(|| {
            tracing::warn!(setting = PAYMENT_TIMEOUT_SETTING, %value, "not a duration such as \"30s\"; using the default");
            DEFAULT_PAYMENT_TIMEOUT
        }),
        Ok(None) => DEFAULT_PAYMENT_TIMEOUT,
        Err(error) => {
            tracing::warn!(setting = PAYMENT_TIMEOUT_SETTING, %error, "cannot read the setting; using the default");
            DEFAULT_PAYMENT_TIMEOUT
        }
    }
}

/// A timeout from its humantime text; zero is not a timeout.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    humantime::parse_duration(value.trim()).ok().filter(|timeout| !timeout.is_zero())
}

/// Rejects every overdue order once. Returns how many it rejected.
pub async fn enforce(view: &LiveView<OrdersView>, orders: &CommandHandler<Order>, timeout: Duration) -> usize {
    let Ok(timeout) = chrono::Duration::from_std(timeout) else {
        // A timeout beyond chrono's range never passes.
        return 0;
    };
    let overdue = view.read(|view| view.overdue(Utc::now() - timeout));
    let mut rejected = 0;
    for order in overdue {
        let command = OrderCommand::Reject { reason: RejectionReason::Timeout };
        match orders.execute(order.order_id, &command, order.metadata).await {
            Ok(executed) if !executed.events.is_empty() => {
                tracing::info!(order_id = %order.order_id, "order rejected: payment timeout");
                rejected += 1;
            }
            // It moved on (confirmed, rejected, cancelled) before the view saw it.
            Ok(_) => {}
            Err(CommandError::Domain(error)) => {
                tracing::warn!(order_id = %order.order_id, %error, "the deadline cannot reject this order");
            }
            Err(error) => {
                // The next tick tries again.
                tracing::warn!(order_id = %order.order_id, %error, "cannot reject an overdue order yet");
            }
        }
    }
    rejected
}

/// Starts the task that enforces deadlines every [`TICK`] until it is stopped.
pub fn start(
    view: LiveView<OrdersView>,
    orders: Arc<CommandHandler<Order>>,
    settings: Arc<dyn Settings>,
) -> Box<dyn Running> {
    let (stop, receiver) = watch::channel(false);
    let task = tokio::spawn(run(view, orders, settings, StopSignal::from(receiver)));
    Box::new(DeadlineTask { stop, task })
}

async fn run(
    view: LiveView<OrdersView>,
    orders: Arc<CommandHandler<Order>>,
    settings: Arc<dyn Settings>,
    mut stop: StopSignal,
) {
    loop {
        let timeout = payment_timeout(&*settings).await;
        enforce(&view, &orders, timeout).await;
        if stop.pause(TICK).await {
            return;
        }
    }
}

#[derive(Debug)]
struct DeadlineTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[async_trait]
impl Running for DeadlineTask {
    async fn stop(self: Box<Self>) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            tracing::error!(%error, "the deadline task panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventshop_core::settings::LocalSettings;

    #[tokio::test]
    async fn the_timeout_comes_from_the_setting_or_defaults_to_thirty_seconds() {
        let settings = LocalSettings::new([(PAYMENT_TIMEOUT_SETTING.to_owned(), "200ms".to_owned())]);
        assert_eq!(payment_timeout(&settings).await, Duration::from_millis(200));
        settings.set(PAYMENT_TIMEOUT_SETTING, " 2m ").await.expect("set");
        assert_eq!(payment_timeout(&settings).await, Duration::from_secs(120));
        for unreadable in ["soon", "0s", "-5s", ""] {
            settings.set(PAYMENT_TIMEOUT_SETTING, unreadable).await.expect("set");
            assert_eq!(payment_timeout(&settings).await, DEFAULT_PAYMENT_TIMEOUT, "{unreadable:?}");
        }
        assert_eq!(payment_timeout(&LocalSettings::new([])).await, DEFAULT_PAYMENT_TIMEOUT);
    }
}
