//! The notifications operations: a user's list, from the view, and marking one read, on
//! the notification's own stream.

use std::sync::Arc;

use contracts::notifications::{
    ListNotifications, MarkNotificationRead, Notification as NotificationReply, NotificationsEvent,
};
use contracts::values::Page;
use eventshop_core::bus::{MessageContext, Rejection, RejectionKind};
use eventshop_core::{CommandHandler, EventCodec, EventStore};
use runtime::{LiveView, command_rejection, internal};

use crate::domain::{Notification, NotificationCommand, NotificationError};
use crate::view::{NotificationReplyBuilder, NotificationsView};

/// Answers the notifications operations against the service's store and view.
#[derive(Debug)]
pub struct NotificationHandlers {
    store: Arc<dyn EventStore>,
    notifications: CommandHandler<Notification>,
    view: LiveView<NotificationsView>,
    codec: EventCodec<NotificationsEvent>,
}

impl NotificationHandlers {
    pub fn new(store: Arc<dyn EventStore>, view: LiveView<NotificationsView>) -> Self {
        NotificationHandlers {
            notifications: CommandHandler::new(store.clone()),
            store,
            view,
            codec: EventCodec::new(),
        }
    }

    /// A page of the user's notifications, newest first.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id))]
    pub async fn list(
        &self,
        request: ListNotifications,
        _context: MessageContext,
    ) -> Result<Page<NotificationReply>, Rejection> {
        self.view.read(|view| view.list(&request)).map_err(Rejection::from)
    }

    /// Marks the user's notification read and answers it; read again, it answers the
    /// same. Once answered, the user's list shows it read.
    #[tracing::instrument(skip_all, fields(notification_id = %request.notification_id))]
    pub async fn mark_read(
        &self,
        request: MarkNotificationRead,
        context: MessageContext,
    ) -> Result<NotificationReply, Rejection> {
        let command = NotificationCommand::MarkRead { user_id: request.user_id };
        let executed = self
            .notifications
            .execute(request.notification_id, &command, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, notification_rejection))?;
        if let Some(position) = executed.position {
            self.view.caught_up(position).await;
        }
        let stream_id = CommandHandler::<Notification>::stream_id(request.notification_id);
        let events = self.store.read_stream(&stream_id, 0).await.map_err(internal)?;
        NotificationReplyBuilder::from_stream(&self.codec, &events)
            .map_err(internal)?
            .ok_or_else(|| notification_rejection(NotificationError::NotFound))
    }
}

/// How a refused notification command is answered.
fn notification_rejection(error: NotificationError) -> Rejection {
    let kind = match error {
        NotificationError::NotFound => RejectionKind::NotFound,
        NotificationError::EmailUnderWay { .. } | NotificationError::EmailNotDue { .. } => RejectionKind::Conflict,
    };
    Rejection::new(kind, error.to_string())
}
