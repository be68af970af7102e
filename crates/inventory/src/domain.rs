//! The stock of one product, as an aggregate: restocks and the reservations that hold units
//! for orders in progress.
//!
//! Pure decisions, no I/O. The reservation rules (reserve, release, commit, give back) are
//! called by the checkout saga ([`crate::saga`]); [`reserve_order`] decides an order's lines
//! over several products at once, all or nothing, and [`Reservation`] is what the order's
//! own stream (`reservation-<order id>`) says was decided.
//!
//! Every event carries the levels after it, and `apply` takes them from the event rather
//! than computing them, so a reader of the events and the aggregate can never disagree.
//!
//! Low stock: a reservation that leaves fewer units available than the threshold (the live
//! setting [`LOW_STOCK_THRESHOLD_SETTING`]) also decides `LowStockDetected`, in the same
//! append. Once per crossing: the alert stays outstanding until the available units are
//! back at or above the threshold it was raised for (a restock, a release). Only a
//! reservation lowers what is available (a commit takes units that were already held), so
//! it is the only decision that can cross.

use std::collections::{BTreeMap, VecDeque};

use contracts::inventory::{InventoryEvent, ReservedLine, StockLevels};
use contracts::values::Quantity;
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most units a product may have on hand: far beyond any warehouse, far below any
/// overflow of the sums the saga and the catalog make.
pub const MAX_ON_HAND: u64 = 1_000_000_000;

/// How many restocks, and how many settled reservations, a stock item remembers to answer a
/// repeated command as the first time. A repeat arrives within seconds (a retried HTTP call,
/// a redelivered event), not after a thousand other commands.
pub const REMEMBERED_OUTCOMES: usize = 1_000;

/// The live setting naming how few available units make a product's stock low.
pub const LOW_STOCK_THRESHOLD_SETTING: &str = "inventory.low_stock_threshold";

/// The low-stock threshold when the setting is absent or unreadable.
pub const DEFAULT_LOW_STOCK_THRESHOLD: u64 = 5;

/// What can be done to a product's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockCommand {
    /// Adds units. Idempotent per `restock_id`.
    Restock { product_id: Uuid, restock_id: Uuid, quantity: Quantity },
    /// Holds units for an order, and raises the low-stock alert if fewer than
    /// `low_stock_threshold` units are left available. Idempotent per `order_id`.
    Reserve { product_id: Uuid, order_id: Uuid, quantity: Quantity, low_stock_threshold: u64 },
    /// Gives an order's held units back. Idempotent.
    Release { product_id: Uuid, order_id: Uuid },
    /// Turns an order's held units into sold ones: they leave the shelf. Idempotent.
    Commit { product_id: Uuid, order_id: Uuid },
    /// Undoes what a closed order took, whatever became of it: held units are released,
    /// and committed ones (the order was cancelled after confirmation, before dispatch, so
    /// they never left) go back on the shelf as a restock whose id is derived from the
    /// order ([`returned_restock_id`]). An order that holds nothing needs nothing. Idempotent.
    GiveBack { product_id: Uuid, order_id: Uuid, quantity: u64 },
}

/// The restock that puts back the units of a committed order that was cancelled.
pub fn returned_restock_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"returned")
}

/// Why a command on a product's stock was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    #[error("restocking {quantity} would put {would_be} units on hand, above the limit of {MAX_ON_HAND}")]
    OnHandLimitExceeded { quantity: u64, would_be: u64 },
    #[error("{requested} units requested but only {available} available")]
    InsufficientStock { requested: u64, available: u64 },
    #[error("order {order_id} holds no reservation of this product")]
    NoReservation { order_id: Uuid },
    #[error("the reservation of order {order_id} is already committed and cannot be released")]
    AlreadyCommitted { order_id: Uuid },
    #[error("the reservation of order {order_id} was released and cannot be committed")]
    AlreadyReleased { order_id: Uuid },
}

/// How an order's reservation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    Released,
    Committed,
}

/// The levels a restock left, and the stream version after it: what a repeat answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestockOutcome {
    pub levels: StockLevels,
    pub version: Version,
}

/// The stock of one product (stream `stock-<product id>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StockItem {
    levels: StockLevels,
    /// How many events this state has applied, which is the stream's version.
    version: Version,
    /// Units held per order in progress.
    held: BTreeMap<Uuid, u64>,
    /// Orders whose reservation ended, the most recent ones.
    settled: Recent<Settlement>,
    /// Restocks by id, the most recent ones.
    restocks: Recent<RestockOutcome>,
    /// The threshold of the low-stock alert raised last, while it is outstanding: none
    /// once the available units are back at or above it.
    #[serde(default)]
    low_stock_alert: Option<u64>,
}

