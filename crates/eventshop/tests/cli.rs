//! The command line as an operator uses it: configuration layers, `--help`, and
//! `demo-data` against a running shop.

mod support;

use reqwest::{Method, StatusCode};
use support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestShop, send};

#[tokio::test(flavor = "multi_thread")]
async fn configuration_comes_from_flags_then_environment_then_file() {
    // The file names a data directory and the listen address; the environment overrides
    // the data directory; a flag overrides the environment's bus.
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("eventshop.toml"),
        "listen = \"127.0.0.1:0\"\ndata_dir = \"from-file\"\nbus = \"nats://127.0.0.1:1\"\n[settings.orders]\npayment_timeout = \"30s\"\n",
    )
    .unwrap();
    let shop = TestShop::start_in(
        directory,
        &["--bus", "in-process"],
        &[("EVENTSHOP_DATA_DIR", "from-env"), ("EVENTSHOP_BUS", "nats://127.0.0.1:2")],
    )
    .await;
    assert!(shop.directory().join("from-env/catalog.sqlite").exists(), "the environment beats the file");
    assert!(!shop.directory().join("from-file").exists());
    let (status, _) = send(shop.request(Method::GET, "/health/ready")).await;
    assert_eq!(status, StatusCode::OK, "the flag's in-process bus beats the environment's NATS");
}

#[test]
fn every_command_has_help() {
    for command in [&["--help"][..], &["run", "--help"], &["demo-data", "--help"]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_eventshop")).args(command).output().unwrap();
        assert!(output.status.success(), "{command:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"), "{command:?}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eventshop"))
        .args(["run", "--store", "mysql://x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--store"));
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_data_loads_a_shop_once() {
    let shop = TestShop::embedded().await;
    for _ in 0..2 {
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_eventshop"))
            .args(["demo-data", "--url", &shop.base])
            .env("EVENTSHOP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("EVENTSHOP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
    let (_, page) = send(shop.request(Method::GET, "/api/products?limit=100")).await;
    let products = page["items"].as_array().unwrap();
    assert_eq!(products.len(), 20, "a second run adds nothing");
    let admin = shop.admin().await;
    let mug = products.iter().find(|product| product["sku"] == "KIT-MUG-01").expect("the mug");
    let (_, stock) =
        send(shop.request(Method::GET, &format!("/api/inventory/{}", mug["id"].as_str().unwrap())).bearer_auth(&admin))
            .await;
    assert_eq!(stock["on_hand"], 120, "restocked once");
    let alice = shop.token("alice@example.com", "demo-password").await.access;
    let (_, wallet) = send(shop.request(Method::GET, "/api/wallet").bearer_auth(&alice)).await;
    assert_eq!(wallet["balance"]["amount"], 50_000, "one deposit");
}
