//! The recommendations view: co-purchase counts, units sold and each user's purchases,
//! folded from recommendations' own store (what it learned, see [`crate::learned`]),
//! replayed at start and followed live.
//!
//! - *Bought together* with A: the products that shared a counted order with A, scored by
//!   how many orders did.
//! - *Popular in a category*: the products of the category (as the catalog says now) by
//!   units sold in counted orders.
//! - *For you*: bought together with what the user bought, summed over their purchases;
//!   then popular in the categories they bought in; then popular in the whole shop. Never
//!   what they bought.
//!
//! Ties are broken by product id, so that the same events always give the same answer.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

use contracts::recommendations::{Recommendation, RecommendationReason};
use contracts::values::{Category, Money, ProductName};
use eventshop_core::{EventCodec, RecordedEvent};
use runtime::View;
use uuid::Uuid;

use crate::learned::{COUNTED_CATEGORY, CountedLine, LearnedEvent, PRODUCT_CATEGORY};

/// A product as the catalog last described it.
#[derive(Debug, Clone)]
struct ProductInfo {
    name: ProductName,
    category: Category,
    price: Money,
    withdrawn: bool,
}

/// A counted order: its buyer and its products, each once with its units.
#[derive(Debug, Clone)]
struct CountedOrder {
    user_id: Uuid,
    lines: Vec<CountedLine>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct RecommendationsView {
    codec: EventCodec<LearnedEvent>,
    products: HashMap<Uuid, ProductInfo>,
    orders: HashMap<Uuid, CountedOrder>,
    /// A → B → how many counted orders held both.
    together: HashMap<Uuid, HashMap<Uuid, u64>>,
    units_sold: HashMap<Uuid, u64>,
    /// Products with units sold, best selling first: (units, id) ordered by units
    /// descending, then id.
    popularity: BTreeSet<(Reverse<u64>, Uuid)>,
    /// User → product → how many of the user's counted orders held it.
    bought: HashMap<Uuid, HashMap<Uuid, u64>>,
}

impl View for RecommendationsView {
    fn apply(&mut self, recorded: &RecordedEvent) {
        let category = recorded.stream_id.category();
        if category != COUNTED_CATEGORY && category != PRODUCT_CATEGORY {
            return;
        }
        match self.codec.decode(recorded) {
            Ok(event) => self.apply_event(event),
            Err(error) => {
                // A view cannot refuse history; an event it cannot read is left out, loudly.
                tracing::error!(event_id = %recorded.event_id, %error, "recommendations view skips an event");
            }
        }
    }
}

/// Whether an order is counted in or taken back out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    In,
    Out,
}

fn change(value: &mut u64, by: u64, count: Count) {
    *value = match count {
        Count::In => value.saturating_add(by),
        Count::Out => value.saturating_sub(by),
    };
}

impl RecommendationsView {
    fn apply_event(&mut self, event: LearnedEvent) {
        match event {
            LearnedEvent::OrderCounted { order_id, user_id, lines } => {
                if self.orders.contains_key(&order_id) {
                    return;
                }
                // Orders merge lines of one product; merged here too, should a line repeat.
                let mut merged: Vec<CountedLine> = Vec::with_capacity(lines.len());
                for line in lines {
                    match merged.iter_mut().find(|merged| merged.product_id == line.product_id) {
                        Some(merged) => merged.quantity = merged.quantity.saturating_add(line.quantity),
                        None => merged.push(line),
                    }
                }
                let order = CountedOrder { user_id, lines: merged };
                self.count(&order, Count::In);
                self.orders.insert(order_id, order);
            }
            LearnedEvent::OrderUncounted { order_id, .. } => {
                if let Some(order) = self.orders.remove(&order_id) {
                    self.count(&order, Count::Out);
                }
            }
            LearnedEvent::ProductListed { product_id, name, category, price } => {
                self.products.insert(product_id, ProductInfo { name, category, price, withdrawn: false });
            }
            LearnedEvent::ProductDescribed { product_id, name, category } => {
                if let Some(product) = self.products.get_mut(&product_id) {
                    product.name = name;
                    product.category = category;
                }
            }
            LearnedEvent::ProductRepriced { product_id, price } => {
                if let Some(product) = self.products.get_mut(&product_id) {
                    product.price = price;
                }
            }
            LearnedEvent::ProductWithdrawn { product_id } => {
                if let Some(product) = self.products.get_mut(&product_id) {
                    product.withdrawn = true;
                }
            }
        }
    }