impl StockItem {
    pub fn levels(&self) -> StockLevels {
        self.levels
    }

    /// What restock `restock_id` left, if it is one of the remembered ones.
    pub fn restock_outcome(&self, restock_id: Uuid) -> Option<RestockOutcome> {
        self.restocks.get(restock_id).copied()
    }

    /// The units order `order_id` holds, if any.
    pub fn held_for(&self, order_id: Uuid) -> Option<u64> {
        self.held.get(&order_id).copied()
    }

    /// Whether a low-stock alert is outstanding (raised, and stock not back up since).
    pub fn low_stock_alerted(&self) -> bool {
        self.low_stock_alert.is_some()
    }

    fn restock(
        &self,
        product_id: Uuid,
        restock_id: Uuid,
        quantity: Quantity,
    ) -> Result<Vec<InventoryEvent>, StockError> {
        if self.restocks.contains(restock_id) {
            return Ok(Vec::new());
        }
        let quantity = u64::from(quantity.get());
        let on_hand = self.levels.on_hand + quantity;
        if on_hand > MAX_ON_HAND {
            return Err(StockError::OnHandLimitExceeded { quantity, would_be: on_hand });
        }
        let levels = StockLevels { on_hand, reserved: self.levels.reserved, available: on_hand - self.levels.reserved };
        Ok(vec![InventoryEvent::StockAdded { product_id, restock_id, quantity, levels }])
    }

    fn reserve(
        &self,
        product_id: Uuid,
        order_id: Uuid,
        quantity: u64,
        low_stock_threshold: u64,
    ) -> Result<Vec<InventoryEvent>, StockError> {
        if self.held.contains_key(&order_id) || self.settled.contains(order_id) {
            return Ok(Vec::new());
        }
        if quantity > self.levels.available {
            return Err(StockError::InsufficientStock { requested: quantity, available: self.levels.available });
        }
        let reserved = self.levels.reserved + quantity;
        let levels = StockLevels { on_hand: self.levels.on_hand, reserved, available: self.levels.on_hand - reserved };
        let mut events = vec![InventoryEvent::StockReserved { product_id, order_id, quantity, levels }];
        // Strictly under the threshold, and only if no alert is outstanding: once per crossing.
        if levels.available < low_stock_threshold && self.low_stock_alert.is_none() {
            events.push(InventoryEvent::LowStockDetected {
                product_id,
                available: levels.available,
                threshold: low_stock_threshold,
            });
        }
        Ok(events)
    }

    fn release(&self, product_id: Uuid, order_id: Uuid) -> Result<Vec<InventoryEvent>, StockError> {
        let Some(&quantity) = self.held.get(&order_id) else {
            return match self.settled.get(order_id) {
                Some(Settlement::Released) => Ok(Vec::new()),
                Some(Settlement::Committed) => Err(StockError::AlreadyCommitted { order_id }),
                None => Err(StockError::NoReservation { order_id }),
            };
        };
        let reserved = self.levels.reserved - quantity;
        let levels = StockLevels { on_hand: self.levels.on_hand, reserved, available: self.levels.on_hand - reserved };
        Ok(vec![InventoryEvent::StockReleased { product_id, order_id, quantity, levels }])
    }

    fn commit(&self, product_id: Uuid, order_id: Uuid) -> Result<Vec<InventoryEvent>, StockError> {
        let Some(&quantity) = self.held.get(&order_id) else {
            return match self.settled.get(order_id) {
                Some(Settlement::Committed) => Ok(Vec::new()),
                Some(Settlement::Released) => Err(StockError::AlreadyReleased { order_id }),
                None => Err(StockError::NoReservation { order_id }),
            };
        };
        // Held units are part of both on hand and reserved, so both fall and available
        // stays as it was.
        let levels = StockLevels {
            on_hand: self.levels.on_hand - quantity,
            reserved: self.levels.reserved - quantity,
            available: self.levels.available,
        };
        Ok(vec![InventoryEvent::StockCommitted { product_id, order_id, quantity, levels }])
    }

