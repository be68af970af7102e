//! What a virtual user does, scenario by scenario.
//!
//! The shopper follows the mix of Online Boutique's load generator (its locustfile:
//! index 1, setCurrency 2, browseProduct 10, addToCart 2, viewCart 3, checkout 1). This shop
//! has no currencies, so setCurrency is left out, which makes 17 actions; one product view
//! of the ten becomes a search, the action this shop has and the boutique's index lacks.
//! As there, adding to the cart first views the product, and a checkout first adds to the
//! cart. Unlike there, a checkout here is followed to its outcome: the user polls the order
//! (backing off from 10 ms to 250 ms) until it is confirmed or rejected, then waits for
//! the cart to be emptied (the saga's last step) before shopping on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::distributions::{Distribution, WeightedIndex};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::arguments::{LoadtestArguments, Payment, Scenario};
use crate::metrics::Outcome;
use crate::setup::{Catalog, FlashSale};
use crate::shop::{Backoff, Failed, Shop};

/// One thing a user does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Action {
    /// A page of the listing, sometimes of one category, in one of the four sorts.
    Browse,
    /// A full-text search.
    Search,
    ViewProduct,
    /// Views a product, then puts 1 to 3 of it in the cart.
    AddToCart,
    ViewCart,
    /// Adds to the cart, checks out, follows the order.
    Checkout,
}

/// The shopper's weights: Online Boutique's, without setCurrency (see the module docs).
pub(crate) const SHOPPER_MIX: &[(Action, u32)] = &[
    (Action::Browse, 1),
    (Action::Search, 1),
    (Action::ViewProduct, 9),
    (Action::AddToCart, 2),
    (Action::ViewCart, 3),
    (Action::Checkout, 1),
];

/// The anonymous reader's weights: product pages, listings and searches.
pub(crate) const BROWSE_MIX: &[(Action, u32)] = &[(Action::Browse, 3), (Action::Search, 2), (Action::ViewProduct, 10)];

/// A weighted choice of actions.
#[derive(Debug, Clone)]
pub(crate) struct Mix {
    actions: Vec<Action>,
    weights: WeightedIndex<u32>,
}

impl Mix {
    pub fn new(mix: &[(Action, u32)]) -> Mix {
        let weights = WeightedIndex::new(mix.iter().map(|(_, weight)| *weight))
            .expect("the constant mixes have positive weights");
        Mix { actions: mix.iter().map(|(action, _)| *action).collect(), weights }
    }

    pub fn pick(&self, rng: &mut StdRng) -> Action {
        self.actions[self.weights.sample(rng)]
    }
}

/// The share of `action` in `mix`: how often it is picked in the long run.
#[cfg(test)]
pub(crate) fn share(mix: &[(Action, u32)], action: Action) -> f64 {
    let total: u32 = mix.iter().map(|(_, weight)| weight).sum();
    let weight: u32 = mix.iter().filter(|(candidate, _)| *candidate == action).map(|(_, weight)| weight).sum();
    f64::from(weight) / f64::from(total)
}

const ORDER_ENDPOINT: &str = "GET /api/orders/{id}";
const CART_ENDPOINT: &str = "GET /api/cart";
const PRODUCT_ENDPOINT: &str = "GET /api/products/{id}";
const PASSWORD: &str = "loadtest-password";
/// What each user deposits when paying from the wallet: 1,000,000.00 EUR, more than
/// any run spends.
const DEPOSIT_CENTS: i64 = 100_000_000;
/// Access tokens live 15 minutes; a user logs in again after this.
const TOKEN_AGE: Duration = Duration::from_secs(10 * 60);
/// How long a user waits for the cart to be emptied after its order was confirmed.
const CART_CLEAR_TIMEOUT: Duration = Duration::from_secs(15);
/// Flash-sale buyers look at the product page again after this much (plus jitter) when
/// it shows nothing left.
const REFRESH_PAUSE: Duration = Duration::from_millis(50);

