//! The notifications routes of SPEC §4: the user's notifications, newest first, and
//! marking one read.
//!
//! Notifications are made by the notifications service as orders and shipments move
//! (and, for administrators, when stock runs low); these routes only read them and mark
//! them. Another user's notification is not found (404), whoever asks.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use contracts::notifications::{EmailStatus, ListNotifications, MarkNotificationRead, Notification, NotificationKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::context::RequestContext;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, PathId, Query, parse_query_parameter};
use crate::routes::page_request;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/notifications", get(list_notifications))
        .route("/api/notifications/{id}/read", post(mark_notification_read))
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list_notifications, mark_notification_read),
    tags((name = "notifications", description = "Messages about the user's orders (and, to administrators, low stock)")),
)]
pub(crate) struct Api;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = NotificationKind)]
pub enum NotificationKindBody {
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    ShipmentDispatched,
    ShipmentDelivered,
    /// To administrators: a product's available stock fell under the threshold.
    LowStock,
}

impl From<NotificationKind> for NotificationKindBody {
    fn from(kind: NotificationKind) -> Self {
        match kind {
            NotificationKind::OrderConfirmed => NotificationKindBody::OrderConfirmed,
            NotificationKind::OrderRejected => NotificationKindBody::OrderRejected,
            NotificationKind::OrderCancelled => NotificationKindBody::OrderCancelled,
            NotificationKind::ShipmentDispatched => NotificationKindBody::ShipmentDispatched,
            NotificationKind::ShipmentDelivered => NotificationKindBody::ShipmentDelivered,
            NotificationKind::LowStock => NotificationKindBody::LowStock,
        }
    }
}

/// Where a notification's email stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = EmailStatus)]
pub enum EmailStatusBody {
    /// Not emailed: the shop had no SMTP server configured when it was made.
    NotSent,
    /// Waiting to be sent, or for a retry.
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl From<EmailStatus> for EmailStatusBody {
    fn from(status: EmailStatus) -> Self {
        match status {
            EmailStatus::NotSent => EmailStatusBody::NotSent,
            EmailStatus::Pending => EmailStatusBody::Pending,
            EmailStatus::Delivered => EmailStatusBody::Delivered,
            EmailStatus::Failed => EmailStatusBody::Failed,
        }
    }
}

/// A message to the user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Notification)]
pub struct NotificationBody {
    pub id: Uuid,
    pub kind: NotificationKindBody,
    #[schema(example = "Your order 0196b4c2-7a1e-7c3b-9f4e-2b8d5a6c1e90 is confirmed")]
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// The order it is about; null for low stock.
    pub order_id: Option<Uuid>,
    /// The product it is about (low stock); else null.
    pub product_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub email: EmailStatusBody,
}

impl From<&Notification> for NotificationBody {
    fn from(notification: &Notification) -> Self {
        NotificationBody {
            id: notification.id,
            kind: notification.kind.into(),
            subject: notification.subject.clone(),
            body: notification.body.clone(),
            order_id: notification.order_id,
            product_id: notification.product_id,
            created_at: notification.created_at,
            read: notification.read,
            read_at: notification.read_at,
            email: notification.email.into(),
        }
    }
}

/// One page of notifications, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationBody>,
    pub next_cursor: Option<String>,
}

/// Which notifications to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationListParameters {
    /// `true`: only the unread ones.
    #[param(value_type = Option<bool>)]
    pub unread: Option<String>,
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /api/notifications`: the user's notifications, newest first.
#[utoipa::path(
    get,
    path = "/api/notifications",
    tag = "notifications",
    security(("bearer" = [])),
    params(NotificationListParameters),
    responses(
        (status = 200, description = "One page of notifications", body = NotificationPage),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    Query(parameters): Query<NotificationListParameters>,
) -> Result<Json<NotificationPage>, ApiError> {
    let mut errors = Vec::new();
    let unread = parameters.unread.as_deref().map(str::trim).filter(|unread| !unread.is_empty());
    let unread_only = parse_query_parameter::<bool>("unread", unread, "true or false", &mut errors).unwrap_or(false);
    let page = page_request(parameters.limit.as_deref(), parameters.cursor.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let request = ListNotifications { user_id: user.user_id, unread_only, page };
    let found = state.call(&request, context.message(Some(user.user_id))).await?;
    Ok(Json(NotificationPage {
        items: found.items.iter().map(NotificationBody::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// `POST /api/notifications/{id}/read`: marks the user's notification read and answers
/// it; marking it again answers the same.
#[utoipa::path(
    post,
    path = "/api/notifications/{id}/read",
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification")),
    responses(
        (status = 200, description = "The notification, read", body = NotificationBody),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notification, or another user's", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn mark_notification_read(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(notification_id): PathId,
) -> Result<Json<NotificationBody>, ApiError> {
    let command = MarkNotificationRead { user_id: user.user_id, notification_id };
    let notification = state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(Json(NotificationBody::from(&notification)))
}
