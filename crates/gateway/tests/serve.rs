//! `serve` on a real socket: it answers, sees the client's address, and stops when told.

use std::sync::Arc;
use std::time::Duration;

use gateway::GatewayConfig;
use runtime::InProcessBus;

#[tokio::test]
async fn serves_until_shutdown_and_limits_logins_by_the_peer_address() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    let config = GatewayConfig { login_attempts: 2, ..GatewayConfig::default() };
    let router = gateway::router(Arc::new(InProcessBus::new()), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve(listener, router, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let live = client.get(format!("http://{address}/health/live")).send().await.expect("answers");
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["x-frame-options"], "DENY");

    // Two different accounts from one address use up the address's failures; identity
    // is not running, so each malformed password is refused by the gateway itself.
    let mut statuses = Vec::new();
    for account in ["a@example.com", "b@example.com", "c@example.com"] {
        let answer = client
            .post(format!("http://{address}/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=password&username={account}&password=short"))
            .send()
            .await
            .expect("answers");
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 429]);

    stop.send(()).expect("the server is waiting");
    let outcome = tokio::time::timeout(Duration::from_secs(5), server).await.expect("stops in time");
    outcome.expect("the task ends").expect("serve returns Ok");
}
