//! The checkout saga's invariants (SPEC §2) as a property, over random interleavings of
//! orders, cancellations, dispatches, restocks, deposits and payment failures.
//!
//! Every case builds a fresh shop in this process (one in-memory store per service, the
//! in-process bus, no HTTP), runs a generated scenario from a few concurrent tasks without
//! ever waiting for the saga, waits until every order is settled (terminal, confirmed or
//! shipped), and then checks, through the services' own queries only:
//!
//! - stock is never oversold: at every observation `reserved ≤ on_hand ≤ added` (so
//!   committed + reserved ≤ added), and once settled `reserved == 0` and
//!   `on_hand == added − units of the orders that were kept`;
//! - every wallet balance is ≥ 0 at every observation and equals deposits − captures +
//!   refunds of its own transactions; once settled, every kept wallet order was captured
//!   once and never refunded, every closed one refunded whatever was captured, and card
//!   orders never touched a wallet;
//! - every order is settled, its history is a path of the status machine, it is priced as
//!   the catalog priced it, declined cards never confirm, a cancellation or dispatch that
//!   was answered holds, and each kept order has its shipment (a cancelled one a cancelled
//!   shipment or none);
//! - no consumer dead-lettered an event.
//!
//! Some cases use a payment timeout of a few milliseconds, and stores that take a few
//! milliseconds per append and read ([`SlowStore`]), so that the deadline, cancellations
//! and dispatches race the saga (late captures must be refunded, late reservations
//! released). `PROPTEST_CASES=500` runs a longer soak.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::catalog::CreateProduct;
use contracts::identity::AddressInput;
use contracts::inventory::{GetInventory, Inventory, Restock};
use contracts::orders::{
    CancelOrder, GetOrder, Order, OrderItemRequest, OrderStatus, PAYMENT_TIMEOUT_SETTING, PlaceOrder, RejectionReason,
};
use contracts::payments::{DepositFunds, GetWallet, ListWalletTransactions, TransactionKind, WalletTransaction};
use contracts::shipping::{DispatchShipment, GetShipment, Shipment, ShipmentStatus, shipment_id};
use contracts::values::{
    AddressLine, CardToken, Category, CountryCode, Description, Money, PageRequest, PaymentMethod, PersonName,
    PositiveAmount, Price, ProductName, Quantity, Sku,
};
use eventshop_core::bus::{Bus, CallError, MessageContext, Operation, RejectionKind, Running, call};
use eventshop_core::consumer::ConsumerStorage;
use eventshop_core::settings::LocalSettings;
use eventshop_core::{
    AppendResult, EventId, EventStore, InMemoryEventStore, Position, RecordedEvent, Snapshot, StoreError, StreamAppend,
    StreamId, Version,
};
use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest::sample::Index;
use runtime::{InProcessBus, RunningService, ServiceContext, StartError};
use uuid::Uuid;

/// How long one request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the saga may take to settle every order.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);
/// How long the services may then take to agree with the settled orders (a release, a
/// refund, a shipment still on its way). Short, since a failing case waits it out at
/// every step of shrinking.
const AGREE_DEADLINE: Duration = Duration::from_secs(5);
/// How often a waiting check looks again.
const POLL: Duration = Duration::from_millis(20);
/// How long a dispatch step waits for its order's confirmation and shipment.
const DISPATCH_PATIENCE: Duration = Duration::from_secs(1);