    fn give_back(&self, product_id: Uuid, order_id: Uuid, quantity: u64) -> Vec<InventoryEvent> {
        if self.held.contains_key(&order_id) {
            return self.release(product_id, order_id).unwrap_or_default();
        }
        let restock_id = returned_restock_id(order_id);
        if self.settled.get(order_id) != Some(&Settlement::Committed) || self.restocks.contains(restock_id) {
            return Vec::new();
        }
        // No limit on hand: these units were on hand before the order took them.
        let on_hand = self.levels.on_hand + quantity;
        let levels = StockLevels { on_hand, reserved: self.levels.reserved, available: on_hand - self.levels.reserved };
        vec![InventoryEvent::StockAdded { product_id, restock_id, quantity, levels }]
    }
}

/// One line of an order as inventory decides it: the product's stock as loaded, and the
/// units the order asks of it.
#[derive(Debug, Clone, Copy)]
pub struct LineToReserve<'a> {
    pub product_id: Uuid,
    pub quantity: u64,
    pub stock: &'a StockItem,
}

/// What inventory decided for an order's lines.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderReservation {
    /// Every line fits: the `StockReserved` of each product not already holding units for
    /// the order (each followed by its `LowStockDetected` if it made the stock low), in the
    /// order of the lines.
    Reserved(Vec<InventoryEvent>),
    /// This line (the first that does not fit) is why nothing is held: a
    /// `StockReservationFailed`.
    Failed(InventoryEvent),
}

/// Decides an order's reservation all or nothing: every line's units are held, or none
/// are. Lines naming the same product must have been merged (one stock stream, one
/// decision). A line that leaves its product under `low_stock_threshold` available units
/// is followed by its `LowStockDetected`.
pub fn reserve_order(order_id: Uuid, lines: &[LineToReserve<'_>], low_stock_threshold: u64) -> OrderReservation {
    let mut reserved = Vec::with_capacity(lines.len());
    for line in lines {
        match line.stock.reserve(line.product_id, order_id, line.quantity, low_stock_threshold) {
            Ok(events) => reserved.extend(events),
            // Insufficient stock, the only refusal of a reservation.
            Err(_) => {
                return OrderReservation::Failed(InventoryEvent::StockReservationFailed {
                    order_id,
                    product_id: line.product_id,
                    requested: line.quantity,
                    available: line.stock.levels.available,
                });
            }
        }
    }
    OrderReservation::Reserved(reserved)
}

/// The product on whose stock stream `event` is recorded, for the events recorded there.
pub fn stock_product(event: &InventoryEvent) -> Option<Uuid> {
    match event {
        InventoryEvent::LowStockDetected { product_id, .. } => Some(*product_id),
        other => other.levels().map(|(product_id, _)| product_id),
    }
}

/// What an order's reservation stream (`reservation-<order id>`) says: decided once, when
/// the order is placed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reservation {
    /// Nothing decided yet: the order was never seen.
    #[default]
    Undecided,
    /// Every line was held; what became of each is on its product's stream.
    Reserved { lines: Vec<ReservedLine> },
    /// Nothing was held.
    Failed,
}

impl Reservation {
    /// The reservation after `event`. Cannot fail.
    pub fn apply(self, event: &InventoryEvent) -> Self {
        match event {
            InventoryEvent::StockReservedForOrder { lines, .. } => Reservation::Reserved { lines: lines.clone() },
            InventoryEvent::StockReservationFailed { .. } => Reservation::Failed,
            // Recorded on product streams, not here.
            InventoryEvent::StockAdded { .. }
            | InventoryEvent::StockReserved { .. }
            | InventoryEvent::StockReleased { .. }
            | InventoryEvent::StockCommitted { .. }
            | InventoryEvent::LowStockDetected { .. } => self,
        }
    }

    /// The lines held for the order, if it was reserved.
    pub fn reserved_lines(&self) -> &[ReservedLine] {
        match self {
            Reservation::Reserved { lines } => lines,
            Reservation::Undecided | Reservation::Failed => &[],
        }
    }
}

impl Aggregate for StockItem {
    const CATEGORY: &'static str = "stock";

    type Command = StockCommand;
    type Event = InventoryEvent;
    type Error = StockError;

    fn decide(&self, command: &StockCommand) -> Result<Vec<InventoryEvent>, StockError> {
        match *command {
            StockCommand::Restock { product_id, restock_id, quantity } => {
                self.restock(product_id, restock_id, quantity)
            }
            StockCommand::Reserve { product_id, order_id, quantity, low_stock_threshold } => {
                self.reserve(product_id, order_id, u64::from(quantity.get()), low_stock_threshold)
            }
            StockCommand::Release { product_id, order_id } => self.release(product_id, order_id),
            StockCommand::Commit { product_id, order_id } => self.commit(product_id, order_id),
            StockCommand::GiveBack { product_id, order_id, quantity } => {
                Ok(self.give_back(product_id, order_id, quantity))
            }
        }
    }

