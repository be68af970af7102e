//! Payments' routes for the user logged in: the wallet, deposits and the wallet's
//! movements.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use contracts::payments::{
    DepositFunds, GetWallet, ListWalletTransactions, TransactionKind, Wallet, WalletTransaction,
};
use contracts::values::PositiveAmount;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::context::RequestContext;
use crate::error::{ApiError, Problem};
use crate::extract::{IdempotencyKey, Json, Query};
use crate::routes::{CurrencyBody, MoneyBody, page_request};
use crate::state::AppState;

/// A wallet: its balance. A user who never deposited has an empty one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Wallet)]
pub struct WalletBody {
    pub balance: MoneyBody,
    pub currency: CurrencyBody,
}

impl From<&Wallet> for WalletBody {
    fn from(wallet: &Wallet) -> Self {
        WalletBody { balance: wallet.balance.into(), currency: wallet.currency.into() }
    }
}

/// Money to add to the wallet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    /// More than zero.
    #[schema(value_type = MoneyBody)]
    pub amount: PositiveAmount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TransactionKind)]
pub enum TransactionKindBody {
    Deposit,
    Capture,
    Refund,
}

impl From<TransactionKind> for TransactionKindBody {
    fn from(kind: TransactionKind) -> Self {
        match kind {
            TransactionKind::Deposit => TransactionKindBody::Deposit,
            TransactionKind::Capture => TransactionKindBody::Capture,
            TransactionKind::Refund => TransactionKindBody::Refund,
        }
    }
}

/// One movement of the wallet's money.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = WalletTransaction)]
pub struct TransactionBody {
    pub id: Uuid,
    pub kind: TransactionKindBody,
    /// Positive for deposits and refunds, negative for captures.
    pub amount: MoneyBody,
    pub order_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

impl From<&WalletTransaction> for TransactionBody {
    fn from(transaction: &WalletTransaction) -> Self {
        TransactionBody {
            id: transaction.id,
            kind: transaction.kind.into(),
            amount: transaction.amount.into(),
            order_id: transaction.order_id,
            at: transaction.at,
        }
    }
}

/// One page of movements, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransactionPage {
    pub items: Vec<TransactionBody>,
    pub next_cursor: Option<String>,
}

/// Which page of movements.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParameters {
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /api/wallet`: the user's wallet.
#[utoipa::path(
    get,
    path = "/api/wallet",
    tag = "payments",
    security(("bearer" = [])),
    responses((status = 200, description = "The wallet", body = WalletBody))
)]
pub(crate) async fn get_wallet(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
) -> Result<Json<WalletBody>, ApiError> {
    let wallet = state.call(&GetWallet { user_id: user.user_id }, context.message(Some(user.user_id))).await?;
    Ok(Json(WalletBody::from(&wallet)))
}

/// `POST /api/wallet/deposits`: adds money to the wallet.
#[utoipa::path(
    post,
    path = "/api/wallet/deposits",
    tag = "payments",
    security(("bearer" = [])),
    request_body = DepositRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry deposit nothing more")),
    responses(
        (status = 201, description = "The wallet after the deposit", body = WalletBody, headers(("Location" = String))),
        (status = 422, description = "The amount is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn deposit(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    idempotency: IdempotencyKey,
    Json(request): Json<DepositRequest>,
) -> Result<Response, ApiError> {
    let command = DepositFunds {
        user_id: user.user_id,
        transaction_id: idempotency.command_id(Some(user.user_id)),
        amount: request.amount,
    };
    let wallet = state.call(&command, context.message(Some(user.user_id))).await?;
    let mut response = (StatusCode::CREATED, Json(WalletBody::from(&wallet))).into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/api/wallet"));
    Ok(response)
}

/// `GET /api/wallet/transactions`: the wallet's movements, newest first.
#[utoipa::path(
    get,
    path = "/api/wallet/transactions",
    tag = "payments",
    security(("bearer" = [])),
    params(PageParameters),
    responses(
        (status = 200, description = "One page of movements", body = TransactionPage),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_transactions(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    Query(parameters): Query<PageParameters>,
) -> Result<Json<TransactionPage>, ApiError> {
    let mut errors = Vec::new();
    let page = page_request(parameters.limit.as_deref(), parameters.cursor.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let request = ListWalletTransactions { user_id: user.user_id, page };
    let found = state.call(&request, context.message(Some(user.user_id))).await?;
    Ok(Json(TransactionPage {
        items: found.items.iter().map(TransactionBody::from).collect(),
        next_cursor: found.next_cursor,
    }))
}
