//! Orders' routes: placing an order, reading and listing orders, following an order's
//! progress as server-sent events, and cancelling it.
//!
//! Placing answers 202 at once: the checkout saga (SPEC §2) goes on in the services, and
//! the client follows it with `GET /api/orders/{id}` or `GET /api/orders/{id}/events`.
//! The order id comes from the `Idempotency-Key` when there is one, so a retried
//! placement names the same order, which orders answers as it did the first time: one
//! order, one charge.
//!
//! Who may see an order is orders' decision: the gateway sends the caller as `viewer`
//! (none for an administrator) and another user's order comes back NotFound (404).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use contracts::Role;
use contracts::identity::AddressInput;
use contracts::orders::{
    CancelOrder, GetOrder, ListOrders, Order, OrderAccepted, OrderItemRequest, OrderLine, OrderStatus, PlaceOrder,
    RejectionReason, StatusChange,
};
use contracts::values::{CardToken, PaymentMethod, Quantity};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::context::RequestContext;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{IdempotencyKey, Json, PathId, Query};
use crate::routes::identity::{AddressRequest, PostalAddressBody};
use crate::routes::{MoneyBody, page_request, with_entity_tag};
use crate::state::AppState;

/// How often the event stream asks orders for the order.
const EVENT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The longest an event stream stays open; a client that still wants to follow the
/// order reconnects (with `Last-Event-ID`, as browsers do by themselves).
const EVENT_STREAM_LIMIT: Duration = Duration::from_secs(10 * 60);

/// How often an idle event stream sends a comment, so that proxies keep it open.
const EVENT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// SPEC §2's order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OrderStatus)]
pub enum OrderStatusBody {
    Pending,
    StockReserved,
    Paid,
    Confirmed,
    Shipped,
    Delivered,
    Rejected,
    Cancelled,
}

impl From<OrderStatus> for OrderStatusBody {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => OrderStatusBody::Pending,
            OrderStatus::StockReserved => OrderStatusBody::StockReserved,
            OrderStatus::Paid => OrderStatusBody::Paid,
            OrderStatus::Confirmed => OrderStatusBody::Confirmed,
            OrderStatus::Shipped => OrderStatusBody::Shipped,
            OrderStatus::Delivered => OrderStatusBody::Delivered,
            OrderStatus::Rejected => OrderStatusBody::Rejected,
            OrderStatus::Cancelled => OrderStatusBody::Cancelled,
        }
    }
}

/// Why an order was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RejectionReason)]
pub enum RejectionReasonBody {
    OutOfStock,
    PaymentDeclined,
    Timeout,
}

impl From<RejectionReason> for RejectionReasonBody {
    fn from(reason: RejectionReason) -> Self {
        match reason {
            RejectionReason::OutOfStock => RejectionReasonBody::OutOfStock,
            RejectionReason::PaymentDeclined => RejectionReasonBody::PaymentDeclined,
            RejectionReason::Timeout => RejectionReasonBody::Timeout,
        }
    }
}

/// How an order is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PaymentMethodType)]
pub enum PaymentMethodType {
    /// The user's wallet.
    Wallet,
    /// The simulated card processor; needs a `token`.
    Card,
}

/// A payment method (SPEC §3): `{"type": "wallet"}` or `{"type": "card", "token": "tok_visa"}`.
// Read field by field rather than as the contracts' tagged enum: serde buffers a tagged
// enum's content, and the decode error would then name `payment_method`, not its token.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentMethod)]
pub struct PaymentMethodBody {
    #[serde(rename = "type")]
    pub method: PaymentMethodType,
    /// For a card: `tok_visa` or `tok_mastercard` succeed, `tok_chargeDeclined` and
    /// `tok_insufficientFunds` are declined; any other is refused with 422.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "tok_visa")]
    pub token: Option<CardToken>,
}

