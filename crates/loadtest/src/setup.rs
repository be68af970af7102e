//! Before and after the run, as the administrator and untimed: the products the users
//! shop from, their stock, the flash sale's product, and the flash sale's check.
//!
//! The load products are skus `LOAD-001`… created with an `Idempotency-Key` derived from
//! the sku, so every run after the first finds the same products; their stock is topped up
//! to [`STOCK_TARGET`] units each run. A flash sale gets a product of its own per run
//! (sku `LOAD-FLASH-<run>`), because its check must know exactly how many units were ever
//! stocked; it is discontinued after the check so that runs do not pile up in the listing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Error;
use crate::arguments::{LoadtestArguments, Scenario};
use crate::metrics::Metrics;
use crate::report::{FlashSaleCheck, InventoryLevels};
use crate::shop::transport_kind;

/// Units every load product holds after the setup: more than any run here sells.
pub(crate) const STOCK_TARGET: u64 = 100_000;

/// How long the setup waits for the catalog to show a flash sale's stock, and the check
/// for the inventory to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

const ADJECTIVES: &[&str] = &["amber", "birch", "cobalt", "coral", "dune", "ember", "fern", "granite"];
const NOUNS: &[&str] = &["teapot", "lantern", "notebook", "backpack", "scarf", "skillet", "kite", "candle", "puzzle"];
const CATEGORIES: &[&str] = &["load-home", "load-travel", "load-kitchen", "load-toys"];

/// What the users shop from.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub products: Vec<Product>,
    pub categories: Vec<String>,
    /// Words that occur in the products' names: the searches.
    pub search_words: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub id: String,
}

/// The product of a flash sale and what was stocked.
#[derive(Debug, Clone)]
pub(crate) struct FlashSale {
    pub product_id: String,
    pub sku: String,
    pub units: u32,
    /// The product's `created_at`, by the shop's clock: no order of it is older.
    pub created_at: DateTime<Utc>,
}

/// The result of the setup.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub catalog: Arc<Catalog>,
    pub flash_sale: Option<Arc<FlashSale>>,
}

impl Prepared {
    pub fn describe(&self) -> String {
        let mut text = format!("{} products", self.catalog.products.len());
        if let Some(sale) = &self.flash_sale {
            text.push_str(&format!("; flash sale of {} units of {}", sale.units, sale.sku));
        }
        text
    }
}

/// The `i`-th load product (from 1): sku, name, category, price in cents.
pub(crate) fn load_product(index: u32) -> (String, String, &'static str, i64) {
    let position = index as usize;
    let adjective = ADJECTIVES[position % ADJECTIVES.len()];
    let noun = NOUNS[position % NOUNS.len()];
    let name = format!("{}{} {noun} {index}", adjective[..1].to_uppercase(), &adjective[1..]);
    let price = 100 + i64::from(index) * 137 % 2_900;
    (format!("LOAD-{index:03}"), name, CATEGORIES[position % CATEGORIES.len()], price)
}

/// Makes the shop ready for `arguments`' scenario.
pub(crate) async fn prepare(http: &Client, base: &str, arguments: &LoadtestArguments) -> Result<Prepared, Error> {
    let Some((email, password)) = arguments.admin() else {
        // Only browse gets here (validated): it browses whatever the shop sells.
        return Ok(Prepared { catalog: Arc::new(listed_catalog(http, base).await?), flash_sale: None });
    };
    let admin = Admin::log_in(http, base, email, password).await?;
    let catalog = load_catalog(&admin, arguments).await?;
    let flash_sale = match arguments.scenario {
        Scenario::FlashSale => Some(Arc::new(flash_sale(&admin, arguments.flash_units()).await?)),
        Scenario::Shopper | Scenario::Browse => None,
    };
    Ok(Prepared { catalog: Arc::new(catalog), flash_sale })
}

