//! The type of the payload column on PostgreSQL: `json`, the store's choice, against
//! `jsonb`. The store writes payloads as text and hands them out as text
//! (`payload::text`), never querying inside them, so what matters is the cost of
//! text → column on insert and column → text on read.
//!
//! `cargo bench -p benchmarks --bench payload_column`. Two payload sizes: the ~15-byte
//! `{"amount": n}` of the other benches, and a ~600-byte order (lines, address, money).
//! Tables live in the `bench_payload` schema, dropped and made anew on every run.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};

use benchmarks::harness::{Scale, runtime};
use benchmarks::postgres::{BenchDatabase, checkpoint};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures::TryStreamExt;
use sqlx::PgPool;

/// A small payload, as SQL over the row number `g`.
const SMALL_SQL: &str = "json_build_object('amount', g)";

/// An order-sized payload, as SQL over the row number `g`.
const ORDER_SQL: &str = "json_build_object(
    'order_id', gen_random_uuid(), 'customer_id', gen_random_uuid(),
    'items', json_build_array(
        json_build_object('product_id', gen_random_uuid(), 'quantity', 1 + g % 3,
                          'unit_price', json_build_object('amount', 1999, 'currency', 'EUR')),
        json_build_object('product_id', gen_random_uuid(), 'quantity', 2,
                          'unit_price', json_build_object('amount', 450, 'currency', 'EUR')),
        json_build_object('product_id', gen_random_uuid(), 'quantity', 1,
                          'unit_price', json_build_object('amount', 12900, 'currency', 'EUR'))),
    'shipping_address', json_build_object('name', 'Ada Lovelace', 'street', '12 Example Street',
                                          'city', 'London', 'postal_code', 'N1 9GU', 'country', 'GB'),
    'payment_method', json_build_object('type', 'card', 'token', 'tok_visa'),
    'total', json_build_object('amount', 16248 + g % 100, 'currency', 'EUR'))";

/// The order payload as a client would send it, for the insert bench.
fn order_payload(n: i64) -> String {
    serde_json::json!({
        "order_id": uuid::Uuid::now_v7(), "customer_id": uuid::Uuid::now_v7(),
        "items": [
            {"product_id": uuid::Uuid::now_v7(), "quantity": 1 + n % 3, "unit_price": {"amount": 1999, "currency": "EUR"}},
            {"product_id": uuid::Uuid::now_v7(), "quantity": 2, "unit_price": {"amount": 450, "currency": "EUR"}},
            {"product_id": uuid::Uuid::now_v7(), "quantity": 1, "unit_price": {"amount": 12900, "currency": "EUR"}},
        ],
        "shipping_address": {"name": "Ada Lovelace", "street": "12 Example Street", "city": "London",
                             "postal_code": "N1 9GU", "country": "GB"},
        "payment_method": {"type": "card", "token": "tok_visa"},
        "total": {"amount": 16248 + n % 100, "currency": "EUR"},
    })
    .to_string()
}

const INSERT_BATCH: usize = 100;

fn payload_column(c: &mut Criterion) {
    let scale = Scale::from_args();
    let rt = runtime();
    let pool = match rt.block_on(set_up(scale)) {
        Ok(pool) => pool,
        Err(reason) => {
            eprintln!("skipping the payload column benches: {reason}");
            return;
        }
    };

    let mut group = c.benchmark_group("payload/full scan reading payload::text");
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(scale.payload_rows as u64));
    for size in ["small", "order"] {
        for column in ["json", "jsonb"] {
            let query = format!("SELECT payload::text FROM {size}_{column}");
            let (pool, query) = (&pool, query.as_str());
            group.bench_function(BenchmarkId::new(column, format!("{} {size} rows", scale.payload_rows)), |b| {
                b.to_async(&rt).iter(|| async move {
                    let rows = sqlx::query_scalar::<_, String>(query)
                        .fetch(pool)
                        .try_fold(0_usize, |rows, _payload| async move { Ok(rows + 1) })
                        .await
                        .expect("scan");
                    assert_eq!(rows, scale.payload_rows);
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group(format!("payload/insert {INSERT_BATCH} order rows"));
    group.throughput(Throughput::Elements(INSERT_BATCH as u64));
    let next = AtomicI64::new(1_000_000_000);
    for column in ["json", "jsonb"] {
        let insert = format!(
            "INSERT INTO order_{column} (position, payload) SELECT position, payload::{column} \
               FROM unnest($1::bigint[], $2::text[]) AS n(position, payload)"
        );
        let (pool, insert, next) = (&pool, insert.as_str(), &next);
        group.bench_function(BenchmarkId::new(column, "1 writer"), |b| {
            b.to_async(&rt).iter(|| async move {
                let first = next.fetch_add(INSERT_BATCH as i64, Ordering::Relaxed);
                let positions: Vec<i64> = (first..first + INSERT_BATCH as i64).collect();
                let payloads: Vec<String> = positions.iter().map(|&n| order_payload(n)).collect();
                sqlx::query(insert).bind(positions).bind(payloads).execute(pool).await.expect("insert");
            })
        });
    }
    group.finish();
}

async fn set_up(scale: Scale) -> Result<PgPool, String> {
    let database = BenchDatabase::connect().await?;
    let failed = |error: sqlx::Error| format!("setting up the payload tables: {error}");
    database.drop_schemas("bench_payload").await.map_err(failed)?;
    database.execute("CREATE SCHEMA bench_payload").await.map_err(failed)?;
    let pool = database.pool_in("bench_payload").await.map_err(failed)?;
    for (size, payload) in [("small", SMALL_SQL), ("order", ORDER_SQL)] {
        for column in ["json", "jsonb"] {
            let table = format!("{size}_{column}");
            sqlx::raw_sql(&format!(
                "CREATE TABLE {table} (position bigint PRIMARY KEY, payload {column} NOT NULL);
                 INSERT INTO {table} SELECT g, ({payload})::{column} FROM generate_series(1, {rows}) AS g;",
                rows = scale.payload_rows
            ))
            .execute(&pool)
            .await
            .map_err(failed)?;
        }
    }
    // Set hint bits and the visibility map now, so that the first scan does not pay for it.
    sqlx::raw_sql("VACUUM ANALYZE small_json, small_jsonb, order_json, order_jsonb")
        .execute(&pool)
        .await
        .map_err(failed)?;
    checkpoint(&pool).await;
    let widths: Vec<(String, f64)> = sqlx::query_as(
        "SELECT 'small', avg(octet_length(payload::text))::float8 FROM small_json
         UNION ALL
         SELECT 'order', avg(octet_length(payload::text))::float8 FROM order_json",
    )
    .fetch_all(&pool)
    .await
    .map_err(failed)?;
    for (size, width) in widths {
        eprintln!("payload: {size} payloads are {width:.0} bytes of JSON text on average");
    }
    Ok(pool)
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = payload_column
}
criterion_main!(benches);
