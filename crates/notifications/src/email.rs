//! The email outbox: notifications created while SMTP was configured are emailed to their
//! recipient by a background task, through the server of the live setting
//! `notifications.smtp_url` (or `EVENTSHOP_SMTP_URL`, which wins, as the environment wins
//! over the file), from `notifications.smtp_from`.
//!
//! The outbox is the notifications view: a notification with `by_email` stays in it until
//! `EmailDelivered` (or a final `EmailFailed`) is recorded on its stream. Each attempt is
//! taken first (`EmailDeliveryStarted`, appended at the version it was decided on), so of
//! several instances only one sends; a failed attempt records when the next is due, with
//! exponential backoff, up to [`OutboxPolicy::max_attempts`]. Everything the outbox knows
//! is in the store, so a restart neither forgets an email nor sends a delivered one again.
//!
//! Delivery is at least once: an instance that dies after the server took the email and
//! before `EmailDelivered` is recorded leaves the attempt under way, and once its lease is
//! over another attempt sends it again (with the same `Message-ID`, by which a mail system
//! can tell the copy). In normal operation an email is sent exactly once.
//!
//! SMTP is plain (`smtp://host:port`): a local relay or sink. No TLS stack is built in.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use contracts::notifications::{NotificationsEvent, SMTP_FROM_SETTING, SMTP_URL_SETTING};
use contracts::values::Email;
use eventshop_core::bus::Running;
use eventshop_core::settings::Settings;
use eventshop_core::stop::StopSignal;
use eventshop_core::{CommandError, CommandHandler, EventStore};
use futures::StreamExt;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use runtime::LiveView;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::domain::{Notification, NotificationCommand};
use crate::view::{DueEmail, NotificationsView};

/// The environment variable that names the SMTP server, over the setting.
pub const SMTP_URL_ENVIRONMENT: &str = "EVENTSHOP_SMTP_URL";

/// How many emails one instance sends at once.
const CONCURRENT_ATTEMPTS: usize = 4;

/// The sender when `notifications.smtp_from` is not set.
pub const DEFAULT_FROM: &str = "eventshop <eventshop@localhost>";

/// How the outbox paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxPolicy {
    /// How often it looks for emails due.
    pub tick: Duration,
    /// The pause after the first failed attempt; doubled after each further one.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts before an email is given up.
    pub max_attempts: u32,
    /// How long one SMTP conversation may take.
    pub smtp_timeout: Duration,
    /// How long an attempt is left to its instance before another may take it over: well
    /// beyond `smtp_timeout`, so that only a dead instance's attempt is taken.
    pub lease: Duration,
    /// How long an email waits for its recipient's address to be learned from identity
    /// before it is given up.
    pub address_wait: Duration,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        OutboxPolicy {
            tick: Duration::from_millis(250),
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5 * 60),
            max_attempts: 10,
            smtp_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(2 * 60),
            address_wait: Duration::from_secs(10 * 60),
        }
    }
}

impl OutboxPolicy {
    /// The pause after failed attempt number `attempt` (1-based): doubling, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// The SMTP settings, followed live: the server's URL (`EVENTSHOP_SMTP_URL`, read once at
/// start, else `notifications.smtp_url`) and the sender (`notifications.smtp_from`).
///
/// Watched rather than read each time, since each notification made asks whether it is to
/// be emailed, and a NATS key-value read would cost a round trip each time.
#[derive(Debug)]
pub struct SmtpSettings {
    settings: Arc<dyn Settings>,
    environment_url: Option<String>,
    url: Option<watch::Receiver<Option<String>>>,
    from: Option<watch::Receiver<Option<String>>>,
}

impl SmtpSettings {
    /// Starts following the settings; one that cannot be watched is read at each use.
    pub async fn follow(settings: Arc<dyn Settings>) -> SmtpSettings {
        let environment_url = std::env::var(SMTP_URL_ENVIRONMENT).ok().and_then(|url| configured(Some(url)));
        let watch = |key: &'static str| {
            let settings = settings.clone();
            async move {
                match settings.watch(key).await {
                    Ok(receiver) => Some(receiver),
                    Err(error) => {
                        tracing::warn!(setting = key, %error, "cannot watch the setting; reading it each time");
                        None
                    }
                }
            }
        };
        let url = watch(SMTP_URL_SETTING).await;
        let from = watch(SMTP_FROM_SETTING).await;
        SmtpSettings { settings, environment_url, url, from }
    }

    /// The SMTP server's URL, if one is configured: the environment's, else the setting's.
    pub async fn url(&self) -> Option<String> {
        if let Some(url) = &self.environment_url {
            return Some(url.clone());
        }
        self.value(SMTP_URL_SETTING, self.url.as_ref()).await
    }