/// One run: the shop, what the users shop from, and when they stop.
#[derive(Debug)]
pub(crate) struct Run {
    shop: Shop,
    catalog: Arc<Catalog>,
    flash_sale: Option<Arc<FlashSale>>,
    scenario: Scenario,
    payment: Payment,
    think: Duration,
    order_timeout: Duration,
    seed: Option<u64>,
    /// Makes this run's emails unique.
    run_id: String,
    pub started: Instant,
    pub duration: Duration,
    pub users: u32,
    /// Users acting now (started, not finished).
    pub active: AtomicU32,
}

/// Counts a user as active while it lives.
struct Active<'a>(&'a AtomicU32);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A registered user's session.
#[derive(Debug)]
struct Customer {
    email: String,
    token: String,
    logged_in: Instant,
}

impl Run {
    pub fn new(
        shop: Shop,
        catalog: Arc<Catalog>,
        flash_sale: Option<Arc<FlashSale>>,
        arguments: &LoadtestArguments,
        started: Instant,
    ) -> Run {
        Run {
            shop,
            catalog,
            flash_sale,
            scenario: arguments.scenario,
            payment: arguments.payment,
            think: arguments.think,
            order_timeout: arguments.order_timeout,
            seed: arguments.seed,
            run_id: Uuid::now_v7().simple().to_string(),
            started,
            duration: arguments.duration,
            users: arguments.users,
            active: AtomicU32::new(0),
        }
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.shop.metrics
    }

    /// The time is up: no new action starts (orders placed are still followed).
    pub fn over(&self) -> bool {
        self.started.elapsed() >= self.duration
    }