    fn count(&mut self, order: &CountedOrder, count: Count) {
        for line in &order.lines {
            let units = self.units_sold.entry(line.product_id).or_default();
            self.popularity.remove(&(Reverse(*units), line.product_id));
            change(units, u64::from(line.quantity), count);
            if *units > 0 {
                self.popularity.insert((Reverse(*units), line.product_id));
            } else {
                self.units_sold.remove(&line.product_id);
            }
            let bought = self.bought.entry(order.user_id).or_default();
            let times = bought.entry(line.product_id).or_default();
            change(times, 1, count);
            if *times == 0 {
                bought.remove(&line.product_id);
            }
            for other in &order.lines {
                if other.product_id == line.product_id {
                    continue;
                }
                let pairs = self.together.entry(line.product_id).or_default();
                let together = pairs.entry(other.product_id).or_default();
                change(together, 1, count);
                if *together == 0 {
                    pairs.remove(&other.product_id);
                }
            }
        }
    }

    /// Whether the catalog has told recommendations of the product.
    pub fn knows_product(&self, product_id: Uuid) -> bool {
        self.products.contains_key(&product_id)
    }

    /// What goes with `product_id`: bought together with it, then popular in its category.
    pub fn bought_together(&self, product_id: Uuid, limit: usize) -> Vec<Recommendation> {
        let mut answer = Answer::new(self, limit, [product_id]);
        if let Some(pairs) = self.together.get(&product_id) {
            answer.extend(ranked(pairs.iter().map(|(id, count)| (*id, *count))), RecommendationReason::BoughtTogether);
        }
        if let Some(product) = self.products.get(&product_id) {
            let categories = HashSet::from([&product.category]);
            answer.extend(self.popular_in(&categories), RecommendationReason::PopularInCategory);
        }
        answer.items
    }

    /// For `user_id`: see the module documentation.
    pub fn for_you(&self, user_id: Uuid, limit: usize) -> Vec<Recommendation> {
        let empty = HashMap::new();
        let bought = self.bought.get(&user_id).unwrap_or(&empty);
        let mut answer = Answer::new(self, limit, bought.keys().copied());
        let mut scores: HashMap<Uuid, u64> = HashMap::new();
        for product_id in bought.keys() {
            for (other, count) in self.together.get(product_id).into_iter().flatten() {
                change(scores.entry(*other).or_default(), *count, Count::In);
            }
        }
        answer.extend(ranked(scores), RecommendationReason::BoughtTogether);
        let categories: HashSet<&Category> = bought
            .keys()
            .filter_map(|product_id| self.products.get(product_id))
            .map(|product| &product.category)
            .collect();
        answer.extend(self.popular_in(&categories), RecommendationReason::PopularInCategory);
        let everything = self.popularity.iter().map(|(Reverse(units), product_id)| (*product_id, *units));
        answer.extend(everything, RecommendationReason::Popular);
        answer.items
    }

    /// The products of `categories` by units sold, best first.
    fn popular_in<'a>(&'a self, categories: &'a HashSet<&Category>) -> impl Iterator<Item = (Uuid, u64)> + 'a {
        self.popularity
            .iter()
            .filter(|(_, product_id)| {
                self.products.get(product_id).is_some_and(|product| categories.contains(&product.category))
            })
            .map(|(Reverse(units), product_id)| (*product_id, *units))
    }

    fn recommendation(&self, product_id: Uuid, score: u64, reason: RecommendationReason) -> Recommendation {
        let product = self.products.get(&product_id);
        Recommendation {
            product_id,
            name: product.map(|product| product.name.to_string()),
            price: product.map(|product| product.price),
            category: product.map(|product| product.category.to_string()),
            score,
            reason,
        }
    }

