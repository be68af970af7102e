//! A notification, as an aggregate (stream `notification-<id>`): sent once, read by its
//! recipient, and emailed through attempts that one instance at a time owns.
//!
//! Pure decisions, no I/O. The email outbox ([`crate::email`]) asks for an attempt
//! (`StartEmail`) before it talks to the SMTP server: the attempt is an event appended at
//! the version it was decided on, so of several instances only one wins it, and a
//! notification is never sent by two at once. An attempt whose instance died (no outcome
//! after the `lease` of [`NotificationCommand::StartEmail`]) may be taken again: the
//! email is delivered at least once, and never twice in normal operation.

use chrono::{DateTime, Utc};
use contracts::notifications::{NotificationKind, NotificationsEvent};
use contracts::values::Email;
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What can be done to a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationCommand {
    /// Creates the notification. Once: a second creation changes nothing.
    Send(NewNotification),
    /// Marks it read by `user_id`, who must be its recipient. Once.
    MarkRead { user_id: Uuid },
    /// Takes the next attempt at emailing it, at `now`. Refused while another attempt is
    /// under way (for less than `lease`) or before the retry is due; nothing when it is
    /// not to be emailed, or no longer.
    StartEmail { now: DateTime<Utc>, lease: chrono::Duration },
    /// Attempt `attempt` handed the email to the server. Recorded even if the attempt was
    /// taken over meanwhile, since the email did go; nothing if it was recorded before.
    RecordDelivered { attempt: u32, to: Email },
    /// Attempt `attempt` failed; the next is due at `retry_at` (none: give up). Nothing
    /// unless that attempt is the one under way.
    RecordFailed { attempt: u32, error: String, retry_at: Option<DateTime<Utc>> },
}

/// A notification to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub notification_id: Uuid,
    pub user_id: Uuid,
    pub kind: NotificationKind,
    pub subject: String,
    pub body: String,
    pub order_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub by_email: bool,
}

/// Why a command on a notification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// There is none, or it is another user's: the same answer, so ids reveal nothing.
    #[error("there is no such notification")]
    NotFound,
    #[error("attempt {attempt} at emailing it is under way since {started_at}")]
    EmailUnderWay { attempt: u32, started_at: DateTime<Utc> },
    #[error("the next attempt at emailing it is due at {retry_at}")]
    EmailNotDue { retry_at: DateTime<Utc> },
}

/// Where the email of a notification stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailState {
    /// Not to be emailed.
    NotWanted,
    /// To be emailed: `attempts` made so far, the one under way if any, and when the next
    /// is due after a failure.
    Pending {
        attempts: u32,
        under_way: Option<DateTime<Utc>>,
        retry_at: Option<DateTime<Utc>>,
    },
    Delivered,
    /// Given up.
    Failed,
}

/// What a notification is, set once when it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Sent {
    notification_id: Uuid,
    user_id: Uuid,
}

/// A notification's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id and recipient; none until the notification is sent.
    sent: Option<Sent>,
    read: bool,
    email: EmailState,
    /// How many events this state has applied, which is the stream's version.
    version: Version,
}

impl Default for Notification {
    fn default() -> Self {
        Notification { sent: None, read: false, email: EmailState::NotWanted, version: 0 }
    }
}

impl Notification {
    pub fn user_id(&self) -> Option<Uuid> {
        self.sent.map(|sent| sent.user_id)
    }

    pub fn is_read(&self) -> bool {
        self.read
    }

    pub fn email(&self) -> &EmailState {
        &self.email
    }

    pub fn version(&self) -> Version {
        self.version
    }

    fn start_email(
        &self,
        notification_id: Uuid,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Vec<NotificationsEvent>, NotificationError> {
        let EmailState::Pending { attempts, under_way, retry_at } = self.email else {
            return Ok(Vec::new());
        };
        if let Some(started_at) = under_way
            && now < started_at + lease
        {
            return Err(NotificationError::EmailUnderWay { attempt: attempts, started_at });
        }
        if let Some(retry_at) = retry_at
            && now < retry_at
        {
            return Err(NotificationError::EmailNotDue { retry_at });
        }
        Ok(vec![NotificationsEvent::EmailDeliveryStarted { notification_id, attempt: attempts + 1, started_at: now }])
    }
}

impl Aggregate for Notification {
    const CATEGORY: &'static str = "notification";

    type Command = NotificationCommand;
    type Event = NotificationsEvent;
    type Error = NotificationError;

