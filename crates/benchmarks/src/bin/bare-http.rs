//! The baseline of the gateway benchmarks: a bare axum server answering the same JSON
//! shapes as `GET /api/products/{id}` and `GET /api/products` from memory, with no
//! middleware, no bus and no service behind it. What the shop achieves is quoted as a
//! fraction of what this achieves on the same machine in the same run.
//!
//! `cargo run --release -p benchmarks --bin bare-http -- 127.0.0.1:8090`, then point the
//! load tool at `/api/products/<id>` and `/api/products`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use uuid::Uuid;

const PRODUCTS: usize = 1_000;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let products: HashMap<Uuid, Value> = (0..PRODUCTS)
        .map(|index| {
            let id = Uuid::now_v7();
            let product = json!({
                "id": id, "sku": format!("SKU-{index}"), "name": format!("Product {index}"),
                "description": "A product of the benchmark catalogue, described in a sentence.",
                "price": {"amount": 1000 + index, "currency": "EUR"}, "category": "bench",
                "available": 10, "rating": 0.0, "review_count": 0, "discontinued": false,
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            });
            (id, product)
        })
        .collect();
    let first = *products.keys().next().expect("products");
    let products = Arc::new(products);
    let app =
        Router::new().route("/api/products/{id}", get(product)).route("/api/products", get(list)).with_state(products);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("bare-http listening on http://{} (a product: /api/products/{first})", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn product(State(products): State<Arc<HashMap<Uuid, Value>>>, Path(id): Path<Uuid>) -> Json<Value> {
    Json(products.get(&id).cloned().unwrap_or(Value::Null))
}

async fn list(State(products): State<Arc<HashMap<Uuid, Value>>>) -> Json<Value> {
    let items: Vec<Value> = products.values().take(20).cloned().collect();
    Json(json!({"items": items, "next_cursor": null}))
}
