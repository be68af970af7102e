//! The storefront, the dashboard and their assets are served from the binary with the
//! right content types, and stay out of the OpenAPI document.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gateway::GatewayConfig;
use runtime::InProcessBus;
use tower::ServiceExt;

async fn get(path: &str) -> (StatusCode, String, String) {
    let router = gateway::router(Arc::new(InProcessBus::new()), GatewayConfig::default());
    let request = Request::get(path).body(Body::empty()).expect("a request");
    let response = router.oneshot(request).await.expect("the router answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().expect("ASCII").to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
    (status, content_type, String::from_utf8(bytes.to_vec()).expect("UTF-8"))
}

#[tokio::test]
async fn the_storefront_is_html_that_loads_its_script() {
    let (status, content_type, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(body.contains(r#"<script type="module" src="/assets/shop.js">"#), "{body}");
    assert!(body.contains(r#"aria-live="polite""#));
}

#[tokio::test]
async fn the_dashboard_is_html_that_loads_its_script() {
    let (status, content_type, body) = get("/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(body.contains(r#"<script type="module" src="/assets/dashboard.js">"#), "{body}");
}

#[tokio::test]
async fn assets_answer_with_their_content_types() {
    for (path, expected) in [
        ("/assets/shop.js", "text/javascript; charset=utf-8"),
        ("/assets/dashboard.js", "text/javascript; charset=utf-8"),
        ("/assets/api.js", "text/javascript; charset=utf-8"),
        ("/assets/web.css", "text/css; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let (status, content_type, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type, expected, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn an_unknown_asset_is_a_404_problem() {
    for path in ["/assets/nope.js", "/assets/../Cargo.toml", "/assets/"] {
        let (status, content_type, _) = get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(content_type, "application/problem+json", "{path}");
    }
}

#[test]
fn the_pages_are_not_in_the_openapi_document() {
    let document = serde_json::to_value(gateway::openapi()).expect("JSON");
    let paths = document["paths"].as_object().expect("paths");
    for path in ["/", "/dashboard", "/assets/{name}"] {
        assert!(!paths.contains_key(path), "{path} is in the OpenAPI document");
    }
}
