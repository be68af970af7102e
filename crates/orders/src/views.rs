//! What orders reads without loading a stream: the live view of every order (for
//! ListOrders) and of the orders still waiting for stock and payment (for the deadline).
//!
//! Both are folded from the orders service's own store, replayed at start, so a restarted
//! instance lists every order and finds every deadline it must still enforce. The reply
//! shape of one order is folded by [`OrderReplyBuilder`], which GetOrder uses on the
//! order's stream too, so that a list and a get can never describe an order differently.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use contracts::orders::{ListOrders, Order as OrderReply, OrderStatus, OrdersEvent, StatusChange};
use contracts::values::{Page, PageRequest};
use eventshop_core::{CodecError, EventCodec, Metadata, Position, RecordedEvent};
use runtime::View;
use uuid::Uuid;

use crate::domain::{Order, order_id_of, status_after};

/// Folds an order's events, with their recorded times, into the reply that shows it.
#[derive(Debug, Default, Clone)]
pub struct OrderReplyBuilder {
    reply: Option<OrderReply>,
}

impl OrderReplyBuilder {
    /// The order of `events`, one stream's events in version order; `None` if it was never
    /// placed.
    pub fn from_stream(
        codec: &EventCodec<OrdersEvent>,
        events: &[RecordedEvent],
    ) -> Result<Option<OrderReply>, CodecError> {
        let mut builder = OrderReplyBuilder::default();
        for recorded in events {
            builder.apply(&codec.decode(recorded)?, recorded);
        }
        Ok(builder.reply)
    }

    pub fn apply(&mut self, event: &OrdersEvent, recorded: &RecordedEvent) {
        if let OrdersEvent::OrderPlaced { order_id, user_id, lines, total, shipping_address, payment_method } = event {
            self.reply = Some(OrderReply {
                id: *order_id,
                user_id: *user_id,
                status: OrderStatus::Pending,
                reason: None,
                items: lines.clone(),
                total: *total,
                shipping_address: shipping_address.clone(),
                payment_method: *payment_method,
                history: vec![StatusChange { status: OrderStatus::Pending, at: recorded.recorded_at }],
                created_at: recorded.recorded_at,
                version: recorded.stream_version,
            });
            return;
        }
        // Events of an order never placed cannot be shown; the aggregate never decides any.
        let Some(reply) = &mut self.reply else { return };
        reply.version = recorded.stream_version;
        if let OrdersEvent::OrderRejected { reason, .. } = event {
            reply.reason = Some(*reason);
        }
        if let Some(status) = status_after(event) {
            reply.status = status;
            reply.history.push(StatusChange { status, at: recorded.recorded_at });
        }
    }

    pub fn reply(&self) -> Option<&OrderReply> {
        self.reply.as_ref()
    }
}

pub use contracts::values::ListError;

/// An order still waiting for stock and payment, and what its rejection is caused by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwaitingOrder {
    pub order_id: Uuid,
    pub placed_at: DateTime<Utc>,
    /// Caused by the placement, in the order's transaction, so that a trace of the order
    /// shows its timeout.
    pub metadata: Metadata,
}

#[derive(Debug)]
struct Listed {
    reply: OrderReplyBuilder,
    /// Where OrderPlaced is in the store's global order: the listing's key, newest first.
    placed_position: Position,
}

/// Every order of the service, indexed for ListOrders, and the ones awaiting a deadline.
#[derive(Debug, Default)]
pub struct OrdersView {
    orders: HashMap<Uuid, Listed>,
    newest: BTreeMap<Position, Uuid>,
    by_user: HashMap<Uuid, BTreeMap<Position, Uuid>>,
    by_status: HashMap<OrderStatus, BTreeMap<Position, Uuid>>,
    awaiting: HashMap<Uuid, AwaitingOrder>,
    codec: EventCodec<OrdersEvent>,
}