impl PaymentMethodBody {
    /// The contracts' payment method, or the field at fault under `field` (the JSON path
    /// of this object).
    pub fn parse(self, field: &str) -> Result<PaymentMethod, FieldError> {
        match (self.method, self.token) {
            (PaymentMethodType::Wallet, None) => Ok(PaymentMethod::Wallet),
            (PaymentMethodType::Wallet, Some(_)) => {
                Err(FieldError::new(format!("{field}.token"), "a wallet payment takes no token"))
            }
            (PaymentMethodType::Card, Some(token)) => Ok(PaymentMethod::Card { token }),
            (PaymentMethodType::Card, None) => {
                Err(FieldError::new(format!("{field}.token"), "a card payment needs a token"))
            }
        }
    }
}

impl From<PaymentMethod> for PaymentMethodBody {
    fn from(method: PaymentMethod) -> Self {
        match method {
            PaymentMethod::Wallet => PaymentMethodBody { method: PaymentMethodType::Wallet, token: None },
            PaymentMethod::Card { token } => PaymentMethodBody { method: PaymentMethodType::Card, token: Some(token) },
        }
    }
}

/// One line as the buyer asks for it.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OrderItem)]
pub struct OrderItemBody {
    pub product_id: Uuid,
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000, example = 2)]
    pub quantity: Quantity,
}

/// A new order. Lines naming the same product are merged; 1 to 50 lines.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub items: Vec<OrderItemBody>,
    pub shipping_address: AddressRequest,
    pub payment_method: PaymentMethodBody,
}

/// The answer to a placement or a checkout: the order exists; the saga goes on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = OrderAccepted)]
pub struct OrderAcceptedBody {
    pub order_id: Uuid,
    pub status: OrderStatusBody,
}

/// One line as placed, at the catalog's price of that moment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = OrderLine)]
pub struct OrderLineBody {
    pub product_id: Uuid,
    pub name: String,
    pub quantity: u32,
    pub unit_price: MoneyBody,
}

impl From<&OrderLine> for OrderLineBody {
    fn from(line: &OrderLine) -> Self {
        OrderLineBody {
            product_id: line.product_id,
            name: line.name.clone(),
            quantity: line.quantity,
            unit_price: line.unit_price.into(),
        }
    }
}

/// A status the order reached, and when.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = StatusChange)]
pub struct StatusChangeBody {
    pub status: OrderStatusBody,
    pub at: DateTime<Utc>,
}

impl From<&StatusChange> for StatusChangeBody {
    fn from(change: &StatusChange) -> Self {
        StatusChangeBody { status: change.status.into(), at: change.at }
    }
}

/// An order, as its owner and the administrators see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderBody {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatusBody,
    /// Why it was rejected; null unless `status` is `rejected`.
    pub reason: Option<RejectionReasonBody>,
    pub items: Vec<OrderLineBody>,
    pub total: MoneyBody,
    pub shipping_address: PostalAddressBody,
    pub payment_method: PaymentMethodBody,
    /// Every status reached, oldest first.
    pub history: Vec<StatusChangeBody>,
    pub created_at: DateTime<Utc>,
}

impl From<&Order> for OrderBody {
    fn from(order: &Order) -> Self {
        OrderBody {
            id: order.id,
            user_id: order.user_id,
            status: order.status.into(),
            reason: order.reason.map(Into::into),
            items: order.items.iter().map(OrderLineBody::from).collect(),
            total: order.total.into(),
            shipping_address: PostalAddressBody::from(&order.shipping_address),
            payment_method: order.payment_method.into(),
            history: order.history.iter().map(StatusChangeBody::from).collect(),
            created_at: order.created_at,
        }
    }
}

/// One page of orders, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderBody>,
    pub next_cursor: Option<String>,
}

/// Which orders to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListParameters {
    /// Only orders with this status.
    #[param(value_type = Option<OrderStatusBody>)]
    pub status: Option<String>,
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// What one event of `GET /api/orders/{id}/events` says (event type `status`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderStatusEvent {
    pub status: OrderStatusBody,
    /// Why the order was rejected, on the `rejected` event; else null.
    pub reason: Option<RejectionReasonBody>,
    pub at: DateTime<Utc>,
}