    /// Virtual user `index`, from start to end.
    pub async fn user(&self, index: u32) {
        self.active.fetch_add(1, Ordering::Relaxed);
        let _active = Active(&self.active);
        let mut rng = match self.seed {
            // Distinct, repeatable streams per user.
            Some(seed) => StdRng::seed_from_u64(seed ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => StdRng::from_entropy(),
        };
        match self.scenario {
            Scenario::Shopper => self.shopper(index, &mut rng).await,
            Scenario::FlashSale => self.flash_buyer(index, &mut rng).await,
            Scenario::Browse => self.browser(&mut rng).await,
        }
    }

    async fn shopper(&self, index: u32, rng: &mut StdRng) {
        let Ok(mut customer) = self.register(index).await else { return };
        let mix = Mix::new(SHOPPER_MIX);
        while !self.over() {
            let action = mix.pick(rng);
            // A failed request is recorded where it happens; the user goes on.
            let _ = match action {
                Action::Browse => self.browse(rng).await,
                Action::Search => self.search(rng).await,
                Action::ViewProduct => self.view_product(rng).await.map(drop),
                Action::AddToCart => self.add_to_cart(&mut customer, rng).await,
                Action::ViewCart => self.view_cart(&mut customer).await,
                Action::Checkout => self.checkout(&mut customer, rng).await,
            };
            self.think(rng).await;
        }
    }

    async fn browser(&self, rng: &mut StdRng) {
        let mix = Mix::new(BROWSE_MIX);
        while !self.over() {
            let _ = match mix.pick(rng) {
                Action::Search => self.search(rng).await,
                Action::ViewProduct => self.view_product(rng).await.map(drop),
                _ => self.browse(rng).await,
            };
            self.think(rng).await;
        }
    }

    /// Refreshes the sale's product page; while it shows units left, orders one and
    /// follows the order. Rejections for want of stock are the point of a flash sale, not
    /// errors.
    async fn flash_buyer(&self, index: u32, rng: &mut StdRng) {
        let Some(sale) = self.flash_sale.clone() else { return };
        let Ok(mut customer) = self.register(index).await else { return };
        let page = format!("/api/products/{}", sale.product_id);
        while !self.over() {
            let product = self.shop.call(PRODUCT_ENDPOINT, self.shop.request(Method::GET, &page)).await;
            let left = product.as_ref().map(|product| product["available"].as_u64().unwrap_or_default()).unwrap_or(0);
            if left > 0 {
                let body = json!({
                    "items": [{"product_id": sale.product_id, "quantity": 1}],
                    "shipping_address": address(index),
                    "payment_method": self.payment_method(),
                });
                let Some(token) = self.token(&mut customer).await else { continue };
                let request = self.shop.request(Method::POST, "/api/orders").bearer_auth(&token).json(&body);
                if let Ok(accepted) = self.shop.call("POST /api/orders", request).await {
                    self.settle(&token, &accepted, &["out_of_stock"]).await;
                }
            } else {
                tokio::time::sleep(REFRESH_PAUSE + Duration::from_millis(rng.gen_range(0..50))).await;
            }
            self.think(rng).await;
        }
    }

    /// Registers user `index` (a new email each run), logs in, and funds the wallet.
    async fn register(&self, index: u32) -> Result<Customer, Failed> {
        let email = format!("load-{}-{index}@loadtest.test", self.run_id);
        let registration = json!({"email": email, "password": PASSWORD, "name": format!("Load Shopper {index}")});
        self.shop.call("POST /api/users", self.shop.request(Method::POST, "/api/users").json(&registration)).await?;
        let token = self.log_in(&email).await?;
        if self.payment == Payment::Wallet {
            let deposit = json!({"amount": {"amount": DEPOSIT_CENTS, "currency": "EUR"}});
            let request = self.shop.request(Method::POST, "/api/wallet/deposits").bearer_auth(&token).json(&deposit);
            self.shop.call("POST /api/wallet/deposits", request).await?;
        }
        Ok(Customer { email, token, logged_in: Instant::now() })
    }

    async fn log_in(&self, email: &str) -> Result<String, Failed> {
        let form = [("grant_type", "password"), ("username", email), ("password", PASSWORD)];
        let answer =
            self.shop.call("POST /oauth/token", self.shop.request(Method::POST, "/oauth/token").form(&form)).await?;
        match answer["access_token"].as_str() {
            Some(token) => Ok(token.to_owned()),
            None => {
                self.shop.metrics.record_error("POST /oauth/token: no access_token", &answer.to_string());
                Err(Failed)
            }
        }
    }

    /// The customer's access token, logging in again when it is about to expire.
    async fn token(&self, customer: &mut Customer) -> Option<String> {
        if customer.logged_in.elapsed() > TOKEN_AGE {
            customer.token = self.log_in(&customer.email).await.ok()?;
            customer.logged_in = Instant::now();
        }
        Some(customer.token.clone())
    }

    async fn browse(&self, rng: &mut StdRng) -> Result<(), Failed> {
        let sort = ["newest", "price_asc", "price_desc", "rating"].choose(rng).copied().unwrap_or("newest");
        let mut path = format!("/api/products?limit=20&sort={sort}");
        if rng.gen_bool(0.5) {
            if let Some(category) = self.catalog.categories.choose(rng) {
                path.push_str(&format!("&category={category}"));
            }
        }
        self.shop.call("GET /api/products", self.shop.request(Method::GET, &path)).await.map(drop)
    }

    async fn search(&self, rng: &mut StdRng) -> Result<(), Failed> {
        let word = self.catalog.search_words.choose(rng).map(String::as_str).unwrap_or("load");
        let path = format!("/api/products?q={word}&limit=20");
        self.shop.call("GET /api/products?q=", self.shop.request(Method::GET, &path)).await.map(drop)
    }

    /// A random product's page; answers the product's id.
    async fn view_product(&self, rng: &mut StdRng) -> Result<String, Failed> {
        let Some(product) = self.catalog.products.choose(rng) else { return Err(Failed) };
        let path = format!("/api/products/{}", product.id);
        self.shop.call(PRODUCT_ENDPOINT, self.shop.request(Method::GET, &path)).await?;
        Ok(product.id.clone())
    }

    async fn add_to_cart(&self, customer: &mut Customer, rng: &mut StdRng) -> Result<(), Failed> {
        let product_id = self.view_product(rng).await?;
        let token = self.token(customer).await.ok_or(Failed)?;
        let quantity: u32 = rng.gen_range(1..=3);
        let request = self
            .shop
            .request(Method::PUT, &format!("/api/cart/items/{product_id}"))
            .bearer_auth(token)
            .json(&json!({"quantity": quantity}));
        self.shop.call("PUT /api/cart/items/{product_id}", request).await.map(drop)
    }

    async fn view_cart(&self, customer: &mut Customer) -> Result<(), Failed> {
        let token = self.token(customer).await.ok_or(Failed)?;
        self.shop.call(CART_ENDPOINT, self.shop.request(Method::GET, "/api/cart").bearer_auth(token)).await.map(drop)
    }

    /// Adds to the cart, checks out, follows the order, waits for the cart to empty.
    async fn checkout(&self, customer: &mut Customer, rng: &mut StdRng) -> Result<(), Failed> {
        self.add_to_cart(customer, rng).await?;
        let token = self.token(customer).await.ok_or(Failed)?;
        let body =
            json!({"shipping_address": address(rng.gen_range(0..1_000)), "payment_method": self.payment_method()});
        let request = self.shop.request(Method::POST, "/api/cart/checkout").bearer_auth(&token).json(&body);
        let accepted = self.shop.call("POST /api/cart/checkout", request).await?;
        if let Some(Outcome::Confirmed { .. }) = self.settle(&token, &accepted, &[]).await {
            self.wait_for_empty_cart(&token).await;
        }
        Ok(())
    }

    /// Follows an accepted order (the 202's body) to its outcome and records it; a
    /// rejection for a reason not in `expected` is also an error.
    async fn settle(&self, token: &str, accepted: &Value, expected: &[&str]) -> Option<Outcome> {
        let accepted_at = Instant::now();
        let metrics = &self.shop.metrics;
        let Some(order_id) = accepted["order_id"].as_str() else {
            metrics.record_error("placement: a 202 without order_id", &accepted.to_string());
            return None;
        };
        metrics.order_placed();
        let outcome = self.follow(token, order_id, accepted_at).await;
        metrics.order_settled(&outcome);
        match &outcome {
            Outcome::Rejected { reason } if !expected.contains(&reason.as_str()) => {
                metrics.record_error(&format!("order rejected: {reason}"), &format!("order {order_id}"));
            }
            Outcome::TimedOut => metrics.record_error(
                &format!("order not settled within {}", humantime::format_duration(self.order_timeout)),
                &format!("order {order_id}"),
            ),
            _ => {}
        }
        Some(outcome)
    }

    /// Polls the order until it is confirmed (or later), rejected or cancelled, or the
    /// order timeout passes. The client's time runs from the 202 to the poll that saw it.
    async fn follow(&self, token: &str, order_id: &str, accepted_at: Instant) -> Outcome {
        let path = format!("/api/orders/{order_id}");
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(250));
        loop {
            tokio::time::sleep(backoff.pause()).await;
            if let Ok(order) =
                self.shop.call(ORDER_ENDPOINT, self.shop.request(Method::GET, &path).bearer_auth(token)).await
            {
                match order["status"].as_str() {
                    Some("confirmed" | "shipped" | "delivered") => {
                        return Outcome::Confirmed { client: accepted_at.elapsed(), shop: shop_time(&order) };
                    }
                    Some(status @ ("rejected" | "cancelled")) => {
                        let reason = order["reason"].as_str().unwrap_or(status).to_owned();
                        return Outcome::Rejected { reason };
                    }
                    _ => {}
                }
            }
            if accepted_at.elapsed() > self.order_timeout {
                return Outcome::TimedOut;
            }
        }
    }