proptest! {
    #![proptest_config(ProptestConfig {
        // 24 by default; PROPTEST_CASES=500 for a longer soak.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(24),
        // A case starts a whole shop: shrink a failure for a few minutes at most.
        max_shrink_iters: 200,
        max_shrink_time: 180_000,
        // Only this file is ours to write: no regression file beside it.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_checkout_saga_keeps_its_invariants(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let outcome = runtime.block_on(run_case(&scenario));
        runtime.shutdown_timeout(Duration::from_secs(1));
        if let Err(violations) = outcome {
            return Err(TestCaseError::fail(violations));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios

/// How an order is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pay {
    Wallet,
    Visa,
    ChargeDeclined,
    InsufficientFunds,
}

impl Pay {
    fn method(self) -> PaymentMethod {
        match self {
            Pay::Wallet => PaymentMethod::Wallet,
            Pay::Visa => PaymentMethod::Card { token: CardToken::Visa },
            Pay::ChargeDeclined => PaymentMethod::Card { token: CardToken::ChargeDeclined },
            Pay::InsufficientFunds => PaymentMethod::Card { token: CardToken::InsufficientFunds },
        }
    }

    /// A card the processor declines whatever happens.
    fn always_declined(self) -> bool {
        matches!(self, Pay::ChargeDeclined | Pay::InsufficientFunds)
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Places an order of `lines` (product, quantity), which may name a product twice.
    Place {
        user: usize,
        lines: Vec<(usize, u32)>,
        pay: Pay,
    },
    /// Cancels, as its owner, the order placed by the earlier step `place`.
    Cancel {
        place: usize,
    },
    /// Waits a little for the order of step `place` to be confirmed, then dispatches its
    /// shipment.
    Dispatch {
        place: usize,
    },
    Restock {
        product: usize,
        quantity: u32,
    },
    Deposit {
        user: usize,
        amount: i64,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    /// Each product's price in cents and its stock at the start.
    products: Vec<(i64, u32)>,
    /// Each user's funds at the start, in cents.
    users: Vec<i64>,
    /// The live setting `orders.payment_timeout`.
    payment_timeout: &'static str,
    /// The most every append and stream read of every store waits, in milliseconds.
    store_latency_ms: u8,
    /// How many tasks run the steps: step `i` runs in task `i % lanes`, each task its steps
    /// in order.
    lanes: usize,
    steps: Vec<Timed>,
}

/// A step and how long its task pauses before it, so that a case spans several ticks of
/// the payment deadline.
#[derive(Debug, Clone)]
struct Timed {
    pause_ms: u8,
    step: Step,
}

/// A step as generated: cancellations and dispatches name "some earlier placement".
#[derive(Debug, Clone)]
enum RawStep {
    Place { user: usize, lines: Vec<(usize, u32)>, pay: Pay },
    Cancel(Index),
    Dispatch(Index),
    Restock { product: usize, quantity: u32 },
    Deposit { user: usize, amount: i64 },
}

fn pay() -> impl Strategy<Value = Pay> {
    prop_oneof![
        3 => Just(Pay::Wallet),
        2 => Just(Pay::Visa),
        1 => Just(Pay::ChargeDeclined),
        1 => Just(Pay::InsufficientFunds),
    ]
}

fn raw_step(products: usize, users: usize) -> impl Strategy<Value = RawStep> {
    let line = (0..products, 1_u32..=4);
    prop_oneof![
        5 => (0..users, prop::collection::vec(line, 1..=3), pay())
            .prop_map(|(user, lines, pay)| RawStep::Place { user, lines, pay }),
        2 => any::<Index>().prop_map(RawStep::Cancel),
        2 => any::<Index>().prop_map(RawStep::Dispatch),
        1 => (0..products, 1_u32..=5).prop_map(|(product, quantity)| RawStep::Restock { product, quantity }),
        1 => (0..users, 1_i64..=3_000).prop_map(|(user, amount)| RawStep::Deposit { user, amount }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let products = prop::collection::vec((50_i64..=1_500, 0_u32..=10), 2..=4);
    let users = prop::collection::vec(0_i64..=5_000, 2..=4);
    let timeout = prop_oneof![1 => Just("5ms"), 1 => Just("50ms"), 2 => Just("30s")];
    let latency = prop_oneof![Just(0_u8), Just(3), Just(12)];
    (products, users, (timeout, latency), 1_usize..=3)
        .prop_flat_map(|(products, users, timeout, lanes)| {
            let pause = prop_oneof![2 => Just(0_u8), 1 => 1_u8..=60];
            let steps = prop::collection::vec((pause, raw_step(products.len(), users.len())), 5..=25);
            (Just(products), Just(users), Just(timeout), Just(lanes), steps)
        })
        .prop_map(|(products, users, (payment_timeout, store_latency_ms), lanes, raw)| Scenario {
            products,
            users,
            payment_timeout,
            store_latency_ms,
            lanes,
            steps: resolve(raw),
        })
}

/// Points every cancellation and dispatch at an earlier placement; one with none before it
/// is dropped.
fn resolve(raw: Vec<(u8, RawStep)>) -> Vec<Timed> {
    let mut steps = Vec::with_capacity(raw.len());
    let mut placements = Vec::new();
    for (pause_ms, step) in raw {
        let earlier = |index: &Index| (!placements.is_empty()).then(|| placements[index.index(placements.len())]);
        let step = match step {
            RawStep::Place { user, lines, pay } => {
                placements.push(steps.len());
                Step::Place { user, lines, pay }
            }
            RawStep::Cancel(index) => match earlier(&index) {
                Some(place) => Step::Cancel { place },
                None => continue,
            },
            RawStep::Dispatch(index) => match earlier(&index) {
                Some(place) => Step::Dispatch { place },
                None => continue,
            },
            RawStep::Restock { product, quantity } => Step::Restock { product, quantity },
            RawStep::Deposit { user, amount } => Step::Deposit { user, amount },
        };
        steps.push(Timed { pause_ms, step });
    }
    steps
}

// ---------------------------------------------------------------------------------------
// The shop

type Start = fn(ServiceContext) -> BoxFuture<'static, Result<RunningService, StartError>>;

/// The services in the order the binary starts them (see `src/shop.rs`).
const SERVICES: &[(&str, Start)] = &[
    (contracts::identity::SERVICE, |context| Box::pin(identity::start(context))),
    (contracts::catalog::SERVICE, |context| Box::pin(catalog::start(context))),
    (contracts::inventory::SERVICE, |context| Box::pin(inventory::start(context))),
    (contracts::payments::SERVICE, |context| Box::pin(payments::start(context))),
    (contracts::orders::SERVICE, |context| Box::pin(orders::start(context))),
    (contracts::cart::SERVICE, |context| Box::pin(cart::start(context))),
    (contracts::shipping::SERVICE, |context| Box::pin(shipping::start(context))),
    // The catalog learns ratings from reviews.
    (contracts::reviews::SERVICE, |context| Box::pin(reviews::start(context))),
];

struct Shop {
    bus: Arc<dyn Bus>,
    /// Each service's store, and the same behind its latency.
    stores: Vec<(&'static str, Arc<InMemoryEventStore>, Arc<dyn EventStore>)>,
    services: Vec<RunningService>,
    publishers: Vec<Box<dyn Running>>,
}

impl Shop {
    async fn start(payment_timeout: &str, store_latency_ms: u8) -> Result<Shop, String> {
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let settings = Arc::new(LocalSettings::new([(PAYMENT_TIMEOUT_SETTING.to_owned(), payment_timeout.to_owned())]));
        let mut shop = Shop { bus: bus.clone(), stores: Vec::new(), services: Vec::new(), publishers: Vec::new() };
        // Every store is published before any service starts, so that each may consume any
        // other's events.
        for (name, _) in SERVICES {
            let store = Arc::new(InMemoryEventStore::new());
            let slow: Arc<dyn EventStore> =
                Arc::new(SlowStore { inner: store.clone(), max_delay_ms: u64::from(store_latency_ms) });
            let published = bus.publish_events(name, slow.clone()).await;
            shop.publishers.push(published.map_err(|error| format!("cannot publish {name}: {error}"))?);
            shop.stores.push((name, store, slow));
        }
        for ((name, start), (_, store, slow)) in SERVICES.iter().zip(shop.stores.clone()) {
            let context = ServiceContext {
                store: slow,
                bus: bus.clone(),
                consumers: store as Arc<dyn ConsumerStorage>,
                settings: settings.clone(),
            };
            match start(context).await {
                Ok(running) => shop.services.push(running),
                Err(error) => {
                    shop.stop().await;
                    return Err(format!("cannot start {name}: {error}"));
                }
            }
        }
        Ok(shop)
    }

    async fn stop(self) {
        for service in self.services.into_iter().rev() {
            service.stop().await;
        }
        for publisher in self.publishers {
            publisher.stop().await;
        }
    }

    async fn ask<O: Operation>(&self, operation: &O) -> Result<O::Reply, CallError> {
        call(&*self.bus, operation, MessageContext::new_transaction(None), CALL_TIMEOUT).await
    }
}

/// A store that takes its time, as a database under load does: every append and stream
/// read first waits a random while up to `max_delay_ms`. The saga's steps then leave room
/// for the payment deadline, cancellations and each other to come between them. (Written
/// out as `async_trait` would expand it, which this crate does not depend on.)
#[derive(Debug)]
struct SlowStore {
    inner: Arc<InMemoryEventStore>,
    max_delay_ms: u64,
}

impl SlowStore {
    async fn lag(&self) {
        if self.max_delay_ms > 0 {
            let delay = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=self.max_delay_ms);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
}

impl EventStore for SlowStore {
    fn append_many<'life0, 'async_trait>(
        &'life0 self,
        appends: Vec<StreamAppend>,
    ) -> BoxFuture<'async_trait, Result<Vec<AppendResult>, StoreError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.lag().await;
            self.inner.append_many(appends).await
        })
    }

    fn append_handled<'life0, 'life1, 'async_trait>(
        &'life0 self,
        consumer: &'life1 str,
        event_id: EventId,
        appends: Vec<StreamAppend>,
    ) -> BoxFuture<'async_trait, Result<Vec<AppendResult>, StoreError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.lag().await;
            self.inner.append_handled(consumer, event_id, appends).await
        })
    }

    fn read_stream<'life0, 'life1, 'async_trait>(
        &'life0 self,
        stream_id: &'life1 StreamId,
        after_version: Version,
    ) -> BoxFuture<'async_trait, Result<Vec<RecordedEvent>, StoreError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.lag().await;
            self.inner.read_stream(stream_id, after_version).await
        })
    }

    fn read_all<'life0, 'async_trait>(
        &'life0 self,
        after: Position,
        limit: usize,
    ) -> BoxFuture<'async_trait, Result<Vec<RecordedEvent>, StoreError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.read_all(after, limit)
    }

    fn head_position<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<Position, StoreError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.head_position()
    }

    fn wait_for_events<'life0, 'async_trait>(
        &'life0 self,
        after: Position,
        timeout: Duration,
    ) -> BoxFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.wait_for_events(after, timeout)
    }

    fn load_snapshot<'life0, 'life1, 'async_trait>(
        &'life0 self,
        stream_id: &'life1 StreamId,
    ) -> BoxFuture<'async_trait, Result<Option<Snapshot>, StoreError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.load_snapshot(stream_id)
    }

    fn save_snapshot<'life0, 'async_trait>(
        &'life0 self,
        snapshot: Snapshot,
    ) -> BoxFuture<'async_trait, Result<(), StoreError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.save_snapshot(snapshot)
    }
}