/// Who reads: an administrator reads any order (viewer none), anyone else their own.
pub(crate) fn viewer(user: &CurrentUser) -> Option<Uuid> {
    match user.role {
        Role::Admin => None,
        Role::Customer => Some(user.user_id),
    }
}

/// A 202 with the accepted order's `Location`.
pub(crate) fn accepted(accepted: &OrderAccepted) -> Response {
    let body = OrderAcceptedBody { order_id: accepted.order_id, status: accepted.status.into() };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/orders/{}", accepted.order_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `POST /api/orders`: places an order; the saga then reserves, charges and confirms it.
#[utoipa::path(
    post,
    path = "/api/orders",
    tag = "orders",
    security(("bearer" = [])),
    request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "The same key from the same user names the same order: a retry places nothing more")),
    responses(
        (status = 202, description = "Accepted; follow the order at Location", body = OrderAcceptedBody,
            headers(("Location" = String, description = "/api/orders/{order_id}"))),
        (status = 422, description = "A field is invalid: an unknown or discontinued product, an unknown card \
            token, no line or more than 50", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn place_order(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    idempotency: IdempotencyKey,
    Json(request): Json<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let payment_method =
        request.payment_method.parse("payment_method").map_err(|error| ApiError::invalid_fields(vec![error]))?;
    let command = PlaceOrder {
        order_id: idempotency.command_id(Some(user.user_id)),
        user_id: user.user_id,
        items: request
            .items
            .iter()
            .map(|item| OrderItemRequest { product_id: item.product_id, quantity: item.quantity })
            .collect(),
        shipping_address: AddressInput::from(request.shipping_address),
        payment_method,
    };
    let order = state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(accepted(&order))
}

/// `GET /api/orders/{id}`: an order with its status history.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The order", body = OrderBody, headers(("ETag" = String))),
        (status = 404, description = "No such order, or another user's", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(order_id): PathId,
) -> Result<Response, ApiError> {
    let order = state.call(&GetOrder { order_id, viewer: viewer(&user) }, context.message(Some(user.user_id))).await?;
    Ok(with_entity_tag(StatusCode::OK, order.version, OrderBody::from(&order)))
}

/// `GET /api/orders`: the user's orders, newest first; an administrator's lists everyone's.
#[utoipa::path(
    get,
    path = "/api/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(OrderListParameters),
    responses(
        (status = 200, description = "One page of orders", body = OrderPage),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    Query(parameters): Query<OrderListParameters>,
) -> Result<Json<OrderPage>, ApiError> {
    let mut errors = Vec::new();
    let status = match parameters.status.as_deref().map(str::trim).filter(|status| !status.is_empty()) {
        None => None,
        Some(status) => serde_json::from_value::<OrderStatus>(serde_json::Value::String(status.to_owned()))
            .map_err(|_| {
                errors.push(FieldError::new(
                    "status",
                    "must be one of pending, stock_reserved, paid, confirmed, shipped, delivered, rejected, cancelled",
                ))
            })
            .ok(),
    };
    let page = page_request(parameters.limit.as_deref(), parameters.cursor.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let request = ListOrders { user_id: viewer(&user), status, page };
    let found = state.call(&request, context.message(Some(user.user_id))).await?;
    Ok(Json(OrderPage { items: found.items.iter().map(OrderBody::from).collect(), next_cursor: found.next_cursor }))
}

/// `POST /api/orders/{id}/cancel`: cancels before dispatch; stock is released and the
/// payment refunded after the answer.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/cancel",
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 202, description = "Cancelled; the compensations follow", body = OrderBody, headers(("ETag" = String))),
        (status = 404, description = "No such order, or another user's", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "The order has been dispatched, or was rejected", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(order_id): PathId,
) -> Result<Response, ApiError> {
    let command = CancelOrder { order_id, viewer: viewer(&user) };
    let order = state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(with_entity_tag(StatusCode::ACCEPTED, order.version, OrderBody::from(&order)))
}

/// `GET /api/orders/{id}/events`: the order's statuses as server-sent events.
///
/// Each status reached is one event `status` with data `{status, reason, at}` and id its
/// place in the history (1 for `pending`), starting with every status already reached
/// (after `Last-Event-ID`, when the client reconnects). The stream closes after a
/// terminal status, and after 10 minutes at most.
#[utoipa::path(
    get,
    path = "/api/orders/{id}/events",
    tag = "orders",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The order"),
        ("Last-Event-ID" = Option<u32>, Header, description = "The id of the last event received: resume after it"),
    ),
    responses(
        (status = 200, description = "One `status` event per status reached; closes at delivered, rejected or \
            cancelled", body = OrderStatusEvent, content_type = "text/event-stream"),
        (status = 404, description = "No such order, or another user's", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn order_events(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(order_id): PathId,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query = GetOrder { order_id, viewer: viewer(&user) };
    // The first read answers before the stream starts, so that a missing order is a 404
    // problem rather than an empty stream.
    let order = state.call(&query, context.message(Some(user.user_id))).await?;
    let already_sent = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut follower = OrderFollower {
        state,
        context,
        acting_user: user.user_id,
        query,
        sent: already_sent,
        queued: VecDeque::new(),
        finished: false,
        deadline: Instant::now() + EVENT_STREAM_LIMIT,
    };
    follower.queue_new_statuses(&order);
    let stream = futures::stream::unfold(follower, |mut follower| async move {
        let event = follower.next_event().await?;
        Some((Ok(event), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(EVENT_KEEP_ALIVE)))
}

/// The state of one event stream: what was sent, what is queued, when to stop.
struct OrderFollower {
    state: AppState,
    context: RequestContext,
    acting_user: Uuid,
    query: GetOrder,
    /// How many statuses of the history were sent (or skipped by `Last-Event-ID`).
    sent: usize,
    queued: VecDeque<Event>,
    /// A terminal status is queued, or following failed: the stream ends once the queue
    /// is empty.
    finished: bool,
    deadline: Instant,
}

impl OrderFollower {
    /// Queues the statuses of `order` not sent yet, and finishes at a terminal one.
    fn queue_new_statuses(&mut self, order: &Order) {
        for (index, change) in order.history.iter().enumerate().skip(self.sent) {
            let reason = if change.status == OrderStatus::Rejected { order.reason.map(Into::into) } else { None };
            let data = OrderStatusEvent { status: change.status.into(), reason, at: change.at };
            let event = Event::default().event("status").id((index + 1).to_string());
            match event.json_data(&data) {
                Ok(event) => self.queued.push_back(event),
                Err(error) => tracing::error!(%error, "cannot encode an order status event"),
            }
        }
        self.sent = self.sent.max(order.history.len());
        if order.status.is_terminal() {
            self.finished = true;
        }
    }

    /// The next event to send, polling the order until there is one; None ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(event);
            }
            if self.finished || Instant::now() >= self.deadline {
                return None;
            }
            // The handler read the order once before the stream began.
            tokio::time::sleep(EVENT_POLL_INTERVAL).await;
            match self.state.call(&self.query, self.context.message(Some(self.acting_user))).await {
                Ok(order) => self.queue_new_statuses(&order),
                Err(error) => {
                    // The client's EventSource reconnects with Last-Event-ID and resumes.
                    tracing::warn!(%error, order_id = %self.query.order_id, "cannot follow the order; closing its stream");
                    let problem = error.problem();
                    if let Ok(event) = Event::default().event("error").json_data(&problem) {
                        self.queued.push_back(event);
                    }
                    self.finished = true;
                }
            }
        }
    }
}