    /// The saga's last step empties the cart of a confirmed order; shopping on before
    /// then would put items in a cart about to be cleared.
    async fn wait_for_empty_cart(&self, token: &str) {
        let since = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(250));
        loop {
            let cart =
                self.shop.call(CART_ENDPOINT, self.shop.request(Method::GET, "/api/cart").bearer_auth(token)).await;
            if cart.as_ref().is_ok_and(|cart| cart["items"].as_array().is_some_and(Vec::is_empty)) {
                return;
            }
            if since.elapsed() > CART_CLEAR_TIMEOUT {
                self.shop.metrics.record_error(
                    "cart not emptied after its order was confirmed",
                    &format!("still not empty after {}", humantime::format_duration(CART_CLEAR_TIMEOUT)),
                );
                return;
            }
            tokio::time::sleep(backoff.pause()).await;
        }
    }

    fn payment_method(&self) -> Value {
        match self.payment {
            Payment::Wallet => json!({"type": "wallet"}),
            Payment::Card => json!({"type": "card", "token": "tok_visa"}),
        }
    }

    async fn think(&self, rng: &mut StdRng) {
        if !self.think.is_zero() {
            tokio::time::sleep(self.think.mul_f64(rng.gen_range(0.0..=1.0))).await;
        }
    }
}