impl View for OrdersView {
    fn apply(&mut self, recorded: &RecordedEvent) {
        if recorded.stream_id.category() != <Order as eventshop_core::Aggregate>::CATEGORY {
            return;
        }
        let event = match self.codec.decode(recorded) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(event_id = %recorded.event_id, %error, "the orders view skips an event it cannot decode");
                return;
            }
        };
        if let OrdersEvent::OrderPlaced { order_id, user_id, .. } = &event {
            if self.orders.contains_key(order_id) {
                return;
            }
            self.newest.insert(recorded.position, *order_id);
            self.by_user.entry(*user_id).or_default().insert(recorded.position, *order_id);
            self.awaiting.insert(
                *order_id,
                AwaitingOrder {
                    order_id: *order_id,
                    placed_at: recorded.recorded_at,
                    // The deadline acts on its own, not on the buyer's behalf.
                    metadata: Metadata { acting_user: None, ..Metadata::caused_by(recorded) },
                },
            );
            let mut reply = OrderReplyBuilder::default();
            reply.apply(&event, recorded);
            self.orders.insert(*order_id, Listed { reply, placed_position: recorded.position });
            self.by_status.entry(OrderStatus::Pending).or_default().insert(recorded.position, *order_id);
            return;
        }
        let order_id = order_id_of(&event);
        let Some(listed) = self.orders.get_mut(&order_id) else { return };
        let before = listed.reply.reply().map(|reply| reply.status);
        listed.reply.apply(&event, recorded);
        let after = listed.reply.reply().map(|reply| reply.status);
        let position = listed.placed_position;
        if let (Some(before), Some(after)) = (before, after)
            && before != after
        {
            if let Some(index) = self.by_status.get_mut(&before) {
                index.remove(&position);
            }
            self.by_status.entry(after).or_default().insert(position, order_id);
            if !matches!(after, OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid) {
                self.awaiting.remove(&order_id);
            }
        }
    }
}

impl OrdersView {
    pub fn get(&self, order_id: Uuid) -> Option<OrderReply> {
        self.orders.get(&order_id).and_then(|listed| listed.reply.reply().cloned())
    }

    /// The orders placed at or before `placed_before` that are still waiting for stock or
    /// payment, oldest first.
    pub fn overdue(&self, placed_before: DateTime<Utc>) -> Vec<AwaitingOrder> {
        let mut overdue: Vec<AwaitingOrder> =
            self.awaiting.values().filter(|awaiting| awaiting.placed_at <= placed_before).copied().collect();
        overdue.sort_by_key(|awaiting| awaiting.placed_at);
        overdue
    }

    /// How many orders wait for stock and payment.
    pub fn awaiting_count(&self) -> usize {
        self.awaiting.len()
    }

    /// A page of orders, newest first, of one user and/or one status.
    pub fn list(&self, request: &ListOrders) -> Result<Page<OrderReply>, ListError> {
        let limit = request.page.limit;
        if limit == 0 || limit > PageRequest::MAX_LIMIT {
            return Err(ListError::Limit);
        }
        let before = request.page.cursor.as_deref().map(decode_cursor).transpose()?;
        let empty = BTreeMap::new();
        // The narrowest index that holds every order asked for; the other filter is checked
        // per order.
        let index = match (request.user_id, request.status) {
            (Some(user_id), _) => self.by_user.get(&user_id).unwrap_or(&empty),
            (None, Some(status)) => self.by_status.get(&status).unwrap_or(&empty),
            (None, None) => &self.newest,
        };
        let range = match before {
            Some(before) => index.range(..before),
            None => index.range(..),
        };
        // One more than asked for, to know whether another page follows.
        let mut shown: Vec<(Position, OrderReply)> = range
            .rev()
            .filter_map(|(position, order_id)| self.get(*order_id).map(|reply| (*position, reply)))
            .filter(|(_, reply)| request.status.is_none_or(|status| status == reply.status))
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

/// A cursor is the global position of the last order shown: the next page starts below it.
fn encode_cursor(position: Position) -> String {
    format!("o{}", position.0)
}

fn decode_cursor(cursor: &str) -> Result<Position, ListError> {
    let digits = cursor.strip_prefix('o').ok_or(ListError::Cursor)?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ListError::Cursor);
    }
    digits.parse().map(Position).map_err(|_| ListError::Cursor)
}