fn rejected(result: &Result<impl Sized, CallError>, kind: RejectionKind) -> bool {
    matches!(result, Err(CallError::Rejected(rejection)) if rejection.kind == kind)
}

fn address() -> AddressInput {
    let line = |text: &str| AddressLine::try_from(text.to_owned()).expect("an address line");
    AddressInput {
        name: PersonName::try_from("Ann Buyer".to_owned()).expect("a name"),
        line1: line("1 Market Street"),
        line2: None,
        city: line("Berlin"),
        postal_code: line("10115"),
        country: CountryCode::try_from("DE".to_owned()).expect("a country"),
    }
}

// ---------------------------------------------------------------------------------------
// Running a scenario

/// An order the shop accepted, as the test asked for it.
#[derive(Debug, Clone)]
struct Placed {
    order_id: Uuid,
    user: usize,
    /// Quantities per product index, merged.
    quantities: BTreeMap<usize, u32>,
    pay: Pay,
}

/// What the test did and what the shop answered, to compare the end state with.
#[derive(Debug, Default)]
struct Ledger {
    /// Units restocked per product (and answered), at the start included.
    added: Vec<u64>,
    /// Units asked for per product, answered or not: a bound at any moment.
    added_bound: Vec<u64>,
    /// Cents deposited per user (and answered), and how many deposits.
    deposited: Vec<i64>,
    deposits: Vec<usize>,
    /// Cents deposited per user, answered or not.
    deposited_bound: Vec<i64>,
    placed: Vec<Placed>,
    /// Orders whose placement was answered.
    placed_ids: HashSet<Uuid>,
    /// Cancellations answered with a cancelled order.
    cancelled: HashSet<Uuid>,
    /// Cancellations refused as a Conflict (dispatched or rejected).
    cancel_refused: HashSet<Uuid>,
    /// Dispatches answered with a dispatched shipment.
    dispatched: HashSet<Uuid>,
}