fn address(number: u32) -> Value {
    json!({"name": "Load Shopper", "line1": format!("{} Market Street", number + 1), "city": "Berlin",
        "postal_code": "10115", "country": "DE"})
}

/// Pending → confirmed by the order's own history: the saga's time inside the shop.
fn shop_time(order: &Value) -> Option<Duration> {
    let history = order["history"].as_array()?;
    let at = |status: &str| {
        history
            .iter()
            .find(|change| change["status"] == status)
            .and_then(|change| change["at"].as_str())
            .and_then(|at| at.parse::<DateTime<Utc>>().ok())
    };
    (at("confirmed")? - at("pending")?).to_std().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_shopper_checks_out_once_in_17_actions_and_mostly_browses() {
        assert_eq!(SHOPPER_MIX.iter().map(|(_, weight)| weight).sum::<u32>(), 17);
        assert!((share(SHOPPER_MIX, Action::Checkout) - 1.0 / 17.0).abs() < 1e-12);
        let reading = [Action::Browse, Action::Search, Action::ViewProduct, Action::ViewCart];
        let read_share: f64 = reading.iter().map(|action| share(SHOPPER_MIX, *action)).sum();
        assert!((read_share - 14.0 / 17.0).abs() < 1e-12);
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::new(SHOPPER_MIX);
        let mut rng = StdRng::seed_from_u64(7);
        let draws = 170_000;
        let mut counts = BTreeMap::new();
        for _ in 0..draws {
            *counts.entry(mix.pick(&mut rng)).or_insert(0u32) += 1;
        }
        for (action, _) in SHOPPER_MIX {
            let observed = f64::from(counts[action]) / f64::from(draws);
            let expected = share(SHOPPER_MIX, *action);
            // Five standard deviations of a binomial share at this many draws.
            let tolerance = 5.0 * (expected * (1.0 - expected) / f64::from(draws)).sqrt();
            assert!((observed - expected).abs() < tolerance, "{action:?}: {observed} vs {expected}");
        }
    }

    #[test]
    fn browsing_only_reads() {
        let mix = Mix::new(BROWSE_MIX);
        let mut rng = StdRng::seed_from_u64(1);
        assert!(
            (0..10_000).all(|_| matches!(mix.pick(&mut rng), Action::Browse | Action::Search | Action::ViewProduct))
        );
    }

    #[test]
    fn the_shop_clock_reads_the_history() {
        let order = json!({"history": [
            {"status": "pending", "at": "2026-01-01T00:00:00.000Z"},
            {"status": "stock_reserved", "at": "2026-01-01T00:00:00.010Z"},
            {"status": "confirmed", "at": "2026-01-01T00:00:00.042Z"},
        ]});
        assert_eq!(shop_time(&order), Some(Duration::from_millis(42)));
        assert_eq!(shop_time(&json!({"history": [{"status": "pending", "at": "2026-01-01T00:00:00Z"}]})), None);
    }
}
