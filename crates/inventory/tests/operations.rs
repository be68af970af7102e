//! The inventory's operations, called over a real in-process bus against an in-memory
//! store, as the gateway calls them.

use std::sync::Arc;
use std::time::Duration;

use contracts::inventory::{GetInventory, Inventory, InventoryEvent, Restock, StockLevels};
use contracts::values::Quantity;
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, RejectionKind, call};
use eventshop_core::settings::LocalSettings;
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, StreamId};
use runtime::{InProcessBus, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Harness {
    bus: Arc<InProcessBus>,
    store: Arc<InMemoryEventStore>,
    services: Vec<RunningService>,
}

impl Harness {
    /// `instances` inventory services sharing one store, as several processes share one
    /// database; the bus spreads requests over them in turn.
    async fn start(instances: usize) -> Harness {
        let bus = Arc::new(InProcessBus::new());
        let store = Arc::new(InMemoryEventStore::new());
        // The saga's consumers need orders' events published, even when there are none.
        let _published = bus.publish_events("orders", Arc::new(InMemoryEventStore::new())).await.expect("publishes");
        let mut services = Vec::new();
        for _ in 0..instances {
            let context = ServiceContext {
                store: store.clone(),
                bus: bus.clone(),
                consumers: store.clone(),
                settings: Arc::new(LocalSettings::new([])),
            };
            services.push(inventory::start(context).await.expect("inventory starts"));
        }
        Harness { bus, store, services }
    }

    async fn call<O: Operation>(&self, operation: &O) -> Result<O::Reply, CallError> {
        call(&*self.bus, operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    async fn stop(self) {
        for service in self.services {
            service.stop().await;
        }
    }
}

fn restock(product_id: Uuid, restock_id: Uuid, units: u32) -> Restock {
    Restock { product_id, restock_id, quantity: Quantity::new(units).expect("a valid quantity") }
}

fn levels(on_hand: u64, reserved: u64) -> StockLevels {
    StockLevels { on_hand, reserved, available: on_hand - reserved }
}

#[tokio::test]
async fn a_product_never_restocked_has_no_stock_at_version_zero() {
    let harness = Harness::start(1).await;
    let product_id = Uuid::now_v7();

    let inventory = harness.call(&GetInventory { product_id }).await.expect("get answers");

    assert_eq!(inventory, Inventory { product_id, levels: levels(0, 0), version: 0 });
    harness.stop().await;
}

#[tokio::test]
async fn restocks_add_up_and_a_repeated_one_adds_once() {
    let harness = Harness::start(1).await;
    let product_id = Uuid::now_v7();
    let first = Uuid::now_v7();

    let after_first = harness.call(&restock(product_id, first, 10)).await.expect("restock answers");
    let repeat = harness.call(&restock(product_id, first, 10)).await.expect("repeat answers");
    let after_second = harness.call(&restock(product_id, Uuid::now_v7(), 5)).await.expect("restock answers");
    let late_repeat = harness.call(&restock(product_id, first, 10)).await.expect("repeat answers");

    assert_eq!(after_first, Inventory { product_id, levels: levels(10, 0), version: 1 });
    assert_eq!(repeat, after_first, "a repeat answers as the first time");
    assert_eq!(after_second, Inventory { product_id, levels: levels(15, 0), version: 2 });
    assert_eq!(late_repeat, after_first, "a repeat answers as the first time, even after other restocks");
    let current = harness.call(&GetInventory { product_id }).await.expect("get answers");
    assert_eq!(current, after_second);
    let stream = harness.store.read_stream(&StreamId::new("stock", product_id), 0).await.expect("stream reads");
    assert_eq!(stream.len(), 2, "the repeats appended nothing");
    harness.stop().await;
}

#[tokio::test]
async fn every_instance_reads_the_writes_of_the_others() {
    let harness = Harness::start(3).await;
    let product_id = Uuid::now_v7();

    for restocks in 1..=9u64 {
        let written = harness.call(&restock(product_id, Uuid::now_v7(), 2)).await.expect("restock answers");
        let read = harness.call(&GetInventory { product_id }).await.expect("get answers");
        assert_eq!(written.levels, levels(2 * restocks, 0));
        assert_eq!(read, written, "the next instance saw an older stock");
    }
    harness.stop().await;
}

#[tokio::test]
async fn a_restock_beyond_a_billion_on_hand_is_invalid_and_names_the_quantity() {
    let harness = Harness::start(1).await;
    let product_id = Uuid::now_v7();
    let nearly_full = InventoryEvent::StockAdded {
        product_id,
        restock_id: Uuid::now_v7(),
        quantity: 999_999_999,
        levels: levels(999_999_999, 0),
    };
    let event = EventCodec::new().encode(&nearly_full, Metadata::new_transaction(None)).expect("event encodes");
    harness
        .store
        .append(&StreamId::new("stock", product_id), ExpectedVersion::NoStream, vec![event])
        .await
        .expect("history appends");

    let refused = harness.call(&restock(product_id, Uuid::now_v7(), 2)).await;

    let Err(CallError::Rejected(rejection)) = refused else {
        panic!("expected a rejection, got {refused:?}");
    };
    assert_eq!(rejection.kind, RejectionKind::Invalid);
    let details = rejection.details.expect("the rejection names the field");
    assert_eq!(details["errors"][0]["field"], "quantity");
    let unchanged = harness.call(&GetInventory { product_id }).await.expect("get answers");
    assert_eq!(unchanged.levels, levels(999_999_999, 0));
    harness.stop().await;
}

#[test]
fn a_quantity_of_zero_or_less_cannot_even_be_decoded() {
    for quantity in ["0", "-5", "1.5", "1000001"] {
        let json =
            format!(r#"{{"product_id":"{}","restock_id":"{}","quantity":{quantity}}}"#, Uuid::nil(), Uuid::nil());
        assert!(serde_json::from_str::<Restock>(&json).is_err(), "quantity {quantity} decoded");
    }
}
