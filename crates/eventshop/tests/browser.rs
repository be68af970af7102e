//! The storefront and the dashboard in a real browser: headless Chromium driven over
//! WebDriver (chromedriver), against the real binary on the embedded deployment.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (or `CHROME` and
//! `CHROMEDRIVER`) the tests skip, except in CI, where they fail. Screenshots land in
//! `target/browser-artifacts/`.

mod support;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestShop, send};
use uuid::Uuid;

/// How long the page may take to show what a step waits for (the saga included).
const PATIENCE: Duration = Duration::from_secs(30);

/// One browser at a time: Chromium and a shop each want a core.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Browser {
    client: Client,
    driver: Child,
    base: String,
}

impl Drop for Browser {
    /// Ends chromedriver and the Chromium it started (its own process group), also when
    /// a failed test never closed the session.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn program(variable: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    path.exists().then_some(path)
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session, or `None`
    /// (outside CI) when either is not installed.
    async fn start(shop: &TestShop) -> Option<Browser> {
        let Some(chrome) = program("CHROME", "/usr/bin/chromium") else {
            return eventshop_core::testing::skip_unless_ci("no Chromium (install `chromium` or set CHROME)");
        };
        let Some(chromedriver) = program("CHROMEDRIVER", "/usr/bin/chromedriver") else {
            return eventshop_core::testing::skip_unless_ci(
                "no chromedriver (install `chromium-driver` or set CHROMEDRIVER)",
            );
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=en-US"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(error) => {
                    assert!(tokio::time::Instant::now() < deadline, "no WebDriver session: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Some(Browser { client, driver, base: shop.base.clone() })
    }

    async fn open(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.expect("the page opens");
    }

    /// Moves within the page as a link would (a new hash route).
    async fn route(&self, hash: &str) {
        self.client.execute("location.hash = arguments[0];", vec![json!(hash)]).await.expect("the route changes");
    }

    /// Waits until `css` matches an element whose text contains `needle`; answers the text.
    async fn text_of(&self, css: &str, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    last = text;
                }
            }
            if tokio::time::Instant::now() > deadline {
                self.screenshot("timeout").await;
                panic!("{css} never showed {needle:?}; it showed {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches something.
    async fn present(&self, css: &str) {
        let found = self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await;
        if found.is_err() {
            self.screenshot("timeout").await;
            panic!("{css} never appeared");
        }
    }

    /// Waits until the JavaScript expression `condition` is true.
    async fn until(&self, condition: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let script = format!("return Boolean({condition});");
        while self.client.execute(&script, Vec::new()).await.ok() != Some(json!(true)) {
            if tokio::time::Instant::now() > deadline {
                self.screenshot("timeout").await;
                panic!("never true: {condition}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks `css`, retrying while the live views redraw it.
    async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await.map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match clicked {
                Ok(()) => return,
                Err(error) if tokio::time::Instant::now() > deadline => panic!("cannot click {css}: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        self.present(css).await;
        let element = self.client.find(Locator::Css(css)).await.expect("the input");
        element.clear().await.expect("clears");
        element.send_keys(text).await.expect("types");
    }

    async fn script(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.expect("the script runs")
    }

    /// Saves a PNG of the page under `target/browser-artifacts/`.
    async fn screenshot(&self, name: &str) {
        let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
        std::fs::create_dir_all(&directory).expect("the artifacts directory");
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(directory.join(format!("{name}.png")), png).expect("the screenshot is saved");
        }
    }

    async fn log_in_to_dashboard(&self) {
        self.open("/dashboard").await;
        self.fill("#login-email", ADMIN_EMAIL).await;
        self.fill("#login-password", ADMIN_PASSWORD).await;
        self.click("#login button[type=submit]").await;
        self.text_of("#services", "orders").await;
    }

    /// The dashboard's transaction view of an order, found by its id.
    async fn transaction_of_order(&self, order_id: &str) {
        self.route("#/transactions").await;
        self.fill("#lookup-id", order_id).await;
        self.click("#lookup").await;
        self.present("#timeline").await;
    }

    async fn fill_address(&self) {
        for (name, value) in
            [("name", "Ann Buyer"), ("line1", "1 Market Street"), ("city", "Berlin"), ("postal_code", "10115")]
        {
            self.fill(&format!("#checkout input[name={name}]"), value).await;
        }
    }

    async fn order_id_from_url(&self) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let url = self.client.current_url().await.expect("a URL");
            if let Some(id) = url.fragment().and_then(|fragment| fragment.strip_prefix("/orders/")) {
                return id.to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "the page never moved to the order: {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session politely; dropping ends the processes.
    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// A product with stock, created by the admin through the API; answers its id.
async fn stocked_product(shop: &TestShop, name: &str, price: i64, stock: u32) -> String {
    let admin = shop.admin().await;
    let sku = format!("SKU-{}", Uuid::now_v7().simple());
    let product = shop.product(&admin, &sku, name, price, "garden").await;
    let id = product["id"].as_str().expect("an id").to_owned();
    let (status, body) = send(
        shop.request(Method::POST, &format!("/api/inventory/{id}/restock"))
            .bearer_auth(&admin)
            .json(&json!({"quantity": stock})),
    )
    .await;
    assert!(status.is_success(), "restock: {status} {body}");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shopper_buys_with_the_wallet_and_the_dashboard_shows_every_step() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let shop = TestShop::embedded().await;
    let Some(browser) = Browser::start(&shop).await else { return };
    let word = format!("Trowel{}", &Uuid::now_v7().simple().to_string()[20..]);
    let product = stocked_product(&shop, &format!("Steel {word}"), 1250, 5).await;

    // A shopper registers on the page.
    browser.open("/#/register").await;
    let email = format!("ann-{}@shop.test", Uuid::now_v7().simple());
    browser.fill("#register-name", "Ann Buyer").await;
    browser.fill("#register-email", &email).await;
    browser.fill("#register-password", PASSWORD).await;
    browser.click("#register button[type=submit]").await;
    browser.text_of("#nav", "Log out").await;

    // Searches the catalog, opens the product, adds it to the cart.
    browser.fill("#search", &word).await;
    browser.click("form[role=search] button[type=submit]").await;
    browser.text_of("#products", &word).await;
    browser.screenshot("storefront-catalog").await;
    browser.click(&format!("a[href='#/product/{product}']")).await;
    browser.text_of("h1", &word).await;
    browser.text_of("#recommendations", "").await;
    browser.click("#add-to-cart").await;
    browser.text_of("#announcer", "Added to your cart").await;
    browser.screenshot("storefront-product").await;

    // Tops up the wallet, checks the cart and pays with the wallet.
    browser.route("#/wallet").await;
    browser.fill("#deposit-amount", "50").await;
    browser.click("#deposit button[type=submit]").await;
    browser.text_of("#wallet-balance", "50.00").await;
    browser.route("#/cart").await;
    browser.text_of("#cart-total", "12.50").await;
    browser.screenshot("storefront-cart").await;
    browser.click("#to-checkout").await;
    browser.fill_address().await;
    browser.click("#place-order").await;

    // The order page follows the saga to confirmed.
    let order_id = browser.order_id_from_url().await;
    browser.text_of("#order-status", "confirmed").await;
    browser.text_of("#order-history", "paid").await;
    browser.text_of("#nav-cart", "Cart").await;
    browser.until("document.getElementById('nav-cart').textContent === 'Cart'").await;
    browser.screenshot("storefront-order-confirmed").await;
    let (status, wallet) =
        send(shop.request(Method::GET, "/api/wallet").bearer_auth(shop.token(&email, PASSWORD).await.access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wallet["balance"]["amount"], 5000 - 1250, "{wallet}");

    // An admin finds the order's transaction: a step in every service's lane.
    browser.log_in_to_dashboard().await;
    browser.screenshot("dashboard-services").await;
    browser.transaction_of_order(&order_id).await;
    for service in ["orders", "inventory", "payments", "shipping"] {
        browser.present(&format!("#timeline .lane[data-service={service}] .step")).await;
    }
    browser.present("#timeline .step[data-type=OrderConfirmed]").await;
    // The command that placed it sits in the orders lane too, drawn as a command.
    browser.present("#timeline .lane[data-service=orders] .step.command[data-type=PlaceOrder][data-outcome=ok]").await;
    let failures = browser.script("return document.querySelectorAll('#timeline .step.failure').length").await;
    assert_eq!(failures, json!(0), "a paid order has no failed step");
    browser.screenshot("dashboard-transaction-confirmed").await;

    // The throughput view draws its charts.
    browser.route("#/throughput").await;
    browser
        .until("[...document.querySelectorAll('#throughput polyline')].every((line) => line.getAttribute('points').split(' ').length >= 2)")
        .await;
    browser.screenshot("dashboard-throughput").await;

    // The event browser finds the confirmation by type.
    browser.route("#/events").await;
    browser.fill("form[role=search] input[name=type]", "OrderConfirmed").await;
    browser.click("form[role=search] button[type=submit]").await;
    browser.text_of("#events tbody", &format!("order-{order_id}")).await;
    browser.screenshot("dashboard-events").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_card_shows_the_compensation_on_the_dashboard() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let shop = TestShop::embedded().await;
    let Some(browser) = Browser::start(&shop).await else { return };
    let product = stocked_product(&shop, "Watering Can", 900, 3).await;
    let (email, token) = shop.customer("Bob").await;
    let (status, cart) = send(
        shop.request(Method::PUT, &format!("/api/cart/items/{product}"))
            .bearer_auth(&token)
            .json(&json!({"quantity": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cart}");

    browser.open("/#/login").await;
    browser.fill("#login-email", &email).await;
    browser.fill("#login-password", PASSWORD).await;
    browser.click("#login button[type=submit]").await;
    browser.text_of("#nav", "Log out").await;
    browser.route("#/checkout").await;
    browser.fill_address().await;
    browser.click("#pay-card").await;
    browser.fill("#card-token", "tok_chargeDeclined").await;
    browser.click("#place-order").await;
    let order_id = browser.order_id_from_url().await;
    browser.text_of("#order-status", "rejected").await;
    browser.screenshot("storefront-order-rejected").await;

    // The stock reserved for it was released: the dashboard marks the failure and the
    // compensation.
    browser.log_in_to_dashboard().await;
    browser.transaction_of_order(&order_id).await;
    browser.present("#timeline .step.failure[data-type=PaymentDeclined]").await;
    browser.present("#timeline .lane[data-service=inventory] .step.compensation").await;
    browser.text_of("#compensated", "compensated").await;
    browser.screenshot("dashboard-transaction-declined").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projection_rebuilds_from_the_dashboard() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let shop = TestShop::embedded().await;
    let Some(browser) = Browser::start(&shop).await else { return };
    stocked_product(&shop, "Rake", 1500, 2).await;

    browser.log_in_to_dashboard().await;
    browser.route("#/projections").await;
    browser.present("#projections tr[data-projection]").await;
    let name = browser
        .script(
            "const rows = [...document.querySelectorAll('#projections tr[data-projection]')];
             const row = rows.find((r) => r.dataset.projection.startsWith('catalog')) || rows[0];
             return row.dataset.projection;",
        )
        .await;
    let name = name.as_str().expect("a projection name").to_owned();
    browser.click(&format!("#projections tr[data-projection='{name}'] button")).await;
    browser.text_of("#announcer", &format!("Rebuild of {name} complete")).await;
    browser.text_of(&format!("#projections tr[data-projection='{name}']"), "live").await;
    browser.screenshot("dashboard-projection-rebuilt").await;
    browser.route("#/dead-letters").await;
    browser.text_of("#dead-letters", "No dead letters").await;

    let admin = shop.admin().await;
    let (status, projections) = send(shop.request(Method::GET, "/api/admin/projections").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let projection = projections["items"].as_array().unwrap().iter().find(|p| p["name"] == name.as_str()).unwrap();
    assert_eq!(projection["status"], "live", "{projection}");
    browser.close().await;
}
