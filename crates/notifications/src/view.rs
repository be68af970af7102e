//! What notifications reads without loading a stream, folded from its own store: each
//! user's notifications newest first (ListNotifications), the recipients learned from
//! identity (their email, and who the administrators are), and the outbox of emails still
//! to be sent.
//!
//! It is replayed at start, so a restarted instance lists the same notifications and
//! finds every email it must still send; an email delivered before the restart is no
//! longer in the outbox. The reply shape of one notification is folded by
//! [`NotificationReplyBuilder`], which MarkNotificationRead uses on the notification's
//! stream too, so that a list and a mark can never describe one differently.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use contracts::notifications::{EmailStatus, ListNotifications, Notification as NotificationReply, NotificationsEvent};
use contracts::values::{Email, Page, PageRequest, PersonName, Role};
use eventshop_core::{CodecError, EventCodec, Metadata, Position, RecordedEvent};
use runtime::View;
use uuid::Uuid;

/// Folds a notification's events, with their recorded times, into the reply that shows it.
#[derive(Debug, Default, Clone)]
pub struct NotificationReplyBuilder {
    reply: Option<NotificationReply>,
}

impl NotificationReplyBuilder {
    /// The notification of `events`, one stream's events in version order; `None` if it
    /// was never sent.
    pub fn from_stream(
        codec: &EventCodec<NotificationsEvent>,
        events: &[RecordedEvent],
    ) -> Result<Option<NotificationReply>, CodecError> {
        let mut builder = NotificationReplyBuilder::default();
        for recorded in events {
            builder.apply(&codec.decode(recorded)?, recorded);
        }
        Ok(builder.reply)
    }

    pub fn apply(&mut self, event: &NotificationsEvent, recorded: &RecordedEvent) {
        if let NotificationsEvent::NotificationSent {
            notification_id,
            user_id,
            kind,
            subject,
            body,
            order_id,
            product_id,
            by_email,
        } = event
        {
            self.reply = Some(NotificationReply {
                id: *notification_id,
                user_id: *user_id,
                kind: *kind,
                subject: subject.clone(),
                body: body.clone(),
                order_id: *order_id,
                product_id: *product_id,
                created_at: recorded.recorded_at,
                read: false,
                read_at: None,
                email: if *by_email { EmailStatus::Pending } else { EmailStatus::NotSent },
                version: recorded.stream_version,
            });
            return;
        }
        let Some(reply) = &mut self.reply else { return };
        reply.version = recorded.stream_version;
        match event {
            NotificationsEvent::NotificationRead { .. } => {
                reply.read = true;
                reply.read_at = Some(recorded.recorded_at);
            }
            NotificationsEvent::EmailDelivered { .. } => reply.email = EmailStatus::Delivered,
            NotificationsEvent::EmailFailed { retry_at: None, .. } if reply.email == EmailStatus::Pending => {
                reply.email = EmailStatus::Failed;
            }
            _ => {}
        }
    }

    pub fn reply(&self) -> Option<&NotificationReply> {
        self.reply.as_ref()
    }
}

pub use contracts::values::ListError;

/// A user as notifications knows them, from identity's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub email: Email,
    pub name: PersonName,
    pub role: Role,
}

/// A notification whose email is still to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEmail {
    pub notification_id: Uuid,
    pub user_id: Uuid,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// The notification's transaction, which the email's events belong to.
    pub metadata: Metadata,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the attempt under way started, if one is.
    pub under_way: Option<DateTime<Utc>>,
    /// When the next attempt is due after a failure.
    pub retry_at: Option<DateTime<Utc>>,
}

/// An email due now, with the recipient's address if it is known yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEmail {
    pub email: PendingEmail,
    pub to: Option<Email>,
}

#[derive(Debug)]
struct Listed {
    reply: NotificationReplyBuilder,
    /// Where NotificationSent is in the store's global order: the list's key, newest first.
    position: Position,
}

/// Every notification, indexed per user, the recipients and the outbox.
#[derive(Debug, Default)]
pub struct NotificationsView {
    notifications: HashMap<Uuid, Listed>,
    by_user: HashMap<Uuid, BTreeMap<Position, Uuid>>,
    unread_by_user: HashMap<Uuid, BTreeMap<Position, Uuid>>,
    recipients: HashMap<Uuid, Recipient>,
    admins: BTreeSet<Uuid>,
    outbox: BTreeMap<Uuid, PendingEmail>,
    codec: EventCodec<NotificationsEvent>,
}