    fn is_withdrawn(&self, product_id: Uuid) -> bool {
        self.products.get(&product_id).is_some_and(|product| product.withdrawn)
    }
}

/// Scores best first, ties by id.
fn ranked(scores: impl IntoIterator<Item = (Uuid, u64)>) -> Vec<(Uuid, u64)> {
    let mut ranked: Vec<(Uuid, u64)> = scores.into_iter().filter(|(_, score)| *score > 0).collect();
    ranked.sort_unstable_by_key(|(product_id, score)| (Reverse(*score), *product_id));
    ranked
}

/// An answer being filled: each product once, none excluded or withdrawn, up to a limit.
struct Answer<'a> {
    view: &'a RecommendationsView,
    limit: usize,
    seen: HashSet<Uuid>,
    items: Vec<Recommendation>,
}

impl<'a> Answer<'a> {
    fn new(view: &'a RecommendationsView, limit: usize, excluded: impl IntoIterator<Item = Uuid>) -> Self {
        Answer { view, limit, seen: excluded.into_iter().collect(), items: Vec::new() }
    }

    fn extend(&mut self, candidates: impl IntoIterator<Item = (Uuid, u64)>, reason: RecommendationReason) {
        for (product_id, score) in candidates {
            if self.items.len() >= self.limit {
                return;
            }
            if self.view.is_withdrawn(product_id) || !self.seen.insert(product_id) {
                continue;
            }
            self.items.push(self.view.recommendation(product_id, score, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventshop_core::{DomainEvent, Metadata, Position, StreamId};

    use crate::learned::{counted_stream, product_stream};

    /// Feeds learned events to a view as a store would record them, one position each.
    #[derive(Default)]
    struct Feed {
        view: RecommendationsView,
        position: u64,
    }

    fn id(number: u128) -> Uuid {
        Uuid::from_u128(number)
    }

    impl Feed {
        fn record<E: DomainEvent>(&mut self, stream_id: StreamId, event: E) -> &mut Self {
            self.position += 1;
            let new = EventCodec::<E>::new().encode(&event, Metadata::new_transaction(None)).expect("encodes");
            let recorded = RecordedEvent {
                event_id: new.event_id,
                stream_id,
                stream_version: 1,
                position: Position(self.position),
                event_type: new.event_type,
                schema_version: new.schema_version,
                recorded_at: chrono::Utc::now(),
                correlation_id: new.metadata.correlation_id,
                causation_id: new.metadata.causation_id,
                acting_user: None,
                payload: new.payload,
            };
            self.view.apply(&recorded);
            self
        }

        fn product(&mut self, number: u128, category: &str) -> &mut Self {
            let event = LearnedEvent::ProductListed {
                product_id: id(number),
                name: ProductName::try_from(format!("Product {number}")).expect("valid"),
                category: Category::try_from(category.to_owned()).expect("valid"),
                price: Money::eur(100 * number as i64),
            };
            self.record(product_stream(id(number)), event)
        }

        /// An order of `user` with (product, quantity) lines.
        fn order(&mut self, order: u128, user: u128, lines: &[(u128, u32)]) -> &mut Self {
            let lines =
                lines.iter().map(|(product, quantity)| CountedLine { product_id: id(*product), quantity: *quantity });
            let event = LearnedEvent::OrderCounted { order_id: id(order), user_id: id(user), lines: lines.collect() };
            self.record(counted_stream(id(order)), event)
        }

        fn uncount(&mut self, order: u128, user: u128) -> &mut Self {
            let event = LearnedEvent::OrderUncounted { order_id: id(order), user_id: id(user) };
            self.record(counted_stream(id(order)), event)
        }

        fn withdraw(&mut self, number: u128) -> &mut Self {
            self.record(product_stream(id(number)), LearnedEvent::ProductWithdrawn { product_id: id(number) })
        }
    }

    fn listed(items: &[Recommendation]) -> Vec<(u128, u64, RecommendationReason)> {
        items.iter().map(|item| (item.product_id.as_u128(), item.score, item.reason)).collect()
    }

    use RecommendationReason::{BoughtTogether, Popular, PopularInCategory};

    /// Products 1–4 are kitchen things, 5–6 garden things.
    fn shop() -> Feed {
        let mut feed = Feed::default();
        for (number, category) in
            [(1, "kitchen"), (2, "kitchen"), (3, "kitchen"), (4, "kitchen"), (5, "garden"), (6, "garden")]
        {
            feed.product(number, category);
        }
        feed
    }

    #[test]
    fn products_bought_together_come_first_then_the_bestsellers_of_the_category() {
        let mut feed = shop();
        feed.order(100, 50, &[(1, 1), (2, 1)])
            .order(101, 51, &[(1, 1), (2, 2), (5, 1)])
            .order(102, 52, &[(1, 1), (5, 1)])
            .order(103, 53, &[(3, 7)])
            .order(104, 53, &[(4, 1)]);

        let items = feed.view.bought_together(id(1), 10);

        assert_eq!(
            listed(&items),
            [(2, 2, BoughtTogether), (5, 2, BoughtTogether), (3, 7, PopularInCategory), (4, 1, PopularInCategory)]
        );
        assert_eq!(items[0].name.as_deref(), Some("Product 2"));
        assert_eq!(items[0].price, Some(Money::eur(200)));
        assert_eq!(items[0].category.as_deref(), Some("kitchen"));
        assert_eq!(listed(&feed.view.bought_together(id(1), 1)), [(2, 2, BoughtTogether)], "the limit holds");
        assert_eq!(listed(&feed.view.bought_together(id(6), 10)), [(5, 2, PopularInCategory)]);
    }

    #[test]
    fn cancelled_orders_stop_counting_and_withdrawn_products_are_never_recommended() {
        let mut feed = shop();
        feed.order(100, 50, &[(1, 1), (2, 1)]).order(101, 51, &[(1, 1), (3, 1)]).uncount(100, 50).uncount(100, 50);
        assert_eq!(listed(&feed.view.bought_together(id(1), 10)), [(3, 1, BoughtTogether)]);
        assert!(feed.view.for_you(id(50), 10).iter().all(|item| item.product_id != id(2) || item.reason == Popular));

        feed.withdraw(3);
        assert!(feed.view.bought_together(id(1), 10).is_empty());
        feed.order(101, 51, &[(2, 9)]);
        let items = feed.view.bought_together(id(2), 10);
        assert_eq!(listed(&items), [(1, 1, PopularInCategory)], "an order is counted once");
    }

    #[test]
    fn for_you_builds_on_what_the_user_bought_and_never_shows_it_again() {
        let mut feed = shop();
        feed.order(100, 50, &[(1, 1)])
            .order(101, 51, &[(1, 1), (2, 1)])
            .order(102, 52, &[(1, 1), (2, 1), (3, 1)])
            .order(103, 53, &[(4, 3)])
            .order(104, 54, &[(6, 9)]);

        let items = feed.view.for_you(id(50), 10);

        assert_eq!(
            listed(&items),
            [(2, 2, BoughtTogether), (3, 1, BoughtTogether), (4, 3, PopularInCategory), (6, 9, Popular)]
        );
        assert!(items.iter().all(|item| item.product_id != id(1)), "never what they bought");
        let newcomer = feed.view.for_you(id(99), 2);
        assert_eq!(listed(&newcomer), [(6, 9, Popular), (1, 3, Popular)], "a newcomer gets the bestsellers");
    }

    #[test]
    fn a_product_the_catalog_has_not_described_is_still_recommended_without_details() {
        let mut feed = Feed::default();
        feed.order(100, 50, &[(1, 1), (2, 1)]);
        let items = feed.view.bought_together(id(1), 10);
        assert_eq!(listed(&items), [(2, 1, BoughtTogether)]);
        assert_eq!((items[0].name.as_ref(), items[0].price), (None, None));
        assert!(!feed.view.knows_product(id(1)));
    }
}