/// One case on a fresh shop, which is stopped whatever the outcome.
async fn run_case(scenario: &Scenario) -> Result<(), String> {
    let shop = Arc::new(Shop::start(scenario.payment_timeout, scenario.store_latency_ms).await?);
    let outcome = exercise(&shop, scenario).await;
    match Arc::try_unwrap(shop) {
        Ok(shop) => shop.stop().await,
        Err(_) => return Err("a task still holds the shop".to_owned()),
    }
    outcome
}

/// The ids a case gives to its products, users and orders.
#[derive(Debug)]
struct Ids {
    products: Vec<Uuid>,
    prices: Vec<i64>,
    users: Vec<Uuid>,
    /// The order id and the user of every placement step.
    orders: Vec<Option<(Uuid, usize)>>,
}

async fn exercise(shop: &Arc<Shop>, scenario: &Scenario) -> Result<(), String> {
    let started = Instant::now();
    let ids = Arc::new(Ids {
        products: scenario.products.iter().map(|_| Uuid::now_v7()).collect(),
        prices: scenario.products.iter().map(|(price, _)| *price).collect(),
        users: scenario.users.iter().map(|_| Uuid::now_v7()).collect(),
        orders: scenario
            .steps
            .iter()
            .map(|timed| match timed.step {
                Step::Place { user, .. } => Some((Uuid::now_v7(), user)),
                _ => None,
            })
            .collect(),
    });
    let ledger = Arc::new(Mutex::new(Ledger {
        added: vec![0; scenario.products.len()],
        added_bound: vec![0; scenario.products.len()],
        deposited: vec![0; scenario.users.len()],
        deposits: vec![0; scenario.users.len()],
        deposited_bound: vec![0; scenario.users.len()],
        ..Ledger::default()
    }));

    // The shop as the scenario finds it: products with their stock, users with their funds.
    for (index, (price, stock)) in scenario.products.iter().enumerate() {
        let product_id = ids.products[index];
        let create = CreateProduct {
            product_id,
            sku: Sku::try_from(format!("P{index}-{}", product_id.simple())).expect("a sku"),
            name: ProductName::try_from(format!("Product {index}")).expect("a name"),
            description: Description::try_from(String::new()).expect("a description"),
            price: Price::try_from(Money::eur(*price)).expect("a price"),
            category: Category::try_from("kitchen".to_owned()).expect("a category"),
        };
        shop.ask(&create).await.map_err(|error| format!("cannot create product {index}: {error}"))?;
        if *stock > 0 {
            restock(shop, &ids, &ledger, index, *stock).await?;
        }
    }
    for (index, funds) in scenario.users.iter().enumerate() {
        if *funds > 0 {
            deposit(shop, &ids, &ledger, index, *funds).await?;
        }
    }

    // The steps, from several tasks, with a watcher of the safety invariants beside them.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = tokio::spawn(watch_safety(shop.clone(), ids.clone(), ledger.clone(), watching.clone()));
    let mut lanes = Vec::new();
    for lane in 0..scenario.lanes {
        let steps: Vec<(usize, Timed)> =
            scenario.steps.iter().cloned().enumerate().skip(lane).step_by(scenario.lanes).collect();
        let (shop, ids, ledger) = (shop.clone(), ids.clone(), ledger.clone());
        lanes.push(tokio::spawn(async move {
            for (index, timed) in &steps {
                if timed.pause_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(u64::from(timed.pause_ms))).await;
                }
                run_step(&shop, &ids, &ledger, *index, &timed.step).await?;
            }
            Ok::<(), String>(())
        }));
    }
    let mut failures = Vec::new();
    for lane in lanes {
        match lane.await {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => failures.push(failure),
            Err(error) => failures.push(format!("a task of steps failed: {error}")),
        }
    }

    let settled = if failures.is_empty() { settle(shop, &ledger).await } else { Ok(HashMap::new()) };
    watching.store(false, Ordering::SeqCst);
    match watcher.await {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => failures.push(failure),
        Err(error) => failures.push(format!("the watcher failed: {error}")),
    }
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }
    let orders = settled?;

    let ledger = ledger.lock().expect("the ledger").clone_view();
    check_orders(scenario, &ids, &ledger, &orders, started.elapsed())?;
    agree_eventually(shop, &ids, &ledger, &orders).await?;
    no_dead_letters(shop).await
}