    fn apply(mut self, event: &InventoryEvent) -> Self {
        self.version += 1;
        if let Some((_, levels)) = event.levels() {
            self.levels = levels;
            // Back at or above the threshold the alert was raised for: the next fall alerts again.
            if self.low_stock_alert.is_some_and(|threshold| levels.available >= threshold) {
                self.low_stock_alert = None;
            }
        }
        match *event {
            InventoryEvent::StockAdded { restock_id, levels, .. } => {
                self.restocks.insert(restock_id, RestockOutcome { levels, version: self.version });
            }
            InventoryEvent::StockReserved { order_id, quantity, .. } => {
                self.held.insert(order_id, quantity);
            }
            InventoryEvent::StockReleased { order_id, .. } => {
                self.held.remove(&order_id);
                self.settled.insert(order_id, Settlement::Released);
            }
            InventoryEvent::StockCommitted { order_id, .. } => {
                self.held.remove(&order_id);
                self.settled.insert(order_id, Settlement::Committed);
            }
            InventoryEvent::LowStockDetected { threshold, .. } => self.low_stock_alert = Some(threshold),
            // Neither is recorded on a product's stock stream; nothing to remember.
            InventoryEvent::StockReservedForOrder { .. } | InventoryEvent::StockReservationFailed { .. } => {}
        }
        self
    }
}

/// The last [`REMEMBERED_OUTCOMES`] values by id, oldest forgotten first. A linear search
/// over a thousand ids costs less than keeping an index in step, and serializes as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct Recent<V> {
    entries: VecDeque<(Uuid, V)>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent { entries: VecDeque::new() }
    }
}

impl<V> Recent<V> {
    fn get(&self, id: Uuid) -> Option<&V> {
        self.entries.iter().rev().find(|(key, _)| *key == id).map(|(_, value)| value)
    }

    fn contains(&self, id: Uuid) -> bool {
        self.get(id).is_some()
    }