    fn decide(&self, command: &NotificationCommand) -> Result<Vec<NotificationsEvent>, NotificationError> {
        let Some(Sent { notification_id, user_id: recipient }) = self.sent else {
            return match command {
                NotificationCommand::Send(new) => Ok(vec![NotificationsEvent::NotificationSent {
                    notification_id: new.notification_id,
                    user_id: new.user_id,
                    kind: new.kind,
                    subject: new.subject.clone(),
                    body: new.body.clone(),
                    order_id: new.order_id,
                    product_id: new.product_id,
                    by_email: new.by_email,
                }]),
                _ => Err(NotificationError::NotFound),
            };
        };
        match command {
            NotificationCommand::Send(_) => Ok(Vec::new()),
            NotificationCommand::MarkRead { user_id } if *user_id != recipient => Err(NotificationError::NotFound),
            NotificationCommand::MarkRead { .. } if self.read => Ok(Vec::new()),
            NotificationCommand::MarkRead { .. } => {
                Ok(vec![NotificationsEvent::NotificationRead { notification_id, user_id: recipient }])
            }
            NotificationCommand::StartEmail { now, lease } => self.start_email(notification_id, *now, *lease),
            NotificationCommand::RecordDelivered { attempt, to } => match self.email {
                EmailState::Delivered | EmailState::NotWanted => Ok(Vec::new()),
                EmailState::Pending { .. } | EmailState::Failed => {
                    Ok(vec![NotificationsEvent::EmailDelivered { notification_id, attempt: *attempt, to: to.clone() }])
                }
            },
            NotificationCommand::RecordFailed { attempt, error, retry_at } => match self.email {
                EmailState::Pending { attempts, under_way: Some(_), .. } if attempts == *attempt => {
                    Ok(vec![NotificationsEvent::EmailFailed {
                        notification_id,
                        attempt: *attempt,
                        error: error.clone(),
                        retry_at: *retry_at,
                    }])
                }
                _ => Ok(Vec::new()),
            },
        }
    }

