//! `eventshop demo-data`: a sample shop loaded through the public API, as a client would.
//!
//! Every request carries an `Idempotency-Key` derived from what it creates, so running it
//! twice adds nothing the second time.

use anyhow::{Context, bail};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::cli::DemoDataArguments;

/// (sku, name, description, price in cents, category, units in stock)
const PRODUCTS: &[(&str, &str, &str, i64, &str, u32)] = &[
    ("SHOE-RUN-01", "Trail Running Shoes", "Light shoes with a grippy sole for muddy trails.", 8999, "shoes", 40),
    ("SHOE-CAS-02", "Canvas Sneakers", "Classic low-top canvas sneakers in off-white.", 4999, "shoes", 60),
    ("SHOE-BOOT-03", "Leather Boots", "Waterproof leather boots that last for years.", 15900, "shoes", 15),
    (
        "BOOK-ES-01",
        "Event Sourcing in Practice",
        "Patterns for event-sourced systems, from aggregates to projections.",
        3900,
        "books",
        25,
    ),
    ("BOOK-RUST-02", "Rust for Services", "Writing fast and correct network services in Rust.", 4500, "books", 30),
    (
        "BOOK-DDD-03",
        "Domain Modelling Made Simple",
        "Types, workflows and the language of the business.",
        3500,
        "books",
        20,
    ),
    ("KIT-MUG-01", "Stoneware Mug", "A 350 ml mug, dishwasher safe.", 1299, "kitchen", 120),
    ("KIT-PAN-02", "Cast Iron Pan", "A 26 cm pan that goes from stove to oven.", 3999, "kitchen", 35),
    ("KIT-KNIFE-03", "Chef's Knife", "A 20 cm stainless steel chef's knife.", 5900, "kitchen", 18),
    ("KIT-COFFEE-04", "Pour-over Coffee Set", "Dripper, carafe and 100 filters.", 2999, "kitchen", 45),
    (
        "ELEC-HEAD-01",
        "Wireless Headphones",
        "Over-ear headphones with noise cancelling and 30 h battery.",
        17900,
        "electronics",
        22,
    ),
    ("ELEC-KEY-02", "Mechanical Keyboard", "Tenkeyless keyboard with tactile switches.", 9900, "electronics", 28),
    ("ELEC-LAMP-03", "Desk Lamp", "Dimmable LED desk lamp with a warm light setting.", 3499, "electronics", 50),
    ("ELEC-CHG-04", "USB-C Charger", "A 65 W charger with two ports.", 3999, "electronics", 4),
    ("GARD-HOSE-01", "Garden Hose", "A 25 m hose that does not kink.", 2999, "garden", 30),
    ("GARD-SEED-02", "Herb Seeds", "Basil, parsley, chives and thyme seeds.", 599, "garden", 200),
    ("GARD-GLOVE-03", "Gardening Gloves", "Breathable gloves with a coated palm.", 999, "garden", 80),
    ("TOY-PUZ-01", "Wooden Puzzle", "A 100-piece puzzle of a shop street.", 1999, "toys", 35),
    ("TOY-KITE-02", "Stunt Kite", "A two-line kite for beginners.", 3499, "toys", 12),
    ("TOY-BLOCK-03", "Building Blocks", "250 blocks in a storage tub.", 2499, "toys", 0),
];

/// (email, name): customers, each with a wallet of 500 EUR.
const CUSTOMERS: &[(&str, &str)] =
    &[("alice@example.com", "Alice Archer"), ("bob@example.com", "Bob Baker"), ("carol@example.com", "Carol Cooper")];
const CUSTOMER_PASSWORD: &str = "demo-password";
const WALLET_DEPOSIT_CENTS: i64 = 50_000;

pub async fn load(arguments: DemoDataArguments) -> anyhow::Result<()> {
    let shop = Shop { client: Client::new(), url: arguments.url.trim_end_matches('/').to_owned() };
    let admin = shop.log_in(&arguments.admin_email, &arguments.admin_password).await.context(
        "cannot log in as the administrator; is the shop running, and were EVENTSHOP_ADMIN_EMAIL/_PASSWORD set when it started?",
    )?;

    for &(sku, name, description, price, category, stock) in PRODUCTS {
        let body = json!({
            "sku": sku, "name": name, "description": description,
            "price": {"amount": price, "currency": "EUR"}, "category": category,
        });
        let product = shop.send(&admin, "POST", "/api/products", &format!("demo-product-{sku}"), Some(body)).await?;
        let id = product["id"].as_str().context("a product without an id")?.to_owned();
        if stock > 0 {
            let path = format!("/api/inventory/{id}/restock");
            shop.send(&admin, "POST", &path, &format!("demo-restock-{sku}"), Some(json!({"quantity": stock}))).await?;
        }
    }
    println!("{} products with stock", PRODUCTS.len());

    for &(email, name) in CUSTOMERS {
        let registration = json!({"email": email, "password": CUSTOMER_PASSWORD, "name": name});
        let response = shop.client.post(format!("{}/api/users", shop.url)).json(&registration).send().await?;
        if !(response.status().is_success() || response.status() == StatusCode::CONFLICT) {
            bail!("registering {email}: {} {}", response.status(), response.text().await?);
        }
        let token = shop.log_in(email, CUSTOMER_PASSWORD).await?;
        let deposit = json!({"amount": {"amount": WALLET_DEPOSIT_CENTS, "currency": "EUR"}});
        shop.send(&token, "POST", "/api/wallet/deposits", "demo-wallet", Some(deposit)).await?;
    }
    println!("{} customers (password {CUSTOMER_PASSWORD:?}), each with 500.00 EUR in the wallet", CUSTOMERS.len());
    Ok(())
}

struct Shop {
    client: Client,
    url: String,
}

impl Shop {
    async fn log_in(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/oauth/token", self.url))
            .form(&[("grant_type", "password"), ("username", email), ("password", password)])
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("logging in as {email}: {status} {body}");
        }
        Ok(body["access_token"].as_str().context("a token answer without access_token")?.to_owned())
    }

    async fn send(
        &self,
        token: &str,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("Idempotency-Key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path}: {status} {body}");
        }
        Ok(body)
    }
}