    fn insert(&mut self, id: Uuid, value: V) {
        self.entries.push_back((id, value));
        while self.entries.len() > REMEMBERED_OUTCOMES {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use eventshop_core::testing::AggregateTest;
    use proptest::prelude::*;

    use super::*;

    const PRODUCT: Uuid = Uuid::from_u128(0x5eed);
    const ORDER: Uuid = Uuid::from_u128(0x0de5);

    fn quantity(units: u32) -> Quantity {
        Quantity::new(units).expect("a valid quantity")
    }

    fn levels(on_hand: u64, reserved: u64) -> StockLevels {
        StockLevels { on_hand, reserved, available: on_hand - reserved }
    }

    fn added(restock: u128, quantity: u64, after: StockLevels) -> InventoryEvent {
        InventoryEvent::StockAdded {
            product_id: PRODUCT,
            restock_id: Uuid::from_u128(restock),
            quantity,
            levels: after,
        }
    }

    fn reserved(order_id: Uuid, quantity: u64, after: StockLevels) -> InventoryEvent {
        InventoryEvent::StockReserved { product_id: PRODUCT, order_id, quantity, levels: after }
    }

    fn released(order_id: Uuid, quantity: u64, after: StockLevels) -> InventoryEvent {
        InventoryEvent::StockReleased { product_id: PRODUCT, order_id, quantity, levels: after }
    }

    fn committed(order_id: Uuid, quantity: u64, after: StockLevels) -> InventoryEvent {
        InventoryEvent::StockCommitted { product_id: PRODUCT, order_id, quantity, levels: after }
    }

    fn restock(restock: u128, units: u32) -> StockCommand {
        StockCommand::Restock { product_id: PRODUCT, restock_id: Uuid::from_u128(restock), quantity: quantity(units) }
    }

    /// A reservation with low-stock alerts off (threshold 0: never under it).
    fn reserve(order_id: Uuid, units: u32) -> StockCommand {
        reserve_alerting_under(order_id, units, 0)
    }

    fn reserve_alerting_under(order_id: Uuid, units: u32, low_stock_threshold: u64) -> StockCommand {
        StockCommand::Reserve { product_id: PRODUCT, order_id, quantity: quantity(units), low_stock_threshold }
    }

    fn low_stock(available: u64, threshold: u64) -> InventoryEvent {
        InventoryEvent::LowStockDetected { product_id: PRODUCT, available, threshold }
    }

    #[test]
    fn a_restock_adds_units_on_hand_and_available() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0)), reserved(ORDER, 4, levels(10, 4))])
            .when(restock(2, 5))
            .then_expect_events(vec![added(2, 5, levels(15, 4))]);
    }

    #[test]
    fn a_repeated_restock_adds_nothing_and_remembers_what_the_first_left() {
        let state = AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0)), added(2, 3, levels(13, 0))]);
        let state = state.when(restock(1, 10)).then_state();
        assert_eq!(state.levels(), levels(13, 0), "the repeat changed the levels");
        assert_eq!(
            state.restock_outcome(Uuid::from_u128(1)),
            Some(RestockOutcome { levels: levels(10, 0), version: 1 })
        );
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0))])
            .when(restock(1, 10))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_restock_may_not_put_more_than_a_billion_units_on_hand() {
        AggregateTest::<StockItem>::given(vec![added(1, 999_999_999, levels(999_999_999, 0))])
            .when(restock(2, 2))
            .then_expect_error(StockError::OnHandLimitExceeded { quantity: 2, would_be: 1_000_000_001 });
        AggregateTest::<StockItem>::given(vec![added(1, 999_999_999, levels(999_999_999, 0))])
            .when(restock(2, 1))
            .then_expect_events(vec![added(2, 1, levels(MAX_ON_HAND, 0))]);
    }

    #[test]
    fn a_restock_forgotten_after_a_thousand_others_counts_again() {
        let history = (0..=REMEMBERED_OUTCOMES as u128).map(|restock| {
            let on_hand = restock as u64 + 1;
            added(restock, 1, levels(on_hand, 0))
        });
        let test = AggregateTest::<StockItem>::given(history);
        let on_hand = REMEMBERED_OUTCOMES as u64 + 1;
        test.when(restock(0, 1)).then_expect_events(vec![added(0, 1, levels(on_hand + 1, 0))]);
    }

    #[test]
    fn a_reservation_holds_available_units() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0))])
            .when(reserve(ORDER, 10))
            .then_expect_events(vec![reserved(ORDER, 10, levels(10, 10))]);
    }

    #[test]
    fn a_reservation_beyond_what_is_available_is_refused() {
        let other_order = Uuid::from_u128(7);
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0)), reserved(other_order, 8, levels(10, 8))])
            .when(reserve(ORDER, 3))
            .then_expect_error(StockError::InsufficientStock { requested: 3, available: 2 });
        AggregateTest::<StockItem>::given_no_history()
            .when(reserve(ORDER, 1))
            .then_expect_error(StockError::InsufficientStock { requested: 1, available: 0 });
    }

    #[test]
    fn reserving_twice_for_one_order_holds_once() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0)), reserved(ORDER, 4, levels(10, 4))])
            .when(reserve(ORDER, 4))
            .then_expect_events(vec![]);
        // Nor does a settled order reserve again when its command is repeated.
        AggregateTest::<StockItem>::given(vec![
            added(1, 10, levels(10, 0)),
            reserved(ORDER, 4, levels(10, 4)),
            released(ORDER, 4, levels(10, 0)),
        ])
        .when(reserve(ORDER, 4))
        .then_expect_events(vec![]);
    }

    #[test]
    fn a_release_gives_held_units_back() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0)), reserved(ORDER, 4, levels(10, 4))])
            .when(StockCommand::Release { product_id: PRODUCT, order_id: ORDER })
            .then_expect_events(vec![released(ORDER, 4, levels(10, 0))]);
    }

    #[test]
    fn a_release_happens_once_and_only_of_a_held_reservation() {
        let release = StockCommand::Release { product_id: PRODUCT, order_id: ORDER };
        AggregateTest::<StockItem>::given(vec![
            added(1, 10, levels(10, 0)),
            reserved(ORDER, 4, levels(10, 4)),
            released(ORDER, 4, levels(10, 0)),
        ])
        .when(release.clone())
        .then_expect_events(vec![]);
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0))])
            .when(release.clone())
            .then_expect_error(StockError::NoReservation { order_id: ORDER });
        AggregateTest::<StockItem>::given(vec![
            added(1, 10, levels(10, 0)),
            reserved(ORDER, 4, levels(10, 4)),
            committed(ORDER, 4, levels(6, 0)),
        ])
        .when(release)
        .then_expect_error(StockError::AlreadyCommitted { order_id: ORDER });
    }

    #[test]
    fn a_commit_takes_held_units_off_the_shelf() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0)), reserved(ORDER, 4, levels(10, 4))])
            .when(StockCommand::Commit { product_id: PRODUCT, order_id: ORDER })
            .then_expect_events(vec![committed(ORDER, 4, levels(6, 0))]);
    }

    #[test]
    fn a_commit_happens_once_and_only_of_a_held_reservation() {
        let commit = StockCommand::Commit { product_id: PRODUCT, order_id: ORDER };
        AggregateTest::<StockItem>::given(vec![
            added(1, 10, levels(10, 0)),
            reserved(ORDER, 4, levels(10, 4)),
            committed(ORDER, 4, levels(6, 0)),
        ])
        .when(commit.clone())
        .then_expect_events(vec![]);
        AggregateTest::<StockItem>::given_no_history()
            .when(commit.clone())
            .then_expect_error(StockError::NoReservation { order_id: ORDER });
        AggregateTest::<StockItem>::given(vec![
            added(1, 10, levels(10, 0)),
            reserved(ORDER, 4, levels(10, 4)),
            released(ORDER, 4, levels(10, 0)),
        ])
        .when(commit)
        .then_expect_error(StockError::AlreadyReleased { order_id: ORDER });
    }

    fn give_back(order_id: Uuid, units: u64) -> StockCommand {
        StockCommand::GiveBack { product_id: PRODUCT, order_id, quantity: units }
    }

    #[test]
    fn giving_back_a_held_reservation_releases_it() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0)), reserved(ORDER, 4, levels(10, 4))])
            .when(give_back(ORDER, 4))
            .then_expect_events(vec![released(ORDER, 4, levels(10, 0))]);
    }

    #[test]
    fn giving_back_a_committed_reservation_puts_its_units_back_on_the_shelf_once() {
        let history =
            vec![added(1, 10, levels(10, 0)), reserved(ORDER, 4, levels(10, 4)), committed(ORDER, 4, levels(6, 0))];
        let returned = InventoryEvent::StockAdded {
            product_id: PRODUCT,
            restock_id: returned_restock_id(ORDER),
            quantity: 4,
            levels: levels(10, 0),
        };
        AggregateTest::<StockItem>::given(history.clone())
            .when(give_back(ORDER, 4))
            .then_expect_events(vec![returned.clone()]);
        AggregateTest::<StockItem>::given(history.into_iter().chain([returned]))
            .when(give_back(ORDER, 4))
            .then_expect_events(vec![]);
    }

    #[test]
    fn giving_back_what_was_never_held_or_already_released_changes_nothing() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0))])
            .when(give_back(ORDER, 4))
            .then_expect_events(vec![]);
        AggregateTest::<StockItem>::given(vec![
            added(1, 10, levels(10, 0)),
            reserved(ORDER, 4, levels(10, 4)),
            released(ORDER, 4, levels(10, 0)),
        ])
        .when(give_back(ORDER, 4))
        .then_expect_events(vec![]);
    }

    #[test]
    fn a_reservation_that_leaves_fewer_than_the_threshold_available_detects_low_stock() {
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0))])
            .when(reserve_alerting_under(ORDER, 6, 5))
            .then_expect_events(vec![reserved(ORDER, 6, levels(10, 6)), low_stock(4, 5)]);
        // Strictly under: exactly the threshold left is not low.
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0))])
            .when(reserve_alerting_under(ORDER, 5, 5))
            .then_expect_events(vec![reserved(ORDER, 5, levels(10, 5))]);
        // A threshold of zero never alerts.
        AggregateTest::<StockItem>::given(vec![added(1, 10, levels(10, 0))])
            .when(reserve_alerting_under(ORDER, 10, 0))
            .then_expect_events(vec![reserved(ORDER, 10, levels(10, 10))]);
    }

    #[test]
    fn low_stock_is_detected_once_per_crossing() {
        let other_order = Uuid::from_u128(7);
        let crossed = vec![added(1, 10, levels(10, 0)), reserved(other_order, 6, levels(10, 6)), low_stock(4, 5)];
        let state = AggregateTest::<StockItem>::given(crossed.clone()).when(reserve(ORDER, 1)).then_state();
        assert!(state.low_stock_alerted());
        AggregateTest::<StockItem>::given(crossed.clone())
            .when(reserve_alerting_under(ORDER, 1, 5))
            .then_expect_events(vec![reserved(ORDER, 1, levels(10, 7))]);
        // Still under the threshold after a small restock: no new alert either.
        let deeper = vec![added(1, 10, levels(10, 0)), reserved(other_order, 7, levels(10, 7)), low_stock(3, 5)];
        AggregateTest::<StockItem>::given(deeper.into_iter().chain([added(2, 1, levels(11, 7))]))
            .when(reserve_alerting_under(ORDER, 1, 5))
            .then_expect_events(vec![reserved(ORDER, 1, levels(11, 8))]);
    }

    #[test]
    fn stock_back_at_the_threshold_rearms_the_alert() {
        let other_order = Uuid::from_u128(7);
        let crossed = [added(1, 10, levels(10, 0)), reserved(other_order, 6, levels(10, 6)), low_stock(4, 5)];
        // A restock that brings it back to the threshold.
        let restocked = crossed.iter().cloned().chain([added(2, 1, levels(11, 6))]);
        let state = AggregateTest::<StockItem>::given(restocked.clone()).when(reserve(ORDER, 1)).then_state();
        assert!(!state.low_stock_alerted(), "back at 5 available");
        AggregateTest::<StockItem>::given(restocked)
            .when(reserve_alerting_under(ORDER, 1, 5))
            .then_expect_events(vec![reserved(ORDER, 1, levels(11, 7)), low_stock(4, 5)]);
        // A release does it too.
        let released = crossed.iter().cloned().chain([released(other_order, 6, levels(10, 0))]);
        AggregateTest::<StockItem>::given(released)
            .when(reserve_alerting_under(ORDER, 8, 5))
            .then_expect_events(vec![reserved(ORDER, 8, levels(10, 8)), low_stock(2, 5)]);
    }

    #[test]
    fn a_line_that_makes_its_stock_low_is_followed_by_its_alert() {
        let other = Uuid::from_u128(0x07e5);
        let first = StockItem::default().apply_all(&[added(1, 5, levels(5, 0))]);
        let second = StockItem::default().apply(&InventoryEvent::StockAdded {
            product_id: other,
            restock_id: Uuid::from_u128(2),
            quantity: 30,
            levels: levels(30, 0),
        });
        let lines = [
            LineToReserve { product_id: PRODUCT, quantity: 2, stock: &first },
            LineToReserve { product_id: other, quantity: 1, stock: &second },
        ];
        let OrderReservation::Reserved(events) = reserve_order(ORDER, &lines, 5) else { panic!("both lines fit") };
        assert_eq!(
            events,
            vec![
                reserved(ORDER, 2, levels(5, 2)),
                low_stock(3, 5),
                InventoryEvent::StockReserved {
                    product_id: other,
                    order_id: ORDER,
                    quantity: 1,
                    levels: levels(30, 1)
                },
            ]
        );
        let products: Vec<Option<Uuid>> = events.iter().map(stock_product).collect();
        assert_eq!(products, [Some(PRODUCT), Some(PRODUCT), Some(other)]);
    }

    #[test]
    fn an_order_is_reserved_when_every_line_fits() {
        let other = Uuid::from_u128(0x07e5);
        let first = StockItem::default().apply_all(&[added(1, 5, levels(5, 0))]);
        let second = StockItem::default().apply(&InventoryEvent::StockAdded {
            product_id: other,
            restock_id: Uuid::from_u128(2),
            quantity: 3,
            levels: levels(3, 0),
        });
        let lines = [
            LineToReserve { product_id: PRODUCT, quantity: 5, stock: &first },
            LineToReserve { product_id: other, quantity: 1, stock: &second },
        ];
        assert_eq!(
            reserve_order(ORDER, &lines, 0),
            OrderReservation::Reserved(vec![
                reserved(ORDER, 5, levels(5, 5)),
                InventoryEvent::StockReserved { product_id: other, order_id: ORDER, quantity: 1, levels: levels(3, 1) },
            ])
        );
    }

    #[test]
    fn an_order_with_one_line_short_holds_nothing_and_names_that_line() {
        let other = Uuid::from_u128(0x07e5);
        let first = StockItem::default().apply_all(&[added(1, 5, levels(5, 0))]);
        let second = StockItem::default();
        let lines = [
            LineToReserve { product_id: PRODUCT, quantity: 5, stock: &first },
            LineToReserve { product_id: other, quantity: 1, stock: &second },
            LineToReserve { product_id: PRODUCT, quantity: 9, stock: &first },
        ];
        assert_eq!(
            reserve_order(ORDER, &lines, 0),
            OrderReservation::Failed(InventoryEvent::StockReservationFailed {
                order_id: ORDER,
                product_id: other,
                requested: 1,
                available: 0,
            })
        );
    }

    #[test]
    fn a_reservation_remembers_its_decision() {
        let lines = vec![ReservedLine { product_id: PRODUCT, quantity: 2 }];
        let reserved_for_order = InventoryEvent::StockReservedForOrder {
            order_id: ORDER,
            user_id: Uuid::from_u128(1),
            lines: lines.clone(),
            total: contracts::values::Money::eur(100),
            payment_method: contracts::values::PaymentMethod::Wallet,
        };
        assert_eq!(Reservation::default().reserved_lines(), &[]);
        let reservation = Reservation::default().apply(&reserved_for_order);
        assert_eq!(reservation.reserved_lines(), &lines[..]);
        let failed =
            InventoryEvent::StockReservationFailed { order_id: ORDER, product_id: PRODUCT, requested: 2, available: 1 };
        assert_eq!(Reservation::default().apply(&failed), Reservation::Failed);
    }

    #[test]
    fn the_state_survives_a_snapshot() {
        let state = StockItem::default().apply_all(&[
            added(1, 10, levels(10, 0)),
            reserved(ORDER, 4, levels(10, 4)),
            low_stock(6, 8),
        ]);
        let json = serde_json::to_string(&state).expect("the state serializes");
        let restored: StockItem = serde_json::from_str(&json).expect("the state deserializes");
        assert_eq!(restored, state);
    }

    fn any_command() -> impl Strategy<Value = StockCommand> {
        // Few ids, so that repeats, releases and commits of real reservations are common.
        let id = || (0u128..6).prop_map(Uuid::from_u128);
        prop_oneof![
            (id(), 1u32..=40).prop_map(|(restock_id, units)| StockCommand::Restock {
                product_id: PRODUCT,
                restock_id,
                quantity: quantity(units),
            }),
            (id(), 1u32..=40, 0u64..=20)
                .prop_map(|(order_id, units, threshold)| { reserve_alerting_under(order_id, units, threshold) }),
            id().prop_map(|order_id| StockCommand::Release { product_id: PRODUCT, order_id }),
            id().prop_map(|order_id| StockCommand::Commit { product_id: PRODUCT, order_id }),
            (id(), 1u64..=40).prop_map(|(order_id, units)| give_back(order_id, units)),
        ]
    }

    proptest! {
        /// SPEC §2: stock is never oversold, whatever the commands and their order.
        #[test]
        fn stock_is_never_oversold(commands in proptest::collection::vec(any_command(), 0..80)) {
            let mut state = StockItem::default();
            let (mut total_added, mut total_committed) = (0u64, 0u64);
            for command in &commands {
                let before = state.clone();
                let Ok(events) = state.decide(command) else {
                    continue;
                };
                for event in &events {
                    match event {
                        InventoryEvent::StockAdded { quantity, .. } => total_added += quantity,
                        InventoryEvent::StockCommitted { quantity, .. } => total_committed += quantity,
                        _ => {}
                    }
                }
                state = state.apply_all(&events);
                let levels = state.levels();
                prop_assert!(total_committed + levels.reserved <= total_added, "oversold after {command:?}");
                prop_assert_eq!(levels.on_hand, total_added - total_committed);
                prop_assert_eq!(levels.available, levels.on_hand - levels.reserved);
                prop_assert_eq!(levels.reserved, state.held.values().sum::<u64>());
                prop_assert_eq!(state.version, before.version + events.len() as u64);
            }
        }

        /// A low-stock alert is raised only under its threshold, and never twice without
        /// the available units reaching that threshold in between.
        #[test]
        fn low_stock_alerts_once_per_crossing_whatever_the_commands(commands in proptest::collection::vec(any_command(), 0..80)) {
            let mut state = StockItem::default();
            let mut outstanding: Option<u64> = None;
            for command in &commands {
                let Ok(events) = state.decide(command) else {
                    continue;
                };
                for event in &events {
                    match *event {
                        InventoryEvent::LowStockDetected { available, threshold, .. } => {
                            prop_assert_eq!(outstanding, None, "alerted twice in one crossing by {:?}", command);
                            prop_assert!(available < threshold);
                            prop_assert_eq!(available, state.clone().apply_all(&events).levels().available);
                            outstanding = Some(threshold);
                        }
                        _ => {
                            if let Some((_, levels)) = event.levels()
                                && outstanding.is_some_and(|threshold| levels.available >= threshold)
                            {
                                outstanding = None;
                            }
                        }
                    }
                }
                state = state.apply_all(&events);
                prop_assert_eq!(state.low_stock_alerted(), outstanding.is_some());
            }
        }
    }
}
