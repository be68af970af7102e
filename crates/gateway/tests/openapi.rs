//! The OpenAPI document, snapshotted: any change to the API's shape shows in review.

#[test]
fn the_openapi_document_is_as_reviewed() {
    insta::assert_json_snapshot!(gateway::openapi());
}

#[test]
fn every_secured_route_names_the_bearer_scheme() {
    let document = serde_json::to_value(gateway::openapi()).expect("the document encodes");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for path in ["/api/users/me", "/api/wallet", "/api/products/{id}"] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    assert!(document["paths"]["/api/users/me"]["get"]["security"].is_array());
}