impl Ledger {
    /// A copy, to check without holding the lock.
    fn clone_view(&self) -> Ledger {
        Ledger {
            added: self.added.clone(),
            added_bound: self.added_bound.clone(),
            deposited: self.deposited.clone(),
            deposits: self.deposits.clone(),
            deposited_bound: self.deposited_bound.clone(),
            placed: self.placed.clone(),
            placed_ids: self.placed_ids.clone(),
            cancelled: self.cancelled.clone(),
            cancel_refused: self.cancel_refused.clone(),
            dispatched: self.dispatched.clone(),
        }
    }
}

async fn restock(shop: &Shop, ids: &Ids, ledger: &Mutex<Ledger>, product: usize, quantity: u32) -> Result<(), String> {
    ledger.lock().expect("the ledger").added_bound[product] += u64::from(quantity);
    let restock = Restock {
        product_id: ids.products[product],
        restock_id: Uuid::now_v7(),
        quantity: Quantity::new(quantity).expect("a quantity"),
    };
    shop.ask(&restock).await.map_err(|error| format!("restocking product {product} failed: {error}"))?;
    ledger.lock().expect("the ledger").added[product] += u64::from(quantity);
    Ok(())
}

async fn deposit(shop: &Shop, ids: &Ids, ledger: &Mutex<Ledger>, user: usize, amount: i64) -> Result<(), String> {
    ledger.lock().expect("the ledger").deposited_bound[user] += amount;
    let deposit = DepositFunds {
        user_id: ids.users[user],
        transaction_id: Uuid::now_v7(),
        amount: PositiveAmount::try_from(Money::eur(amount)).expect("an amount"),
    };
    shop.ask(&deposit).await.map_err(|error| format!("depositing for user {user} failed: {error}"))?;
    let mut ledger = ledger.lock().expect("the ledger");
    ledger.deposited[user] += amount;
    ledger.deposits[user] += 1;
    Ok(())
}

async fn run_step(shop: &Shop, ids: &Ids, ledger: &Mutex<Ledger>, index: usize, step: &Step) -> Result<(), String> {
    match step {
        Step::Place { user, lines, pay } => place(shop, ids, ledger, index, *user, lines, *pay).await,
        Step::Cancel { place } => cancel(shop, ids, ledger, index, *place).await,
        Step::Dispatch { place } => dispatch(shop, ids, ledger, index, *place).await,
        Step::Restock { product, quantity } => restock(shop, ids, ledger, *product, *quantity).await,
        Step::Deposit { user, amount } => deposit(shop, ids, ledger, *user, *amount).await,
    }
}

fn order_of(ids: &Ids, step: usize) -> (Uuid, usize) {
    ids.orders[step].expect("a cancellation or dispatch names a placement")
}

async fn place(
    shop: &Shop,
    ids: &Ids,
    ledger: &Mutex<Ledger>,
    index: usize,
    user: usize,
    lines: &[(usize, u32)],
    pay: Pay,
) -> Result<(), String> {
    let (order_id, _) = order_of(ids, index);
    let items = lines
        .iter()
        .map(|(product, quantity)| OrderItemRequest {
            product_id: ids.products[*product],
            quantity: Quantity::new(*quantity).expect("a quantity"),
        })
        .collect();
    let request = PlaceOrder {
        order_id,
        user_id: ids.users[user],
        items,
        shipping_address: address(),
        payment_method: pay.method(),
    };
    let accepted =
        shop.ask(&request).await.map_err(|error| format!("step {index}: placing order {order_id} failed: {error}"))?;
    if accepted.order_id != order_id || accepted.status != OrderStatus::Pending {
        return Err(format!("step {index}: placing order {order_id} answered {accepted:?}"));
    }
    let mut quantities = BTreeMap::new();
    for (product, quantity) in lines {
        *quantities.entry(*product).or_insert(0) += quantity;
    }
    let mut ledger = ledger.lock().expect("the ledger");
    ledger.placed.push(Placed { order_id, user, quantities, pay });
    ledger.placed_ids.insert(order_id);
    Ok(())
}

async fn cancel(shop: &Shop, ids: &Ids, ledger: &Mutex<Ledger>, index: usize, place: usize) -> Result<(), String> {
    let (order_id, owner) = order_of(ids, place);
    // Placed by another task, perhaps not yet: then it is not found.
    let was_placed = ledger.lock().expect("the ledger").placed_ids.contains(&order_id);
    let result = shop.ask(&CancelOrder { order_id, viewer: Some(ids.users[owner]) }).await;
    let refused = rejected(&result, RejectionKind::Conflict);
    let unknown = rejected(&result, RejectionKind::NotFound);
    match result {
        Ok(order) if order.status == OrderStatus::Cancelled => {
            ledger.lock().expect("the ledger").cancelled.insert(order_id);
            Ok(())
        }
        Ok(order) => Err(format!("step {index}: cancelling order {order_id} answered it {:?}", order.status)),
        Err(_) if refused => {
            ledger.lock().expect("the ledger").cancel_refused.insert(order_id);
            Ok(())
        }
        Err(_) if unknown && !was_placed => Ok(()),
        Err(error) => {
            Err(format!("step {index}: cancelling order {order_id} (placement answered: {was_placed}) failed: {error}"))
        }
    }
}