impl View for NotificationsView {
    fn apply(&mut self, recorded: &RecordedEvent) {
        let event = match self.codec.decode(recorded) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(event_id = %recorded.event_id, %error, "the notifications view skips an event it cannot decode");
                return;
            }
        };
        match &event {
            NotificationsEvent::RecipientRegistered { user_id, email, name, role } => {
                self.recipients.insert(*user_id, Recipient { email: email.clone(), name: name.clone(), role: *role });
                if *role == Role::Admin {
                    self.admins.insert(*user_id);
                }
                return;
            }
            NotificationsEvent::RecipientRenamed { user_id, name } => {
                if let Some(recipient) = self.recipients.get_mut(user_id) {
                    recipient.name = name.clone();
                }
                return;
            }
            NotificationsEvent::NotificationSent { notification_id, user_id, subject, body, by_email, .. } => {
                if self.notifications.contains_key(notification_id) {
                    return;
                }
                let mut reply = NotificationReplyBuilder::default();
                reply.apply(&event, recorded);
                self.notifications.insert(*notification_id, Listed { reply, position: recorded.position });
                self.by_user.entry(*user_id).or_default().insert(recorded.position, *notification_id);
                self.unread_by_user.entry(*user_id).or_default().insert(recorded.position, *notification_id);
                if *by_email {
                    let pending = PendingEmail {
                        notification_id: *notification_id,
                        user_id: *user_id,
                        subject: subject.clone(),
                        body: body.clone(),
                        created_at: recorded.recorded_at,
                        // The outbox acts on its own, not on anyone's behalf.
                        metadata: Metadata { acting_user: None, ..Metadata::caused_by(recorded) },
                        attempts: 0,
                        under_way: None,
                        retry_at: None,
                    };
                    self.outbox.insert(*notification_id, pending);
                }
                return;
            }
            _ => {}
        }
        let Some(notification_id) = notification_of(&event) else { return };
        let Some(listed) = self.notifications.get_mut(&notification_id) else { return };
        listed.reply.apply(&event, recorded);
        match event {
            NotificationsEvent::NotificationRead { user_id, .. } => {
                if let Some(unread) = self.unread_by_user.get_mut(&user_id) {
                    unread.remove(&listed.position);
                }
            }
            NotificationsEvent::EmailDeliveryStarted { attempt, started_at, .. } => {
                if let Some(pending) = self.outbox.get_mut(&notification_id) {
                    pending.attempts = attempt;
                    pending.under_way = Some(started_at);
                }
            }
            NotificationsEvent::EmailDelivered { .. } | NotificationsEvent::EmailFailed { retry_at: None, .. } => {
                self.outbox.remove(&notification_id);
            }
            NotificationsEvent::EmailFailed { retry_at: Some(retry_at), .. } => {
                if let Some(pending) = self.outbox.get_mut(&notification_id) {
                    pending.under_way = None;
                    pending.retry_at = Some(retry_at);
                }
            }
            _ => {}
        }
    }
}

/// The notification an event of a notification stream is about.
fn notification_of(event: &NotificationsEvent) -> Option<Uuid> {
    match event {
        NotificationsEvent::NotificationSent { notification_id, .. }
        | NotificationsEvent::NotificationRead { notification_id, .. }
        | NotificationsEvent::EmailDeliveryStarted { notification_id, .. }
        | NotificationsEvent::EmailDelivered { notification_id, .. }
        | NotificationsEvent::EmailFailed { notification_id, .. } => Some(*notification_id),
        NotificationsEvent::RecipientRegistered { .. } | NotificationsEvent::RecipientRenamed { .. } => None,
    }
}

impl NotificationsView {
    pub fn get(&self, notification_id: Uuid) -> Option<NotificationReply> {
        self.notifications.get(&notification_id).and_then(|listed| listed.reply.reply().cloned())
    }

    pub fn recipient(&self, user_id: Uuid) -> Option<&Recipient> {
        self.recipients.get(&user_id)
    }

    /// Every administrator known so far.
    pub fn admins(&self) -> Vec<Uuid> {
        self.admins.iter().copied().collect()
    }

    /// How many emails wait for delivery.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The emails to attempt at `now`: none under way (or one whose attempt started a
    /// `lease` ago or more, its instance presumed dead), and none whose retry is not due.
    pub fn emails_due(&self, now: DateTime<Utc>, lease: chrono::Duration) -> Vec<DueEmail> {
        self.outbox
            .values()
            .filter(|pending| pending.under_way.is_none_or(|started_at| started_at + lease <= now))
            .filter(|pending| pending.retry_at.is_none_or(|retry_at| retry_at <= now))
            .map(|pending| DueEmail {
                email: pending.clone(),
                to: self.recipients.get(&pending.user_id).map(|recipient| recipient.email.clone()),
            })
            .collect()
    }

    /// A page of a user's notifications, newest first; only unread ones if asked.
    pub fn list(&self, request: &ListNotifications) -> Result<Page<NotificationReply>, ListError> {
        let limit = request.page.limit;
        if limit == 0 || limit > PageRequest::MAX_LIMIT {
            return Err(ListError::Limit);
        }
        let before = request.page.cursor.as_deref().map(decode_cursor).transpose()?;
        let index = if request.unread_only { &self.unread_by_user } else { &self.by_user };
        let Some(index) = index.get(&request.user_id) else {
            return Ok(Page { items: Vec::new(), next_cursor: None });
        };
        let range = match before {
            Some(before) => index.range(..before),
            None => index.range(..),
        };
        // One more than asked for, to know whether another page follows.
        let mut shown: Vec<(Position, NotificationReply)> = range
            .rev()
            .filter_map(|(position, id)| self.get(*id).map(|reply| (*position, reply)))
            .take(limit as usize + 1)
            .collect();
        let next_cursor = if shown.len() > limit as usize {
            shown.truncate(limit as usize);
            shown.last().map(|(position, _)| encode_cursor(*position))
        } else {
            None
        };
        Ok(Page { items: shown.into_iter().map(|(_, reply)| reply).collect(), next_cursor })
    }
}

/// A cursor is the global position of the last notification shown: the next page starts
/// below it.
fn encode_cursor(position: Position) -> String {
    format!("n{}", position.0)
}

fn decode_cursor(cursor: &str) -> Result<Position, ListError> {
    let digits = cursor.strip_prefix('n').ok_or(ListError::Cursor)?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ListError::Cursor);
    }
    digits.parse().map(Position).map_err(|_| ListError::Cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_positions_and_nothing_else() {
        assert_eq!(decode_cursor(&encode_cursor(Position(42))), Ok(Position(42)));
        for bad in ["", "n", "42", "o42", "n4x", "n99999999999999999999999"] {
            assert_eq!(decode_cursor(bad), Err(ListError::Cursor), "{bad}");
        }
    }
}
