//! notifications: messages to buyers and administrators about what happened to their orders and the stock, kept in the app and sent by email when SMTP is configured.
//!
//! A notification is created by a reaction to another service's event (SPEC §2.7) and is
//! its own stream (`notification-<id>`): sent, read, and the attempts to email it. What
//! notifications learns of users (their email, name and role) it records on
//! `recipient-<user id>` streams first, as every service records what it learns.

use chrono::{DateTime, Utc};
use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation;
use crate::values::{Email, Page, PageRequest, PersonName, Role};

pub const SERVICE: &str = "notifications";

/// The live setting naming the SMTP server that notifications are emailed through, as a
/// URL such as `smtp://127.0.0.1:2525`. Absent: notifications stay in the app.
pub const SMTP_URL_SETTING: &str = "notifications.smtp_url";

/// The live setting naming the sender of notification emails, such as
/// `eventshop <shop@example.com>`.
pub const SMTP_FROM_SETTING: &str = "notifications.smtp_from";

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    ShipmentDispatched,
    ShipmentDelivered,
    /// To every administrator: a product's available stock fell under the threshold.
    LowStock,
}

/// Where the email of a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Not to be emailed: SMTP was not configured when the notification was created.
    NotSent,
    /// Waiting for its first attempt or for a retry.
    Pending,
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

/// A notification as its recipient sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: Uuid,
    /// The recipient.
    pub user_id: Uuid,
    pub kind: NotificationKind,
    pub subject: String,
    pub body: String,
    /// The order it is about, if any.
    pub order_id: Option<Uuid>,
    /// The product it is about, if any (low stock).
    pub product_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub email: EmailStatus,
    /// The version of the notification's stream.
    pub version: u64,
}

/// A user's notifications, newest first; only the unread ones when `unread_only`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListNotifications {
    pub user_id: Uuid,
    #[serde(default)]
    pub unread_only: bool,
    pub page: PageRequest,
}
operation!(ListNotifications, SERVICE, Page<Notification>);

/// Marks a notification read; marking it again answers it as it is. Another user's
/// notification is NotFound.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkNotificationRead {
    pub user_id: Uuid,
    pub notification_id: Uuid,
}
operation!(MarkNotificationRead, SERVICE, Notification);

/// The events of a notification's stream (`notification-<id>`) and of a recipient's
/// (`recipient-<user id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum NotificationsEvent {
    /// A notification was created for `user_id`, rendered from its kind's template.
    /// `by_email`: it is to be emailed too (SMTP was configured).
    NotificationSent {
        notification_id: Uuid,
        user_id: Uuid,
        kind: NotificationKind,
        subject: String,
        body: String,
        order_id: Option<Uuid>,
        product_id: Option<Uuid>,
        by_email: bool,
    },
    NotificationRead {
        notification_id: Uuid,
        user_id: Uuid,
    },
    /// An instance took attempt `attempt` at emailing the notification: it alone sends
    /// until the attempt ends or is `started_at` too long ago (it crashed).
    EmailDeliveryStarted {
        notification_id: Uuid,
        attempt: u32,
        started_at: DateTime<Utc>,
    },
    /// The SMTP server took the email.
    EmailDelivered {
        notification_id: Uuid,
        attempt: u32,
        to: Email,
    },
    /// An attempt failed; the next is due at `retry_at`, or none is made when it is null.
    EmailFailed {
        notification_id: Uuid,
        attempt: u32,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    /// Learned from identity's `UserRegistered`: where and whom to write.
    RecipientRegistered {
        user_id: Uuid,
        email: Email,
        name: PersonName,
        role: Role,
    },
    /// Learned from identity's `UserProfileChanged`.
    RecipientRenamed {
        user_id: Uuid,
        name: PersonName,
    },
}

impl DomainEvent for NotificationsEvent {}

/// The id of the notification that event `event_id` causes for `recipient`: derived, so
/// that an event handled again finds the notification it made the first time.
pub fn notification_id(event_id: Uuid, recipient: Uuid) -> Uuid {
    Uuid::new_v5(&event_id, recipient.as_bytes())
}