/// Creates (or finds) the load products; for the shopper, tops up their stock.
async fn load_catalog(admin: &Admin, arguments: &LoadtestArguments) -> Result<Catalog, Error> {
    let mut products = Vec::new();
    let mut words = Vec::new();
    for index in 1..=arguments.products {
        let (sku, name, category, price) = load_product(index);
        let body = json!({
            "sku": sku, "name": name, "category": category,
            "description": format!("{name}: a product of the eventshop load test."),
            "price": {"amount": price, "currency": "EUR"},
        });
        let key = format!("loadtest-product-{sku}");
        let id = match admin.send(Method::POST, "/api/products", Some(&key), Some(body)).await {
            Ok(product) => text(&product, "id")?,
            Err(Refused { status: Some(StatusCode::CONFLICT), .. }) => admin.find_by_sku(&sku, category).await?,
            Err(refused) => return Err(Error::Setup(format!("creating {sku}: {refused}"))),
        };
        if arguments.scenario == Scenario::Shopper {
            admin.top_up(&id, STOCK_TARGET).await?;
        }
        words.extend(name.split_whitespace().filter(|word| word.len() > 3).map(str::to_lowercase));
        products.push(Product { id });
    }
    words.sort();
    words.dedup();
    let mut categories: Vec<String> = (1..=arguments.products).map(|index| load_product(index).2.to_owned()).collect();
    categories.sort();
    categories.dedup();
    Ok(Catalog { products, categories, search_words: words })
}

/// Browse without the administrator: the first page of whatever the shop sells.
async fn listed_catalog(http: &Client, base: &str) -> Result<Catalog, Error> {
    let response = http
        .get(format!("{base}/api/products?limit=100"))
        .send()
        .await
        .map_err(|error| Error::Setup(format!("listing the products: {}: {error}", transport_kind(&error))))?;
    let status = response.status();
    let page: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(Error::Setup(format!("listing the products: HTTP {status}: {page}")));
    }
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return Err(Error::Setup(
            "the shop lists no product to browse; give the administrator (--admin-email, --admin-password) \
             and the setup creates the load products"
                .to_owned(),
        ));
    }
    let mut catalog = Catalog { products: Vec::new(), categories: Vec::new(), search_words: Vec::new() };
    for item in &items {
        catalog.products.push(Product { id: text(item, "id")? });
        if let Some(category) = item["category"].as_str() {
            catalog.categories.push(category.to_owned());
        }
        if let Some(name) = item["name"].as_str() {
            let words = name.split_whitespace().filter(|word| word.len() > 3 && word.chars().all(char::is_alphabetic));
            catalog.search_words.extend(words.map(str::to_lowercase));
        }
    }
    for list in [&mut catalog.categories, &mut catalog.search_words] {
        list.sort();
        list.dedup();
    }
    Ok(catalog)
}