async fn dispatch(shop: &Shop, ids: &Ids, ledger: &Mutex<Ledger>, index: usize, place: usize) -> Result<(), String> {
    let (order_id, _) = order_of(ids, place);
    if !ledger.lock().expect("the ledger").placed_ids.contains(&order_id) {
        return Ok(());
    }
    let deadline = Instant::now() + DISPATCH_PATIENCE;
    loop {
        let order = shop
            .ask(&GetOrder { order_id, viewer: None })
            .await
            .map_err(|error| format!("step {index}: reading order {order_id} failed: {error}"))?;
        match order.status {
            OrderStatus::Confirmed => break,
            OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            _ => return Ok(()),
        }
    }
    loop {
        let shipment = shop.ask(&GetShipment { order_id, viewer: None }).await;
        match shipment {
            Ok(_) => break,
            Err(_) if rejected(&shipment, RejectionKind::NotFound) && Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            // Checked at the end: a confirmed order must have its shipment.
            Err(_) if rejected(&shipment, RejectionKind::NotFound) => return Ok(()),
            Err(error) => return Err(format!("step {index}: reading the shipment of {order_id} failed: {error}")),
        }
    }
    let request = DispatchShipment {
        shipment_id: shipment_id(order_id),
        carrier: "DHL".to_owned(),
        tracking_number: format!("JJD{index:06}"),
    };
    let result = shop.ask(&request).await;
    let refused = rejected(&result, RejectionKind::Conflict);
    match result {
        Ok(shipment) if shipment.status == ShipmentStatus::Dispatched => {
            ledger.lock().expect("the ledger").dispatched.insert(order_id);
            Ok(())
        }
        Ok(shipment) => Err(format!("step {index}: dispatching order {order_id} answered {:?}", shipment.status)),
        // Cancelled meanwhile.
        Err(_) if refused => Ok(()),
        Err(error) => Err(format!("step {index}: dispatching order {order_id} failed: {error}")),
    }
}

// ---------------------------------------------------------------------------------------
// Checks

fn is_settled(status: OrderStatus) -> bool {
    status.is_terminal() || matches!(status, OrderStatus::Confirmed | OrderStatus::Shipped)
}

/// An order whose units and money the shop keeps.
fn is_kept(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered)
}

/// Stock that is not oversold now: `reserved ≤ on_hand ≤ added`, so that what was
/// committed (net of what came back) plus what is reserved never exceeds what was added.
fn stock_is_sound(product: usize, inventory: &Inventory, added: u64) -> Result<(), String> {
    let levels = inventory.levels;
    if levels.reserved > levels.on_hand
        || levels.available != levels.on_hand - levels.reserved
        || levels.on_hand > added
    {
        return Err(format!("product {product} is oversold: {levels:?}, with {added} units ever added"));
    }
    Ok(())
}

