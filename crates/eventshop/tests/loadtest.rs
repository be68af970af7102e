//! `eventshop loadtest` against a real shop, CI-sized: a few users for a few seconds per
//! scenario, through the real binary, judged by its exit status and its JSON report.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestShop};

/// Runs `eventshop loadtest` for `scenario` with `users` users for 3 seconds against
/// `shop`, and answers its output and its JSON report.
async fn load(shop: &TestShop, scenario: &str, users: u32, directory: &Path) -> (Output, Value) {
    let json = directory.join(format!("{scenario}.json"));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_eventshop"))
        .args(["loadtest", "--url", &shop.base, "--scenario", scenario, "--duration", "3s", "--seed", "17"])
        .args(["--users", &users.to_string(), "--products", "6", "--json", json.to_str().unwrap()])
        .env("EVENTSHOP_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("EVENTSHOP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("EVENTSHOP_LOG", "warn")
        .output()
        .await
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|error| {
        panic!("no JSON report at {} ({error}); stderr: {}", json.display(), String::from_utf8_lossy(&output.stderr))
    });
    (output, serde_json::from_str(&text).unwrap())
}

/// The fields SPEC §5 promises, with a sane value each; the endpoints called.
fn assert_spec_shape(report: &Value) -> Vec<String> {
    for field in ["requests_per_second", "orders_per_second"] {
        assert!(report[field].as_f64().is_some_and(|value| value >= 0.0), "{field}: {report}");
    }
    assert!(report["errors"].is_u64(), "errors: {report}");
    for field in ["p50", "p90", "p99", "max"] {
        assert!(report["order_confirm_ms"][field].as_f64().is_some(), "order_confirm_ms.{field}");
    }
    let endpoints = report["endpoints"].as_object().expect("endpoints");
    for (name, endpoint) in endpoints {
        assert!(endpoint["count"].as_u64().is_some_and(|count| count > 0), "{name}: {endpoint}");
        let [p50, p90, p99] = ["p50", "p90", "p99"].map(|field| endpoint[field].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{name}: {endpoint}");
    }
    endpoints.keys().cloned().collect()
}

fn assert_succeeded(output: &Output, report: &Value) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["errors"], 0, "errors: {}", report["errors_by_kind"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn shoppers_browse_fill_carts_and_get_orders_confirmed() {
    let shop = TestShop::embedded().await;
    let directory = tempfile::tempdir().unwrap();
    let (output, report) = load(&shop, "shopper", 3, directory.path()).await;
    assert_succeeded(&output, &report);
    let endpoints = assert_spec_shape(&report);
    for endpoint in ["POST /api/users", "GET /api/products/{id}", "POST /api/cart/checkout", "GET /api/orders/{id}"] {
        assert!(endpoints.iter().any(|name| name == endpoint), "{endpoint} was called: {endpoints:?}");
    }
    assert!(report["orders"]["confirmed"].as_u64().unwrap() >= 1, "{}", report["orders"]);
    assert_eq!(report["orders"]["confirmed"], report["orders"]["placed"], "every order was confirmed");
    assert!(report["orders_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["order_confirm_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(report["requests"].as_u64().unwrap() > 10);
    assert!(directory.path().join("shopper.html").exists(), "the HTML report sits beside the JSON");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("placement → confirmed"), "{stdout}");

    // A second run finds the load products of the first and creates none.
    let (output, report) = load(&shop, "browse", 2, directory.path()).await;
    assert_succeeded(&output, &report);
    let (_, page) = support::send(shop.request(reqwest::Method::GET, "/api/products?limit=100")).await;
    let load_products = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|product| product["sku"].as_str().unwrap().starts_with("LOAD-"));
    assert_eq!(load_products.count(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flash_sale_never_sells_more_than_it_stocked() {
    let shop = TestShop::embedded().await;
    let directory = tempfile::tempdir().unwrap();
    // Eight buyers for two units.
    let (output, report) = load(&shop, "flash-sale", 8, directory.path()).await;
    assert_succeeded(&output, &report);
    assert_spec_shape(&report);
    let check = &report["flash_sale"];
    assert_eq!(check["oversold"], false, "{check}");
    assert_eq!(check["units_stocked"], 2);
    let confirmed = check["units_confirmed"].as_u64().unwrap();
    assert!((1..=2).contains(&confirmed), "{check}");
    assert_eq!(check["units_confirmed_seen_by_users"], confirmed, "{check}");
    assert_eq!(check["units_committed"], confirmed, "{check}");
    assert_eq!(check["inventory"]["reserved"], 0, "{check}");
    assert_eq!(report["orders"]["confirmed"], confirmed);
    assert_eq!(check["discontinued"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn browsing_reads_and_orders_nothing() {
    let shop = TestShop::embedded().await;
    let directory = tempfile::tempdir().unwrap();
    let (output, report) = load(&shop, "browse", 3, directory.path()).await;
    assert_succeeded(&output, &report);
    let endpoints = assert_spec_shape(&report);
    assert!(endpoints.iter().all(|name| name.starts_with("GET ")), "read-only: {endpoints:?}");
    assert_eq!(report["orders"]["placed"], 0);
    assert!(report["requests_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn loadtest_has_help_and_refuses_bad_flags() {
    let help =
        std::process::Command::new(env!("CARGO_BIN_EXE_eventshop")).args(["loadtest", "--help"]).output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--url", "--users", "--duration", "--ramp", "--scenario", "--json", "--report"] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_eventshop"))
        .args(["loadtest", "--scenario", "stampede"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--scenario"));
}