    fn apply(mut self, event: &NotificationsEvent) -> Self {
        self.version += 1;
        match event {
            NotificationsEvent::NotificationSent { notification_id, user_id, by_email, .. } => {
                self.sent = Some(Sent { notification_id: *notification_id, user_id: *user_id });
                self.email = if *by_email {
                    EmailState::Pending { attempts: 0, under_way: None, retry_at: None }
                } else {
                    EmailState::NotWanted
                };
            }
            NotificationsEvent::NotificationRead { .. } => self.read = true,
            NotificationsEvent::EmailDeliveryStarted { attempt, started_at, .. } => {
                if let EmailState::Pending { attempts, under_way, .. } = &mut self.email {
                    *attempts = *attempt;
                    *under_way = Some(*started_at);
                }
            }
            NotificationsEvent::EmailDelivered { .. } => self.email = EmailState::Delivered,
            NotificationsEvent::EmailFailed { retry_at, .. } => {
                self.email = match (&self.email, retry_at) {
                    (EmailState::Pending { attempts, .. }, Some(retry_at)) => {
                        EmailState::Pending { attempts: *attempts, under_way: None, retry_at: Some(*retry_at) }
                    }
                    (EmailState::Pending { .. }, None) => EmailState::Failed,
                    (other, _) => other.clone(),
                };
            }
            // Recorded on recipient streams, not here.
            NotificationsEvent::RecipientRegistered { .. } | NotificationsEvent::RecipientRenamed { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use eventshop_core::testing::AggregateTest;

    use super::*;

    const ID: Uuid = Uuid::from_u128(0x4e07);
    const ANN: Uuid = Uuid::from_u128(0xa11ce);
    const EVE: Uuid = Uuid::from_u128(0xe7e);

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid time")
    }

    fn lease() -> chrono::Duration {
        chrono::Duration::seconds(60)
    }

    fn ann_email() -> Email {
        Email::try_from("ann@shop.test".to_owned()).expect("valid")
    }

    fn new(by_email: bool) -> NewNotification {
        NewNotification {
            notification_id: ID,
            user_id: ANN,
            kind: NotificationKind::OrderConfirmed,
            subject: "Your order is confirmed".to_owned(),
            body: "Thank you.".to_owned(),
            order_id: Some(Uuid::from_u128(0x0de5)),
            product_id: None,
            by_email,
        }
    }

    fn sent(by_email: bool) -> NotificationsEvent {
        let new = new(by_email);
        NotificationsEvent::NotificationSent {
            notification_id: ID,
            user_id: ANN,
            kind: new.kind,
            subject: new.subject,
            body: new.body,
            order_id: new.order_id,
            product_id: None,
            by_email,
        }
    }

    fn started(attempt: u32, seconds: i64) -> NotificationsEvent {
        NotificationsEvent::EmailDeliveryStarted { notification_id: ID, attempt, started_at: at(seconds) }
    }

    fn failed(attempt: u32, retry_at: Option<i64>) -> NotificationsEvent {
        NotificationsEvent::EmailFailed {
            notification_id: ID,
            attempt,
            error: "451 try later".to_owned(),
            retry_at: retry_at.map(at),
        }
    }

    fn delivered(attempt: u32) -> NotificationsEvent {
        NotificationsEvent::EmailDelivered { notification_id: ID, attempt, to: ann_email() }
    }

    fn start(seconds: i64) -> NotificationCommand {
        NotificationCommand::StartEmail { now: at(seconds), lease: lease() }
    }

    fn record_failed(attempt: u32, retry_at: Option<i64>) -> NotificationCommand {
        NotificationCommand::RecordFailed { attempt, error: "451 try later".to_owned(), retry_at: retry_at.map(at) }
    }

    #[test]
    fn a_notification_is_sent_once() {
        AggregateTest::<Notification>::given_no_history()
            .when(NotificationCommand::Send(new(true)))
            .then_expect_events(vec![sent(true)]);
        AggregateTest::<Notification>::given(vec![sent(true)])
            .when(NotificationCommand::Send(new(true)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn only_its_recipient_reads_it_and_only_once() {
        let read = NotificationsEvent::NotificationRead { notification_id: ID, user_id: ANN };
        AggregateTest::<Notification>::given(vec![sent(false)])
            .when(NotificationCommand::MarkRead { user_id: ANN })
            .then_expect_events(vec![read.clone()]);
        AggregateTest::<Notification>::given(vec![sent(false), read])
            .when(NotificationCommand::MarkRead { user_id: ANN })
            .then_expect_events(vec![]);
        AggregateTest::<Notification>::given(vec![sent(false)])
            .when(NotificationCommand::MarkRead { user_id: EVE })
            .then_expect_error(NotificationError::NotFound);
        AggregateTest::<Notification>::given_no_history()
            .when(NotificationCommand::MarkRead { user_id: ANN })
            .then_expect_error(NotificationError::NotFound);
    }

    #[test]
    fn an_email_is_attempted_by_one_instance_at_a_time() {
        AggregateTest::<Notification>::given(vec![sent(true)]).when(start(0)).then_expect_events(vec![started(1, 0)]);
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0)])
            .when(start(59))
            .then_expect_error(NotificationError::EmailUnderWay { attempt: 1, started_at: at(0) });
        // An attempt whose instance died is taken over once its lease is over.
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0)])
            .when(start(60))
            .then_expect_events(vec![started(2, 60)]);
    }

    #[test]
    fn a_failed_attempt_is_retried_when_due_and_given_up_at_last() {
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0)])
            .when(record_failed(1, Some(2)))
            .then_expect_events(vec![failed(1, Some(2))]);
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0), failed(1, Some(2))])
            .when(start(1))
            .then_expect_error(NotificationError::EmailNotDue { retry_at: at(2) });
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0), failed(1, Some(2))])
            .when(start(2))
            .then_expect_events(vec![started(2, 2)]);
        let given_up = vec![sent(true), started(1, 0), failed(1, None)];
        let state = AggregateTest::<Notification>::given(given_up.clone()).when(start(5)).then_state();
        assert_eq!(state.email(), &EmailState::Failed);
        AggregateTest::<Notification>::given(given_up).when(start(5)).then_expect_events(vec![]);
        // A failure of an attempt that is no longer the one under way changes nothing.
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0), started(2, 60)])
            .when(record_failed(1, Some(70)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_delivery_is_recorded_once_and_ends_the_attempts() {
        let record = |attempt| NotificationCommand::RecordDelivered { attempt, to: ann_email() };
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0)])
            .when(record(1))
            .then_expect_events(vec![delivered(1)]);
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0), delivered(1)])
            .when(record(1))
            .then_expect_events(vec![]);
        AggregateTest::<Notification>::given(vec![sent(true), started(1, 0), delivered(1)])
            .when(start(100))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_notification_not_to_be_emailed_is_never_attempted() {
        AggregateTest::<Notification>::given(vec![sent(false)]).when(start(0)).then_expect_events(vec![]);
        AggregateTest::<Notification>::given_no_history().when(start(0)).then_expect_error(NotificationError::NotFound);
    }
}