/// Samples stock and wallets while the steps run, until told to stop.
async fn watch_safety(
    shop: Arc<Shop>,
    ids: Arc<Ids>,
    ledger: Arc<Mutex<Ledger>>,
    watching: Arc<AtomicBool>,
) -> Result<(), String> {
    while watching.load(Ordering::SeqCst) {
        for (product, product_id) in ids.products.iter().enumerate() {
            let inventory = shop
                .ask(&GetInventory { product_id: *product_id })
                .await
                .map_err(|error| format!("reading the stock of product {product} failed: {error}"))?;
            // Read after the answer: the bound only grows.
            let bound = ledger.lock().expect("the ledger").added_bound[product];
            stock_is_sound(product, &inventory, bound)?;
        }
        for (user, user_id) in ids.users.iter().enumerate() {
            let wallet = shop
                .ask(&GetWallet { user_id: *user_id })
                .await
                .map_err(|error| format!("reading the wallet of user {user} failed: {error}"))?;
            let bound = ledger.lock().expect("the ledger").deposited_bound[user];
            if wallet.balance.amount < 0 || wallet.balance.amount > bound {
                return Err(format!("user {user}'s balance is {}, with {bound} ever deposited", wallet.balance.amount));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Waits until every accepted order is terminal, confirmed or shipped; answers them.
async fn settle(shop: &Shop, ledger: &Mutex<Ledger>) -> Result<HashMap<Uuid, Order>, String> {
    let placed: Vec<Uuid> = ledger.lock().expect("the ledger").placed.iter().map(|placed| placed.order_id).collect();
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let mut orders = HashMap::new();
        for order_id in &placed {
            let order = shop
                .ask(&GetOrder { order_id: *order_id, viewer: None })
                .await
                .map_err(|error| format!("reading order {order_id} failed: {error}"))?;
            orders.insert(*order_id, order);
        }
        let waiting: Vec<(Uuid, OrderStatus)> =
            orders.values().filter(|order| !is_settled(order.status)).map(|order| (order.id, order.status)).collect();
        if waiting.is_empty() {
            return Ok(orders);
        }
        if Instant::now() > deadline {
            return Err(format!("orders still unsettled after {SETTLE_DEADLINE:?}: {waiting:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A path of the status machine from `pending`.
fn is_valid_history(history: &[OrderStatus]) -> bool {
    use OrderStatus::{Cancelled, Confirmed, Delivered, Paid, Pending, Rejected, Shipped, StockReserved};
    let Some((&first, rest)) = history.split_first() else { return false };
    let mut previous = first;
    for &next in rest {
        let allowed = match previous {
            Pending => matches!(next, StockReserved | Paid | Rejected | Cancelled),
            StockReserved => matches!(next, Paid | Rejected | Cancelled),
            // Paid and confirmed are appended together.
            Paid => next == Confirmed,
            Confirmed => matches!(next, Shipped | Cancelled),
            Shipped => next == Delivered,
            Delivered | Rejected | Cancelled => false,
        };
        if !allowed {
            return false;
        }
        previous = next;
    }
    first == Pending
}

/// What the settled orders themselves must say.
fn check_orders(
    scenario: &Scenario,
    ids: &Ids,
    ledger: &Ledger,
    orders: &HashMap<Uuid, Order>,
    elapsed: Duration,
) -> Result<(), String> {
    let mut violations = Vec::new();
    for placed in &ledger.placed {
        let id = placed.order_id;
        let order = &orders[&id];
        let mut violation = |message: String| violations.push(format!("order {id} {placed:?}: {message}"));
        if order.user_id != ids.users[placed.user] {
            violation(format!("belongs to {}", order.user_id));
        }
        let expected: BTreeMap<Uuid, (u32, i64)> = placed
            .quantities
            .iter()
            .map(|(product, quantity)| (ids.products[*product], (*quantity, ids.prices[*product])))
            .collect();
        let items: BTreeMap<Uuid, (u32, i64)> =
            order.items.iter().map(|line| (line.product_id, (line.quantity, line.unit_price.amount))).collect();
        if items != expected || order.items.len() != expected.len() {
            violation(format!("has the lines {:?}, expected (quantity, unit price) {expected:?}", order.items));
        }
        let total: i64 = expected.values().map(|(quantity, price)| i64::from(*quantity) * price).sum();
        if order.total != Money::eur(total) {
            violation(format!("totals {:?}, expected {total}", order.total));
        }
        let history: Vec<OrderStatus> = order.history.iter().map(|change| change.status).collect();
        if !is_valid_history(&history) || history.last() != Some(&order.status) {
            violation(format!("went {history:?} and is {:?}", order.status));
        }
        if placed.pay.always_declined() && is_kept(order.status) {
            violation(format!("is {:?} with a card that is always declined", order.status));
        }
        if order.reason.is_some() != (order.status == OrderStatus::Rejected) {
            violation(format!("is {:?} for the reason {:?}", order.status, order.reason));
        }
        if placed.pay == Pay::Visa && order.reason == Some(RejectionReason::PaymentDeclined) {
            violation("was declined with tok_visa".to_owned());
        }
        if scenario.payment_timeout == "30s"
            && elapsed < Duration::from_secs(25)
            && order.reason == Some(RejectionReason::Timeout)
        {
            violation(format!("timed out after less than {elapsed:?} with a 30 s timeout"));
        }
        if ledger.cancelled.contains(&id) != (order.status == OrderStatus::Cancelled) {
            let answered = ledger.cancelled.contains(&id);
            violation(format!("is {:?}, and a cancellation answered cancelled: {answered}", order.status));
        }
        if ledger.cancel_refused.contains(&id)
            && !matches!(order.status, OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Rejected)
        {
            violation(format!("refused a cancellation as dispatched or rejected, but is {:?}", order.status));
        }
        if ledger.dispatched.contains(&id) != (order.status == OrderStatus::Shipped) {
            let answered = ledger.dispatched.contains(&id);
            violation(format!("is {:?}, and a dispatch answered dispatched: {answered}", order.status));
        }
    }
    if violations.is_empty() { Ok(()) } else { Err(violations.join("\n")) }
}

/// A wallet and every transaction of it, read while it did not change.
async fn wallet_with_transactions(
    shop: &Shop,
    user: usize,
    user_id: Uuid,
) -> Result<Option<(i64, Vec<WalletTransaction>)>, String> {
    let failed = |error: CallError| format!("reading the wallet of user {user} failed: {error}");
    let before = shop.ask(&GetWallet { user_id }).await.map_err(failed)?;
    let mut transactions = Vec::new();
    let mut cursor = None;
    loop {
        let page = ListWalletTransactions { user_id, page: PageRequest { limit: PageRequest::MAX_LIMIT, cursor } };
        let page = shop.ask(&page).await.map_err(failed)?;
        transactions.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let after = shop.ask(&GetWallet { user_id }).await.map_err(failed)?;
    Ok((before.version == after.version).then_some((after.balance.amount, transactions)))
}

/// Once settled, the services agree with the orders: stock, wallets and shipments. What
/// may take a moment (a release, a refund, a shipment) is waited for; what must hold at
/// any moment fails at once.
async fn agree_eventually(
    shop: &Shop,
    ids: &Ids,
    ledger: &Ledger,
    orders: &HashMap<Uuid, Order>,
) -> Result<(), String> {
    let deadline = Instant::now() + AGREE_DEADLINE;
    loop {
        let waiting = disagreements(shop, ids, ledger, orders).await?;
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("still after {AGREE_DEADLINE:?} of quiescence:\n{}", waiting.join("\n")));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Err: an invariant broken for good. Ok: what does not agree yet.
async fn disagreements(
    shop: &Shop,
    ids: &Ids,
    ledger: &Ledger,
    orders: &HashMap<Uuid, Order>,
) -> Result<Vec<String>, String> {
    let mut waiting = Vec::new();
    let mut broken = Vec::new();
    let kept = |placed: &&Placed| is_kept(orders[&placed.order_id].status);

    for (product, product_id) in ids.products.iter().enumerate() {
        let inventory = shop
            .ask(&GetInventory { product_id: *product_id })
            .await
            .map_err(|error| format!("reading the stock of product {product} failed: {error}"))?;
        let added = ledger.added[product];
        stock_is_sound(product, &inventory, added)?;
        let sold: u64 = ledger
            .placed
            .iter()
            .filter(kept)
            .map(|placed| u64::from(placed.quantities.get(&product).copied().unwrap_or(0)))
            .sum();
        if sold > added {
            broken.push(format!("product {product} is oversold: {sold} units in kept orders, {added} ever added"));
            continue;
        }
        let levels = inventory.levels;
        if levels.reserved != 0 || levels.on_hand != added - sold {
            waiting.push(format!(
                "product {product}: {levels:?}, expected {} on hand and none reserved ({added} added, {sold} sold)",
                added - sold
            ));
        }
    }

    for (user, user_id) in ids.users.iter().enumerate() {
        let Some((balance, transactions)) = wallet_with_transactions(shop, user, *user_id).await? else {
            waiting.push(format!("the wallet of user {user} changed while it was read"));
            continue;
        };
        let mut broken_wallet = |message: String| broken.push(format!("user {user}: {message}: {transactions:?}"));
        let sum: i64 = transactions.iter().map(|transaction| transaction.amount.amount).sum();
        if balance < 0 || sum != balance {
            broken_wallet(format!("the balance is {balance}, its transactions add up to {sum}"));
        }
        let deposits: Vec<i64> = transactions
            .iter()
            .filter(|transaction| transaction.kind == TransactionKind::Deposit)
            .map(|transaction| transaction.amount.amount)
            .collect();
        if deposits.len() != ledger.deposits[user] || deposits.iter().sum::<i64>() != ledger.deposited[user] {
            broken_wallet(format!(
                "{} deposits were answered, {} cents in all; the wallet has {deposits:?}",
                ledger.deposits[user], ledger.deposited[user]
            ));
        }
        let mut expected_balance = ledger.deposited[user];
        for placed in ledger.placed.iter().filter(|placed| placed.user == user) {
            let order = &orders[&placed.order_id];
            let of_order = |kind: TransactionKind| -> Vec<i64> {
                transactions
                    .iter()
                    .filter(|transaction| transaction.order_id == Some(order.id) && transaction.kind == kind)
                    .map(|transaction| transaction.amount.amount)
                    .collect()
            };
            let (captures, refunds) = (of_order(TransactionKind::Capture), of_order(TransactionKind::Refund));
            let total = order.total.amount;
            let what = format!("order {} ({:?}, {:?}, total {total})", order.id, placed.pay, order.status);
            if placed.pay != Pay::Wallet {
                if !captures.is_empty() || !refunds.is_empty() {
                    broken_wallet(format!("{what} moved wallet money: captures {captures:?}, refunds {refunds:?}"));
                }
                continue;
            }
            let captured_right = captures.iter().all(|amount| *amount == -total) && captures.len() <= 1;
            let refunded_right = refunds.iter().all(|amount| *amount == total) && refunds.len() <= captures.len();
            if !captured_right || !refunded_right {
                broken_wallet(format!("{what} has captures {captures:?} and refunds {refunds:?}"));
            } else if is_kept(order.status) {
                expected_balance -= total;
                if captures.len() != 1 || !refunds.is_empty() {
                    broken_wallet(format!("{what} is kept with captures {captures:?} and refunds {refunds:?}"));
                }
            } else if refunds.len() != captures.len() {
                waiting.push(format!("user {user}: {what} is closed, captured {captures:?}, refunded {refunds:?}"));
            }
        }
        if balance != expected_balance {
            waiting.push(format!("user {user}: the balance is {balance}, expected {expected_balance}"));
        }
    }

    for placed in &ledger.placed {
        let order = &orders[&placed.order_id];
        let shipment = shop.ask(&GetShipment { order_id: order.id, viewer: None }).await;
        let status = match shipment {
            Ok(Shipment { status, .. }) => Some(status),
            Err(_) if rejected(&shipment, RejectionKind::NotFound) => None,
            Err(error) => return Err(format!("reading the shipment of order {} failed: {error}", order.id)),
        };
        let expected: &[Option<ShipmentStatus>] = match order.status {
            OrderStatus::Confirmed => &[Some(ShipmentStatus::Pending)],
            OrderStatus::Shipped => &[Some(ShipmentStatus::Dispatched)],
            OrderStatus::Delivered => &[Some(ShipmentStatus::Delivered)],
            OrderStatus::Cancelled => &[None, Some(ShipmentStatus::Cancelled)],
            _ => &[None],
        };
        if !expected.contains(&status) {
            waiting.push(format!("order {} is {:?}, its shipment {status:?}", order.id, order.status));
        }
    }

    if broken.is_empty() { Ok(waiting) } else { Err(broken.join("\n")) }
}

/// No consumer of any service gave up on an event.
async fn no_dead_letters(shop: &Shop) -> Result<(), String> {
    let mut letters = Vec::new();
    for (service, store, _) in &shop.stores {
        let parked = store
            .dead_letters(None, 10)
            .await
            .map_err(|error| format!("reading the dead letters of {service} failed: {error}"))?;
        letters.extend(parked.into_iter().map(|letter| {
            format!(
                "{service}: {} parked {} ({}): {}",
                letter.consumer, letter.event.event_type, letter.event.stream_id, letter.reason
            )
        }));
    }
    if letters.is_empty() { Ok(()) } else { Err(format!("dead letters:\n{}", letters.join("\n"))) }
}
