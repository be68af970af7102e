//! `GET /` (the storefront, SPEC §7), `GET /dashboard` (the operations dashboard, SPEC §6)
//! and `GET /assets/{name}`: small hand-written pages that call the JSON API.
//!
//! No CDN and no build step: every file is compiled into the binary, so a shop on a
//! machine without internet serves its pages as it serves its API. The pages keep the
//! tokens in `sessionStorage` and send them as bearer tokens, like any other client.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

const STOREFRONT: &str = include_str!("../assets/web/shop.html");
const DASHBOARD: &str = include_str!("../assets/web/dashboard.html");

/// The files under `/assets/`: name, content type, body.
const ASSETS: [(&str, &str, &str); 5] = [
    ("web.css", "text/css; charset=utf-8", include_str!("../assets/web/web.css")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../assets/web/api.js")),
    ("shop.js", "text/javascript; charset=utf-8", include_str!("../assets/web/shop.js")),
    ("dashboard.js", "text/javascript; charset=utf-8", include_str!("../assets/web/dashboard.js")),
    ("favicon.svg", "image/svg+xml", include_str!("../assets/web/favicon.svg")),
];

/// The pages' routes; HTML, so kept out of the OpenAPI document.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/", get(storefront)).route("/dashboard", get(dashboard)).route("/assets/{name}", get(asset))
}

fn answer(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // The files change only with the binary; pages are revalidated so that a new
        // binary's page is seen at once, scripts may be kept a little.
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
    ];
    (headers, body).into_response()
}

async fn storefront() -> Response {
    answer("text/html; charset=utf-8", STOREFRONT)
}

async fn dashboard() -> Response {
    answer("text/html; charset=utf-8", DASHBOARD)
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(known, _, _)| *known == name)
        .map(|(_, content_type, body)| answer(content_type, body))
        .ok_or_else(|| ApiError::NotFound(format!("there is no asset {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_names_only_assets_that_exist() {
        for page in [STOREFRONT, DASHBOARD] {
            for (index, _) in page.match_indices("/assets/") {
                let rest = &page[index + "/assets/".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
                assert!(ASSETS.iter().any(|(known, _, _)| *known == name), "{name} is not an asset");
            }
        }
    }
}