    /// The sender's mailbox text: the setting, or [`DEFAULT_FROM`].
    pub async fn from(&self) -> String {
        self.value(SMTP_FROM_SETTING, self.from.as_ref()).await.unwrap_or_else(|| DEFAULT_FROM.to_owned())
    }

    async fn value(&self, key: &str, watched: Option<&watch::Receiver<Option<String>>>) -> Option<String> {
        let value = match watched {
            Some(receiver) => receiver.borrow().clone(),
            None => self.settings.get(key).await.unwrap_or_else(|error| {
                tracing::warn!(setting = key, %error, "cannot read the setting; taking it as unset");
                None
            }),
        };
        configured(value)
    }
}

/// A setting's value trimmed; none when empty.
fn configured(value: Option<String>) -> Option<String> {
    value.map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
}

/// An SMTP server, from a `smtp://host[:port]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
}

/// Why an SMTP URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not an SMTP URL such as smtp://127.0.0.1:2525: {reason}")]
pub struct InvalidSmtpUrl {
    pub url: String,
    pub reason: &'static str,
}

impl SmtpServer {
    pub fn parse(url: &str) -> Result<SmtpServer, InvalidSmtpUrl> {
        let refuse = |reason| InvalidSmtpUrl { url: url.to_owned(), reason };
        let rest = url.strip_prefix("smtp://").ok_or_else(|| refuse("only smtp:// is supported (no TLS)"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(refuse("it takes a host and a port only"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            // A bracketed IPv6 address without a port has colons but no port.
            Some((host, port)) if !port.ends_with(']') => {
                (host, port.parse::<u16>().map_err(|_| refuse("the port is not a number from 1 to 65535"))?)
            }
            _ => (authority, 25),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(refuse("it needs a host and a port above 0"));
        }
        Ok(SmtpServer { host: host.to_owned(), port })
    }
}

/// Sends one email. The `Message-ID` is derived from the notification, so that a copy
/// sent again after a crash is recognisable.
pub async fn send_email(
    server: &SmtpServer,
    from: &Mailbox,
    to: &Email,
    notification_id: Uuid,
    subject: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), String> {
    let to: Mailbox = to.as_str().parse().map_err(|error| format!("the recipient's address {to}: {error}"))?;
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{notification_id}@eventshop>")))
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_owned())
        .map_err(|error| format!("cannot build the email: {error}"))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.as_str())
        .port(server.port)
        .timeout(Some(timeout))
        .build();
    transport.send(message).await.map(|_| ()).map_err(|error| error.to_string())
}

/// Delivers the emails due, one pass at a time.
#[derive(Debug)]
pub struct Outbox {
    view: LiveView<NotificationsView>,
    notifications: CommandHandler<Notification>,
    smtp: Arc<SmtpSettings>,
    policy: OutboxPolicy,
}

/// What became of one email in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempted {
    Delivered,
    Failed,
    /// Not attempted: another instance has it, it is not due, or it is settled.
    Skipped,
}

impl Outbox {
    pub fn new(
        view: LiveView<NotificationsView>,
        store: Arc<dyn EventStore>,
        smtp: Arc<SmtpSettings>,
        policy: OutboxPolicy,
    ) -> Self {
        Outbox { view, notifications: CommandHandler::new(store), smtp, policy }
    }

    /// Attempts every email due now, if SMTP is configured. Answers how many were
    /// delivered.
    pub async fn deliver_due(&self) -> usize {
        let Some(url) = self.smtp.url().await else { return 0 };
        let lease = chrono::Duration::from_std(self.policy.lease).unwrap_or(chrono::Duration::MAX);
        let due = self.view.read(|view| view.emails_due(Utc::now(), lease));
        if due.is_empty() {
            return 0;
        }
        // A bad URL or sender fails each attempt with the reason, so that it shows on the
        // notifications' streams rather than only in a log.
        let sender = match SmtpServer::parse(&url) {
            Ok(server) => {
                let from = self.smtp.from().await;
                match from.parse::<Mailbox>() {
                    Ok(from) => Ok((server, from)),
                    Err(error) => Err(format!("the sender {from:?} ({SMTP_FROM_SETTING}): {error}")),
                }
            }
            Err(error) => Err(error.to_string()),
        };
        // A few at once, so that one slow conversation does not hold up every other email.
        let attempts = futures::stream::iter(due).map(|email| self.attempt(email, &sender));
        let outcomes: Vec<Attempted> = attempts.buffer_unordered(CONCURRENT_ATTEMPTS).collect().await;
        outcomes.into_iter().filter(|outcome| *outcome == Attempted::Delivered).count()
    }