/// A new product with `units` in stock, once the catalog shows them.
async fn flash_sale(admin: &Admin, units: u32) -> Result<FlashSale, Error> {
    let run = Uuid::now_v7().simple().to_string();
    let sku = format!("LOAD-FLASH-{}", &run[run.len() - 12..]).to_uppercase();
    let body = json!({
        "sku": sku, "name": format!("Flash sale {sku}"), "category": "load-flash",
        "description": "A few units for many buyers: the flash sale of the eventshop load test.",
        "price": {"amount": 999, "currency": "EUR"},
    });
    let product = admin
        .send(Method::POST, "/api/products", Some(&format!("loadtest-product-{sku}")), Some(body))
        .await
        .map_err(|refused| Error::Setup(format!("creating {sku}: {refused}")))?;
    let product_id = text(&product, "id")?;
    let created_at = text(&product, "created_at")?
        .parse::<DateTime<Utc>>()
        .map_err(|error| Error::Setup(format!("{sku}'s created_at: {error}")))?;
    let key = format!("loadtest-restock-{sku}");
    admin
        .send(
            Method::POST,
            &format!("/api/inventory/{product_id}/restock"),
            Some(&key),
            Some(json!({"quantity": units})),
        )
        .await
        .map_err(|refused| Error::Setup(format!("stocking {sku}: {refused}")))?;
    // Buyers act on the product page, whose stock follows inventory's events.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let page = admin.send(Method::GET, &format!("/api/products/{product_id}"), None, None).await;
        if page.as_ref().is_ok_and(|page| page["available"].as_u64() == Some(u64::from(units))) {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Setup(format!(
                "the catalog did not show {sku}'s {units} units within {SETTLE_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(FlashSale { product_id, sku, units, created_at })
}

/// After a flash sale: did the shop sell more units than it had? Reads the inventory
/// once nothing is reserved any more, and the administrator's list of orders of the
/// product, then discontinues the product.
pub(crate) async fn check_flash_sale(
    http: &Client,
    base: &str,
    arguments: &LoadtestArguments,
    sale: &FlashSale,
    metrics: &Metrics,
) -> Result<FlashSaleCheck, Error> {
    let (email, password) =
        arguments.admin().ok_or_else(|| Error::Check("the check needs the administrator".to_owned()))?;
    let admin = Admin::log_in(http, base, email, password).await.map_err(|error| Error::Check(error.to_string()))?;
    let failed = |what: &str, refused: Refused| Error::Check(format!("{what}: {refused}"));
    let inventory_path = format!("/api/inventory/{}", sale.product_id);
    let client_confirmed = metrics.live().orders_confirmed;
    // Settled means nothing reserved and the commits caught up with the confirmations
    // the users saw (inventory commits after orders confirms); or the time is up.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let inventory = loop {
        let inventory = admin
            .send(Method::GET, &inventory_path, None, None)
            .await
            .map_err(|refused| failed("reading the inventory", refused))?;
        let levels = InventoryLevels {
            on_hand: inventory["on_hand"].as_u64().unwrap_or_default(),
            reserved: inventory["reserved"].as_u64().unwrap_or_default(),
            available: inventory["available"].as_i64().unwrap_or_default(),
        };
        let committed = u64::from(sale.units).saturating_sub(levels.on_hand);
        if (levels.reserved == 0 && committed >= client_confirmed) || Instant::now() > deadline {
            break levels;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let orders = orders_of(&admin, sale).await.map_err(|refused| failed("listing the orders", refused))?;
    let units_of = |statuses: &[&str]| -> u64 {
        statuses.iter().map(|status| orders.get(*status).copied().unwrap_or_default()).sum()
    };
    let confirmed = units_of(&["confirmed", "shipped", "delivered"]);
    let in_flight = units_of(&["pending", "stock_reserved", "paid"]);
    let stocked = u64::from(sale.units);
    let committed = stocked.saturating_sub(inventory.on_hand);
    let discontinued = admin.send(Method::DELETE, &format!("/api/products/{}", sale.product_id), None, None).await;
    Ok(FlashSaleCheck::judge(sale, confirmed, client_confirmed, in_flight, committed, inventory, discontinued.is_ok()))
}

/// Units of the sale's product per order status, over every order placed since the
/// product was created (the administrator's list is newest first).
async fn orders_of(admin: &Admin, sale: &FlashSale) -> Result<BTreeMap<String, u64>, Refused> {
    let mut units = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/orders?limit=100&cursor={cursor}"),
            None => "/api/orders?limit=100".to_owned(),
        };
        let page = admin.send(Method::GET, &path, None, None).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let mut older = false;
        for order in &items {
            let created = order["created_at"].as_str().and_then(|at| at.parse::<DateTime<Utc>>().ok());
            if created.is_some_and(|created| created < sale.created_at) {
                older = true;
                continue;
            }
            let status = order["status"].as_str().unwrap_or("unknown").to_owned();
            let quantity: u64 = order["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|line| line["product_id"].as_str() == Some(sale.product_id.as_str()))
                .map(|line| line["quantity"].as_u64().unwrap_or_default())
                .sum();
            if quantity > 0 {
                *units.entry(status).or_insert(0) += quantity;
            }
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if older || cursor.is_none() || items.is_empty() {
            return Ok(units);
        }
    }
}

/// A request the shop did not answer with 2xx.
#[derive(Debug)]
pub(crate) struct Refused {
    /// None when no answer came at all.
    pub status: Option<StatusCode>,
    pub detail: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(formatter, "HTTP {}: {}", status.as_u16(), self.detail),
            None => formatter.write_str(&self.detail),
        }
    }
}

/// The administrator's session.
#[derive(Debug)]
struct Admin {
    http: Client,
    base: String,
    token: String,
}

impl Admin {
    async fn log_in(http: &Client, base: &str, email: &str, password: &str) -> Result<Admin, Error> {
        let form = [("grant_type", "password"), ("username", email), ("password", password)];
        let answer = http.post(format!("{base}/oauth/token")).form(&form).send().await.map_err(|error| {
            Error::Setup(format!("cannot reach the shop at {base}: {}: {error}", transport_kind(&error)))
        })?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        let token = body["access_token"].as_str().filter(|_| status.is_success()).ok_or_else(|| {
            Error::Setup(format!(
                "cannot log in as the administrator {email} (HTTP {status}: {body}); were EVENTSHOP_ADMIN_EMAIL and \
                 EVENTSHOP_ADMIN_PASSWORD set when the shop started?"
            ))
        })?;
        Ok(Admin { http: http.clone(), base: base.to_owned(), token: token.to_owned() })
    }

    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Result<Value, Refused> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| Refused { status: None, detail: format!("{}: {error}", transport_kind(&error)) })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(Refused { status: Some(status), detail: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The listed product of `category` with `sku` (one created without our key).
    async fn find_by_sku(&self, sku: &str, category: &str) -> Result<String, Error> {
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/products?category={category}&limit=100");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self
                .send(Method::GET, &path, None, None)
                .await
                .map_err(|refused| Error::Setup(format!("looking for {sku}: {refused}")))?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if let Some(product) = items.iter().find(|product| product["sku"].as_str() == Some(sku)) {
                return text(product, "id");
            }
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() || items.is_empty() {
                return Err(Error::Setup(format!(
                    "the sku {sku} is taken by a product that is not listed under {category} (discontinued?)"
                )));
            }
        }
    }

    /// Restocks product `id` up to `target` available units.
    async fn top_up(&self, id: &str, target: u64) -> Result<(), Error> {
        let inventory = self
            .send(Method::GET, &format!("/api/inventory/{id}"), None, None)
            .await
            .map_err(|refused| Error::Setup(format!("reading the stock of {id}: {refused}")))?;
        let mut missing = target.saturating_sub(inventory["available"].as_u64().unwrap_or_default());
        while missing > 0 {
            let quantity = missing.min(1_000_000);
            self.send(Method::POST, &format!("/api/inventory/{id}/restock"), None, Some(json!({"quantity": quantity})))
                .await
                .map_err(|refused| Error::Setup(format!("restocking {id}: {refused}")))?;
            missing -= quantity;
        }
        Ok(())
    }
}

/// A string field of an answer, or a setup error naming it.
fn text(value: &Value, field: &str) -> Result<String, Error> {
    value[field].as_str().map(str::to_owned).ok_or_else(|| Error::Setup(format!("an answer without {field}: {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_products_are_named_from_their_index() {
        let (sku, name, category, price) = load_product(7);
        assert_eq!(sku, "LOAD-007");
        assert_eq!(name, "Granite candle 7");
        assert_eq!(category, "load-toys");
        assert_eq!(price, 100 + 7 * 137);
        let skus: std::collections::BTreeSet<String> = (1..=999).map(|index| load_product(index).0).collect();
        assert_eq!(skus.len(), 999, "skus are unique");
        assert!((1..=999).all(|index| (100..3_000).contains(&load_product(index).3)), "prices from 1.00 to 29.99");
    }
}