    async fn attempt(&self, due: DueEmail, sender: &Result<(SmtpServer, Mailbox), String>) -> Attempted {
        let DueEmail { email, to } = due;
        let id = email.notification_id;
        let started = Utc::now();
        if to.is_none() && !self.gave_up_waiting(email.created_at, started) {
            // Identity's registration of the recipient has not been recorded yet.
            return Attempted::Skipped;
        }
        let lease = chrono::Duration::from_std(self.policy.lease).unwrap_or(chrono::Duration::MAX);
        let start = NotificationCommand::StartEmail { now: started, lease };
        let attempt = match self.notifications.execute(id, &start, email.metadata).await {
            Ok(executed) => match executed.events.first() {
                Some(NotificationsEvent::EmailDeliveryStarted { attempt, .. }) => *attempt,
                _ => return Attempted::Skipped,
            },
            // Under way in another instance, or taken and failed there meanwhile.
            Err(CommandError::Domain(_) | CommandError::Conflict { .. }) => return Attempted::Skipped,
            Err(error) => {
                tracing::warn!(notification_id = %id, %error, "cannot start an email attempt; trying again later");
                return Attempted::Skipped;
            }
        };
        // Without an address there is nothing to retry: the wait for it is over.
        let retries = to.is_some();
        let outcome = match (sender, to) {
            (Ok((server, from)), Some(to)) => {
                let timeout = self.policy.smtp_timeout;
                send_email(server, from, &to, id, &email.subject, &email.body, timeout).await.map(|()| to)
            }
            (Err(reason), _) => Err(reason.clone()),
            (Ok(_), None) => Err("no email address is known for the recipient".to_owned()),
        };
        let (command, attempted) = match outcome {
            Ok(to) => {
                tracing::info!(notification_id = %id, attempt, "email delivered");
                (NotificationCommand::RecordDelivered { attempt, to }, Attempted::Delivered)
            }
            Err(error) => {
                let retry_at = if retries { self.retry_at(attempt, Utc::now()) } else { None };
                tracing::warn!(notification_id = %id, attempt, %error, ?retry_at, "email not delivered");
                (NotificationCommand::RecordFailed { attempt, error, retry_at }, Attempted::Failed)
            }
        };
        if let Err(error) = self.notifications.execute(id, &command, email.metadata).await {
            // The attempt stays under way until its lease ends; then it is made again.
            tracing::warn!(notification_id = %id, attempt, %error, "cannot record the outcome of an email attempt");
        }
        attempted
    }

    /// When the attempt after failed attempt `attempt` is due; none once the last failed.
    fn retry_at(&self, attempt: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if attempt >= self.policy.max_attempts {
            return None;
        }
        let backoff = chrono::Duration::from_std(self.policy.backoff(attempt)).unwrap_or(chrono::Duration::MAX);
        now.checked_add_signed(backoff)
    }

    fn gave_up_waiting(&self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let wait = chrono::Duration::from_std(self.policy.address_wait).unwrap_or(chrono::Duration::MAX);
        created_at.checked_add_signed(wait).is_some_and(|deadline| deadline <= now)
    }
}

/// Starts the task that delivers due emails every [`OutboxPolicy::tick`] until it is
/// stopped.
pub fn start(outbox: Outbox) -> Box<dyn Running> {
    let (stop, receiver) = watch::channel(false);
    let task = tokio::spawn(run(outbox, StopSignal::from(receiver)));
    Box::new(OutboxTask { stop, task })
}

async fn run(outbox: Outbox, mut stop: StopSignal) {
    loop {
        outbox.deliver_due().await;
        if stop.pause(outbox.policy.tick).await {
            return;
        }
    }
}

#[derive(Debug)]
struct OutboxTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[async_trait]
impl Running for OutboxTask {
    async fn stop(self: Box<Self>) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            tracing::error!(%error, "the email outbox panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_a_host_and_a_port() {
        let server = |host: &str, port| SmtpServer { host: host.to_owned(), port };
        assert_eq!(SmtpServer::parse("smtp://127.0.0.1:2525"), Ok(server("127.0.0.1", 2525)));
        assert_eq!(SmtpServer::parse("smtp://mail.example.com/"), Ok(server("mail.example.com", 25)));
        assert_eq!(SmtpServer::parse("smtp://[::1]:2525"), Ok(server("::1", 2525)));
        assert_eq!(SmtpServer::parse("smtp://[::1]"), Ok(server("::1", 25)));
        for bad in [
            "smtps://mail.example.com",
            "http://x",
            "smtp://",
            "smtp://:25",
            "smtp://host:0",
            "smtp://host:port",
            "smtp://user:secret@host:25",
            "smtp://host:25/path",
        ] {
            assert!(SmtpServer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = OutboxPolicy {
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
            ..OutboxPolicy::default()
        };
        let pauses: Vec<u64> = (1..=5).map(|attempt| policy.backoff(attempt).as_secs()).collect();
        assert_eq!(pauses, [2, 4, 8, 10, 10]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(10));
    }
}
