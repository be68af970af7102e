//! The listing shoppers browse: every product with its stock and rating, in memory, with
//! the indexes that answer `GET /api/products` without scanning the catalogue.
//!
//! It is a [`View`] of the catalog's own store: the product streams, and the `listing-<id>`
//! streams where the catalog records what inventory and reviews told it. So every
//! catalog instance holds the whole listing, and a command reads its own write by waiting
//! for the view to pass the position it appended at.
//!
//! Sorting is keyset pagination over ordered indexes: one `BTreeSet` of sort keys per sort,
//! each key ending with the product id so that no two keys tie. A cursor is the last key of
//! a page, so the next page starts right after it however the catalogue changed meanwhile.
//!
//! Filters: an inverted index (word → products, in a `BTreeMap` so that a prefix is one
//! range) and a category index find the few products a selective search can match, which
//! are then sorted; a filter that many products pass is applied while walking the sort
//! index instead. On 10,000 products (release build) a page takes about 5 µs unfiltered,
//! 20 µs for a two-word search and 70 µs for one category of 500.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use contracts::catalog::{CatalogEvent, ListProducts, Product, ProductSort};
use contracts::values::{Category, Description, Money, Page, PageRequest, ProductName, Sku};
use eventshop_core::{EventCodec, Position, RecordedEvent, Version};
use runtime::View;
use uuid::Uuid;

/// When the most selective part of a filter (a search word's prefix, or the category)
/// leaves at least one in N of the listed products, a page is found by walking the sort
/// index and skipping the others (about `limit × N` steps); below that, by sorting just
/// the products that part leaves.
const WALK_WHEN_ONE_IN: usize = 8;

/// How a page is found. Both ways give the same page; tests force each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), expect(dead_code, reason = "only tests force a plan"))]
enum Plan {
    /// Whichever [`WALK_WHEN_ONE_IN`] says is cheaper.
    Cheapest,
    WalkIndex,
    SortMatches,
}

/// Each search word costs a walk of the word index; a search needs only a few.
const MAX_QUERY_WORDS: usize = 32;

/// A product as the listing knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedProduct {
    pub id: Uuid,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Money,
    pub category: Category,
    pub discontinued: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The version of the product's own stream last applied.
    pub version: Version,
    /// Where `ProductCreated` stands in the store: the `newest` sort.
    pub created_position: Position,
    /// The words of name and description, sorted, each once: what search matches.
    words: Vec<String>,
}

/// What reviews said of a product.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rating {
    pub rating: f64,
    pub review_count: u64,
}

/// A request for a page that the listing cannot answer; each names its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error("limit must be between 1 and {}", PageRequest::MAX_LIMIT)]
    Limit,
    #[error("the cursor is not one this listing gave for this sort")]
    Cursor,
    #[error("min_price must not be greater than max_price")]
    PriceRange,
    #[error("a search may have at most {MAX_QUERY_WORDS} words")]
    Query,
}

impl ListingError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            ListingError::Limit => "limit",
            ListingError::Cursor => "cursor",
            ListingError::PriceRange => "min_price",
            ListingError::Query => "query",
        }
    }
}

/// A position in one sort order: ascending order of keys is the order shown. `value` is
/// the sort's own criterion turned so that smaller comes first; `id` breaks ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct SortKey {
    value: i128,
    id: Uuid,
}

impl SortKey {
    fn of(sort: ProductSort, product: &ListedProduct, rating: Rating) -> SortKey {
        let value = match sort {
            ProductSort::Newest => -i128::from(product.created_position.0),
            ProductSort::PriceAsc => i128::from(product.price.amount),
            ProductSort::PriceDesc => -i128::from(product.price.amount),
            // Best rated first, then the most reviewed. The listing keeps ratings finite
            // and non-negative, and such floats' bit patterns (below 2^63) order like the
            // numbers they stand for; the count fills the low 64 bits.
            ProductSort::Rating => -((i128::from(rating.rating.to_bits()) << 64) | i128::from(rating.review_count)),
        };
        SortKey { value, id: product.id }
    }
}

/// Cursors are `base64url(sort tag ‖ value as 16 bytes big-endian ‖ id as 16 bytes)`:
/// opaque to callers, and tied to the sort they were given for.
mod cursor {
    use super::*;

    const LENGTH: usize = 1 + 16 + 16;

    fn tag(sort: ProductSort) -> u8 {
        match sort {
            ProductSort::Newest => 1,
            ProductSort::PriceAsc => 2,
            ProductSort::PriceDesc => 3,
            ProductSort::Rating => 4,
        }
    }

    pub(super) fn encode(sort: ProductSort, key: SortKey) -> String {
        let mut bytes = Vec::with_capacity(LENGTH);
        bytes.push(tag(sort));
        bytes.extend_from_slice(&key.value.to_be_bytes());
        bytes.extend_from_slice(key.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(super) fn decode(sort: ProductSort, cursor: &str) -> Result<SortKey, ListingError> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| ListingError::Cursor)?;
        if bytes.len() != LENGTH || bytes[0] != tag(sort) {
            return Err(ListingError::Cursor);
        }
        let value = <[u8; 16]>::try_from(&bytes[1..17]).map_err(|_| ListingError::Cursor)?;
        let id = Uuid::from_slice(&bytes[17..]).map_err(|_| ListingError::Cursor)?;
        Ok(SortKey { value: i128::from_be_bytes(value), id })
    }
}

/// The words of a text as search sees them, split on anything that is not a letter or
/// digit. Callers lower-case the text first, the products' and the query's alike.
pub fn search_words(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split(|character: char| !character.is_alphanumeric()).filter(|word| !word.is_empty())
}

fn product_words(name: &ProductName, description: &Description) -> Vec<String> {
    let name = name.as_str().to_lowercase();
    let description = description.as_str().to_lowercase();
    let words: BTreeSet<&str> = search_words(&name).chain(search_words(&description)).collect();
    words.into_iter().map(str::to_owned).collect()
}

/// One ordered index per sort, of the listed (not discontinued) products.
#[derive(Debug, Default)]
struct SortIndexes {
    newest: BTreeSet<SortKey>,
    price_ascending: BTreeSet<SortKey>,
    price_descending: BTreeSet<SortKey>,
    rating: BTreeSet<SortKey>,
}

impl SortIndexes {
    const SORTS: [ProductSort; 4] =
        [ProductSort::Newest, ProductSort::PriceAsc, ProductSort::PriceDesc, ProductSort::Rating];

    fn index(&self, sort: ProductSort) -> &BTreeSet<SortKey> {
        match sort {
            ProductSort::Newest => &self.newest,
            ProductSort::PriceAsc => &self.price_ascending,
            ProductSort::PriceDesc => &self.price_descending,
            ProductSort::Rating => &self.rating,
        }
    }

    fn index_mut(&mut self, sort: ProductSort) -> &mut BTreeSet<SortKey> {
        match sort {
            ProductSort::Newest => &mut self.newest,
            ProductSort::PriceAsc => &mut self.price_ascending,
            ProductSort::PriceDesc => &mut self.price_descending,
            ProductSort::Rating => &mut self.rating,
        }
    }
}

/// The listing view. See the module documentation.
#[derive(Debug, Default)]
pub struct Listing {
    codec: EventCodec<CatalogEvent>,
    /// Every product ever created, discontinued ones too (carts still ask for them).
    products: HashMap<Uuid, ListedProduct>,
    /// Kept apart from `products`: inventory may report a product before the listing has
    /// seen it created.
    available: HashMap<Uuid, u64>,
    ratings: HashMap<Uuid, Rating>,
    indexes: SortIndexes,
    /// Inverted index of listed products: word → the products that have it. A `BTreeMap`,
    /// so that the words starting with a prefix are one range.
    words: BTreeMap<String, HashSet<Uuid>>,
    categories: HashMap<Category, HashSet<Uuid>>,
}

impl View for Listing {
    fn apply(&mut self, event: &RecordedEvent) {
        if event.event_type == "SkuClaimed" {
            return;
        }
        let decoded = match self.codec.decode(event) {
            Ok(decoded) => decoded,
            Err(error) => {
                // A view cannot refuse history; an event it cannot read is left out, loudly.
                tracing::error!(event_id = %event.event_id, %error, "listing skips an event it cannot decode");
                return;
            }
        };
        self.apply_event(event, decoded);
    }
}

impl Listing {
    fn apply_event(&mut self, recorded: &RecordedEvent, event: CatalogEvent) {
        match event {
            CatalogEvent::ProductCreated { product_id, sku, name, description, price, category } => {
                self.unlist(product_id);
                self.products.insert(
                    product_id,
                    ListedProduct {
                        id: product_id,
                        sku,
                        price,
                        category,
                        discontinued: false,
                        created_at: recorded.recorded_at,
                        updated_at: recorded.recorded_at,
                        version: recorded.stream_version,
                        created_position: recorded.position,
                        words: product_words(&name, &description),
                        name,
                        description,
                    },
                );
                self.list(product_id);
            }
            CatalogEvent::ProductUpdated { product_id, name, description, category } => {
                self.change(product_id, recorded, |product| {
                    product.words = product_words(&name, &description);
                    product.name = name;
                    product.description = description;
                    product.category = category;
                });
            }
            CatalogEvent::PriceChanged { product_id, price } => {
                self.change(product_id, recorded, |product| product.price = price);
            }
            CatalogEvent::ProductDiscontinued { product_id } => {
                self.change(product_id, recorded, |product| product.discontinued = true);
            }
            CatalogEvent::AvailabilityChanged { product_id, available } => {
                self.available.insert(product_id, available);
            }
            CatalogEvent::RatingChanged { product_id, rating, review_count } => {
                self.unlist(product_id);
                // Sort keys need a total order: anything but a finite, non-negative mean is
                // no rating at all.
                let rating = if rating.is_finite() && rating > 0.0 { rating } else { 0.0 };
                self.ratings.insert(product_id, Rating { rating, review_count });
                self.list(product_id);
            }
            CatalogEvent::SkuClaimed { .. } => {}
        }
    }

    /// Changes a product of the product stream `recorded` belongs to, keeping the indexes right.
    fn change(&mut self, product_id: Uuid, recorded: &RecordedEvent, change: impl FnOnce(&mut ListedProduct)) {
        self.unlist(product_id);
        if let Some(product) = self.products.get_mut(&product_id) {
            change(product);
            product.updated_at = recorded.recorded_at;
            product.version = recorded.stream_version;
        }
        self.list(product_id);
    }

    fn rating_of(&self, product_id: Uuid) -> Rating {
        self.ratings.get(&product_id).copied().unwrap_or_default()
    }

    /// Adds a product to every index, unless it is discontinued.
    fn list(&mut self, product_id: Uuid) {
        let Some(product) = self.products.get(&product_id) else { return };
        if product.discontinued {
            return;
        }
        let rating = self.rating_of(product_id);
        for sort in SortIndexes::SORTS {
            self.indexes.index_mut(sort).insert(SortKey::of(sort, product, rating));
        }
        for word in &product.words {
            self.words.entry(word.clone()).or_default().insert(product_id);
        }
        self.categories.entry(product.category.clone()).or_default().insert(product_id);
    }

    /// Takes a product out of every index, under the keys its current values give.
    fn unlist(&mut self, product_id: Uuid) {
        let Some(product) = self.products.get(&product_id) else { return };
        if product.discontinued {
            return;
        }
        let rating = self.rating_of(product_id);
        for sort in SortIndexes::SORTS {
            self.indexes.index_mut(sort).remove(&SortKey::of(sort, product, rating));
        }
        for word in &product.words {
            if let Some(ids) = self.words.get_mut(word) {
                ids.remove(&product_id);
                if ids.is_empty() {
                    self.words.remove(word);
                }
            }
        }
        if let Some(ids) = self.categories.get_mut(&product.category) {
            ids.remove(&product_id);
            if ids.is_empty() {
                self.categories.remove(&product.category);
            }
        }
    }

    /// A product as the published language shows it, discontinued or not.
    pub fn get(&self, product_id: Uuid) -> Option<Product> {
        self.products.get(&product_id).map(|product| self.to_product(product))
    }

    /// The products asked for that exist, in the order asked, each once.
    pub fn get_many(&self, product_ids: &[Uuid]) -> Vec<Product> {
        let mut seen = HashSet::with_capacity(product_ids.len());
        product_ids.iter().filter(|id| seen.insert(**id)).filter_map(|id| self.get(*id)).collect()
    }

    /// The version of a product's stream the listing has applied; 0 when it has not seen it.
    pub fn product_version(&self, product_id: Uuid) -> Version {
        self.products.get(&product_id).map_or(0, |product| product.version)
    }

    /// How many products are listed (not discontinued).
    pub fn listed_count(&self) -> usize {
        self.indexes.newest.len()
    }

    fn to_product(&self, product: &ListedProduct) -> Product {
        let rating = self.rating_of(product.id);
        Product {
            id: product.id,
            sku: product.sku.clone(),
            name: product.name.clone(),
            description: product.description.clone(),
            price: product.price,
            category: product.category.clone(),
            available: self.available.get(&product.id).copied().unwrap_or(0),
            rating: rating.rating,
            review_count: rating.review_count,
            discontinued: product.discontinued,
            created_at: product.created_at,
            updated_at: product.updated_at,
            version: product.version,
        }
    }

    /// One page of the listing.
    pub fn list_products(&self, request: &ListProducts) -> Result<Page<Product>, ListingError> {
        self.list_with_plan(request, Plan::Cheapest)
    }

    fn list_with_plan(&self, request: &ListProducts, plan: Plan) -> Result<Page<Product>, ListingError> {
        let limit = request.page.limit;
        if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
            return Err(ListingError::Limit);
        }
        if let (Some(min), Some(max)) = (request.min_price, request.max_price)
            && min > max
        {
            return Err(ListingError::PriceRange);
        }
        let sort = request.sort;
        let after = request.page.cursor.as_deref().map(|text| cursor::decode(sort, text)).transpose()?;
        let query = request.query.as_deref().unwrap_or_default().to_lowercase();
        let filter = Filter {
            words: search_words(&query).collect(),
            category: request.category.as_ref(),
            min_price: request.min_price,
            max_price: request.max_price,
        };
        if filter.words.len() > MAX_QUERY_WORDS {
            return Err(ListingError::Query);
        }
        let wanted = limit as usize + 1;

        let mut keys: Vec<SortKey> = match self.seed(&filter, plan) {
            // Few products can match: sort just those.
            Some(seed) => {
                let mut keys: Vec<SortKey> = seed
                    .iter()
                    .filter_map(|id| self.products.get(id))
                    .filter(|product| !product.discontinued && filter.matches(product))
                    .map(|product| SortKey::of(sort, product, self.rating_of(product.id)))
                    .filter(|key| after.is_none_or(|after| *key > after))
                    .collect();
                keys.sort_unstable();
                keys.truncate(wanted);
                keys
            }
            // Many match (or no filter at all): the next ones in the index come soon.
            None => self
                .index_after(sort, after)
                .filter(|key| self.products.get(&key.id).is_some_and(|product| filter.matches(product)))
                .take(wanted)
                .copied()
                .collect(),
        };

        let next_cursor = if keys.len() > limit as usize {
            keys.truncate(limit as usize);
            keys.last().map(|last| cursor::encode(sort, *last))
        } else {
            None
        };
        let items = keys.iter().filter_map(|key| self.products.get(&key.id)).map(|p| self.to_product(p)).collect();
        Ok(Page { items, next_cursor })
    }

    fn index_after(&self, sort: ProductSort, after: Option<SortKey>) -> impl Iterator<Item = &SortKey> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.indexes.index(sort).range((start, Bound::Unbounded))
    }

    /// The products to sort when the filter is selective: those of its most selective part
    /// (a search word or the category), a superset of the matches. `None` means walk the
    /// sort index instead.
    fn seed(&self, filter: &Filter<'_>, plan: Plan) -> Option<Cow<'_, HashSet<Uuid>>> {
        enum Part<'a> {
            Word(&'a str),
            Category(&'a Category),
        }
        // Summing the sets a prefix covers is cheap and bounds the size of their union.
        let word_parts = filter.words.iter().map(|word| {
            let size = self.word_prefix_range(word).map(|(_, ids)| ids.len()).sum::<usize>();
            (size, Part::Word(word))
        });
        let category_part = filter
            .category
            .map(|category| (self.categories.get(category).map_or(0, HashSet::len), Part::Category(category)));
        let (size, part) = word_parts.chain(category_part).min_by_key(|(size, _)| *size)?;
        let selective = match plan {
            Plan::Cheapest => size.saturating_mul(WALK_WHEN_ONE_IN) < self.listed_count(),
            Plan::WalkIndex => false,
            Plan::SortMatches => true,
        };
        if !selective {
            return None;
        }
        Some(match part {
            Part::Word(word) => {
                Cow::Owned(self.word_prefix_range(word).flat_map(|(_, ids)| ids.iter().copied()).collect())
            }
            // Borrowed: no copy of a category's set.
            Part::Category(category) => {
                self.categories.get(category).map_or_else(|| Cow::Owned(HashSet::new()), Cow::Borrowed)
            }
        })
    }

    /// The word index's entries for the words that start with `prefix`.
    fn word_prefix_range<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a HashSet<Uuid>)> {
        self.words
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(word, _)| word.starts_with(prefix))
    }
}

/// What a page's products must match.
struct Filter<'a> {
    /// Each must be the prefix of a word of the product.
    words: BTreeSet<&'a str>,
    category: Option<&'a Category>,
    min_price: Option<i64>,
    max_price: Option<i64>,
}

impl Filter<'_> {
    fn matches(&self, product: &ListedProduct) -> bool {
        self.category.is_none_or(|category| *category == product.category)
            && self.min_price.is_none_or(|min| product.price.amount >= min)
            && self.max_price.is_none_or(|max| product.price.amount <= max)
            && self.words.iter().all(|prefix| product.has_word_starting_with(prefix))
    }
}

impl ListedProduct {
    fn has_word_starting_with(&self, prefix: &str) -> bool {
        // The words are sorted, so those starting with `prefix` begin at the first word
        // not below it.
        let first = self.words.partition_point(|word| word.as_str() < prefix);
        self.words.get(first).is_some_and(|word| word.starts_with(prefix))
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use eventshop_core::{Metadata, StreamId};
    use proptest::prelude::*;

    /// Feeds typed events to a listing as a store would record them, one position each.
    #[derive(Default)]
    struct Feed {
        listing: Listing,
        position: u64,
        versions: HashMap<StreamId, Version>,
    }

    fn text<T: TryFrom<String>>(value: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        T::try_from(value.to_owned()).expect("valid test value")
    }

    fn product_id(number: u128) -> Uuid {
        Uuid::from_u128(number)
    }

    impl Feed {
        fn record(&mut self, stream_id: StreamId, event: CatalogEvent) -> &mut Self {
            self.position += 1;
            let version = self.versions.entry(stream_id.clone()).or_default();
            *version += 1;
            let new =
                EventCodec::<CatalogEvent>::new().encode(&event, Metadata::new_transaction(None)).expect("encodes");
            let recorded = RecordedEvent {
                event_id: new.event_id,
                stream_id,
                stream_version: *version,
                position: Position(self.position),
                event_type: new.event_type,
                schema_version: new.schema_version,
                recorded_at: DateTime::from_timestamp(1_700_000_000 + self.position as i64, 0).expect("time"),
                correlation_id: new.metadata.correlation_id,
                causation_id: new.metadata.causation_id,
                acting_user: None,
                payload: new.payload,
            };
            self.listing.apply(&recorded);
            self
        }

        fn product(&mut self, number: u128, name: &str, description: &str, price: i64, category: &str) -> &mut Self {
            self.record(
                StreamId::new("product", product_id(number)),
                CatalogEvent::ProductCreated {
                    product_id: product_id(number),
                    sku: text(&format!("SKU-{number}")),
                    name: text(name),
                    description: text(description),
                    price: Money::eur(price),
                    category: text(category),
                },
            )
        }

        fn on_product(&mut self, number: u128, event: CatalogEvent) -> &mut Self {
            self.record(StreamId::new("product", product_id(number)), event)
        }

        fn on_listing(&mut self, number: u128, event: CatalogEvent) -> &mut Self {
            self.record(StreamId::new("listing", product_id(number)), event)
        }

        fn rated(&mut self, number: u128, rating: f64, review_count: u64) -> &mut Self {
            self.on_listing(
                number,
                CatalogEvent::RatingChanged { product_id: product_id(number), rating, review_count },
            )
        }
    }

    fn request(sort: ProductSort, limit: u32) -> ListProducts {
        ListProducts { sort, page: PageRequest { limit, cursor: None }, ..ListProducts::default() }
    }

    fn ids(page: &Page<Product>) -> Vec<u128> {
        page.items.iter().map(|product| product.id.as_u128()).collect()
    }

    fn list(listing: &Listing, request: &ListProducts) -> Page<Product> {
        listing.list_products(request).expect("a valid request")
    }

    fn shop() -> Feed {
        let mut feed = Feed::default();
        feed.product(1, "Blue Shoes", "Running shoes, light", 5000, "shoes")
            .product(2, "Red Hat", "A woollen hat", 1500, "hats")
            .product(3, "Green Shoelaces", "Blue-green laces for shoes", 300, "accessories")
            .product(4, "Trail Boots", "Waterproof leather", 5000, "shoes");
        feed
    }

    #[test]
    fn each_sort_orders_the_listing_and_breaks_ties_by_id() {
        let mut feed = shop();
        feed.rated(2, 4.5, 2).rated(3, 4.5, 10).rated(4, 3.0, 1);
        let listing = &feed.listing;
        assert_eq!(ids(&list(listing, &request(ProductSort::Newest, 10))), [4, 3, 2, 1]);
        assert_eq!(ids(&list(listing, &request(ProductSort::PriceAsc, 10))), [3, 2, 1, 4]);
        assert_eq!(ids(&list(listing, &request(ProductSort::PriceDesc, 10))), [1, 4, 2, 3]);
        assert_eq!(ids(&list(listing, &request(ProductSort::Rating, 10))), [3, 2, 4, 1], "then the most reviewed");
    }

    #[test]
    fn the_rating_sort_breaks_ties_by_review_count_then_id_across_pages() {
        let mut feed = shop();
        feed.rated(1, 4.5, 3).rated(2, 4.5, 3).rated(3, 4.5, 7).rated(4, 5.0, 1);
        let listing = &feed.listing;
        let first = list(listing, &request(ProductSort::Rating, 2));
        assert_eq!(ids(&first), [4, 3]);
        let next = ListProducts {
            page: PageRequest { limit: 2, cursor: first.next_cursor.clone() },
            ..request(ProductSort::Rating, 2)
        };
        assert_eq!(ids(&list(listing, &next)), [1, 2]);
    }

    #[test]
    fn changes_move_products_in_the_indexes_and_discontinued_ones_leave() {
        let mut feed = shop();
        feed.on_product(2, CatalogEvent::PriceChanged { product_id: product_id(2), price: Money::eur(9000) })
            .on_product(4, CatalogEvent::ProductDiscontinued { product_id: product_id(4) })
            .rated(1, 5.0, 1)
            .rated(1, 1.0, 2)
            .rated(3, f64::NAN, 1);
        let listing = &feed.listing;
        assert_eq!(ids(&list(listing, &request(ProductSort::PriceDesc, 10))), [2, 1, 3]);
        assert_eq!(ids(&list(listing, &request(ProductSort::Rating, 10))), [1, 2, 3]);
        assert_eq!(listing.listed_count(), 3);
        let discontinued = listing.get(product_id(4)).expect("still readable");
        assert!(discontinued.discontinued);
        assert_eq!(discontinued.version, 2);
        assert_eq!(listing.get(product_id(3)).expect("listed").rating, 0.0, "a NaN rating is no rating");
    }

    #[test]
    fn renaming_reindexes_the_words() {
        let mut feed = shop();
        feed.on_product(
            2,
            CatalogEvent::ProductUpdated {
                product_id: product_id(2),
                name: text("Straw Sunhat"),
                description: text("For summer"),
                category: text("summer"),
            },
        );
        let listing = &feed.listing;
        let search = |query: &str| {
            let request = ListProducts { query: Some(query.to_owned()), ..request(ProductSort::PriceAsc, 10) };
            ids(&list(listing, &request))
        };
        assert!(search("woollen").is_empty());
        assert_eq!(search("sunh"), [2]);
        let hats = ListProducts { category: Some(text("hats")), ..request(ProductSort::Newest, 10) };
        assert!(list(listing, &hats).items.is_empty());
        let summer = ListProducts { category: Some(text("Summer")), ..request(ProductSort::Newest, 10) };
        assert_eq!(ids(&list(listing, &summer)), [2]);
    }

    #[test]
    fn search_matches_every_word_as_a_prefix_of_a_word_in_name_or_description() {
        let feed = shop();
        let search = |query: &str| {
            let request = ListProducts { query: Some(query.to_owned()), ..request(ProductSort::PriceAsc, 10) };
            ids(&list(&feed.listing, &request))
        };
        assert_eq!(search("blu shoe"), [3, 1]);
        assert_eq!(search("BLUE"), [3, 1], "case does not matter");
        assert_eq!(search("green-laces"), [3], "split on punctuation like the text");
        assert_eq!(search("leather boot"), [4]);
        assert!(search("shoes boots").is_empty(), "every word must match");
        assert_eq!(search("waterproof"), [4], "descriptions count");
        assert!(search("hoes").is_empty(), "a prefix, not a substring");
        assert!(search("zebra").is_empty());
        assert_eq!(search("  ,; ").len(), 4, "no words, no filter");
    }

    #[test]
    fn filters_combine_with_search_and_prices_are_inclusive() {
        let feed = shop();
        let listing = &feed.listing;
        let shoes = ListProducts { category: Some(text("shoes")), ..request(ProductSort::Newest, 10) };
        assert_eq!(ids(&list(listing, &shoes)), [4, 1]);
        let running_shoes = ListProducts { query: Some("run".into()), ..shoes.clone() };
        assert_eq!(ids(&list(listing, &running_shoes)), [1]);
        let band = ListProducts { min_price: Some(300), max_price: Some(1500), ..request(ProductSort::PriceAsc, 10) };
        assert_eq!(ids(&list(listing, &band)), [3, 2]);
        let exact = ListProducts { min_price: Some(5000), max_price: Some(5000), ..shoes };
        assert_eq!(ids(&list(listing, &exact)), [4, 1]);
    }

    #[test]
    fn pages_follow_their_cursor_and_the_last_has_none() {
        let feed = shop();
        let listing = &feed.listing;
        let first = list(listing, &request(ProductSort::PriceAsc, 3));
        assert_eq!(ids(&first), [3, 2, 1]);
        let next = ListProducts {
            page: PageRequest { limit: 3, cursor: first.next_cursor.clone() },
            ..request(ProductSort::PriceAsc, 3)
        };
        let second = list(listing, &next);
        assert_eq!(ids(&second), [4]);
        assert_eq!(second.next_cursor, None);
        let exactly_all = list(listing, &request(ProductSort::PriceAsc, 4));
        assert_eq!(exactly_all.next_cursor, None, "no empty last page");
    }

    #[test]
    fn bad_requests_name_their_field() {
        let feed = shop();
        let listing = &feed.listing;
        let first = list(listing, &request(ProductSort::PriceAsc, 1));
        let refused = |request: ListProducts| listing.list_products(&request).expect_err("refused").field();
        let with_cursor = |sort, cursor: &str| ListProducts {
            sort,
            page: PageRequest { limit: 5, cursor: Some(cursor.to_owned()) },
            ..ListProducts::default()
        };
        let cursor = first.next_cursor.expect("more pages");
        assert_eq!(refused(with_cursor(ProductSort::Newest, &cursor)), "cursor", "a cursor of another sort");
        assert_eq!(refused(with_cursor(ProductSort::PriceAsc, "not a cursor!")), "cursor");
        assert_eq!(refused(with_cursor(ProductSort::PriceAsc, &cursor[..cursor.len() - 2])), "cursor");
        assert_eq!(refused(request(ProductSort::Newest, 0)), "limit");
        assert_eq!(refused(request(ProductSort::Newest, 101)), "limit");
        let inverted = ListProducts { min_price: Some(10), max_price: Some(9), ..ListProducts::default() };
        assert_eq!(refused(inverted), "min_price");
        let long = ListProducts { query: Some("word ".repeat(40)), ..ListProducts::default() };
        assert!(listing.list_products(&long).is_ok(), "the same word many times is one word");
        let words: Vec<String> = (0..40).map(|number| format!("w{number}")).collect();
        let long = ListProducts { query: Some(words.join(" ")), ..ListProducts::default() };
        assert_eq!(refused(long), "query");
    }

    #[test]
    fn stock_and_ratings_show_on_products_whenever_they_arrived() {
        let mut feed = Feed::default();
        feed.on_listing(1, CatalogEvent::AvailabilityChanged { product_id: product_id(1), available: 7 })
            .product(1, "Lamp", "", 2000, "home")
            .rated(1, 4.0, 3);
        let product = feed.listing.get(product_id(1)).expect("known");
        assert_eq!((product.available, product.rating, product.review_count, product.version), (7, 4.0, 3, 1));
        assert_eq!(feed.listing.get_many(&[product_id(9), product_id(1), product_id(1)]).len(), 1);
    }

    /// The listing's order, computed the slow, obvious way.
    fn expected_order(listing: &Listing, request: &ListProducts) -> Vec<Uuid> {
        let query = request.query.clone().unwrap_or_default().to_lowercase();
        let query_words: Vec<&str> = search_words(&query).collect();
        let mut products: Vec<Product> = listing
            .products
            .values()
            .filter(|product| !product.discontinued)
            .filter(|product| request.category.as_ref().is_none_or(|category| *category == product.category))
            .filter(|product| request.min_price.is_none_or(|min| product.price.amount >= min))
            .filter(|product| request.max_price.is_none_or(|max| product.price.amount <= max))
            .filter(|product| {
                let words = product_words(&product.name, &product.description);
                query_words.iter().all(|query| words.iter().any(|word| word.starts_with(query)))
            })
            .map(|product| listing.to_product(product))
            .collect();
        let created = |product: &Product| listing.products[&product.id].created_position;
        products.sort_by(|a, b| match request.sort {
            ProductSort::Newest => created(b).cmp(&created(a)),
            ProductSort::PriceAsc => a.price.amount.cmp(&b.price.amount).then(a.id.cmp(&b.id)),
            ProductSort::PriceDesc => b.price.amount.cmp(&a.price.amount).then(a.id.cmp(&b.id)),
            ProductSort::Rating => {
                b.rating.total_cmp(&a.rating).then(b.review_count.cmp(&a.review_count)).then(a.id.cmp(&b.id))
            }
        });
        products.into_iter().map(|product| product.id).collect()
    }

    const NAMES: [&str; 6] = ["blue shoe", "red hat", "green lamp", "blue lamp", "red shoe", "hat stand"];
    const SORTS: [ProductSort; 4] = SortIndexes::SORTS;

    proptest! {
        #[test]
        fn paging_yields_every_listed_product_once_in_order(
            products in prop::collection::vec((0..6_usize, 0..5_i64, 0..3_u8, prop::option::of(0..10_u8), any::<bool>()), 0..60),
            sort in 0..4_usize,
            limit in 1..12_u32,
            query in prop::option::of(prop::sample::select(vec!["", "blu", "lamp", "red h", "x"])),
            category in prop::option::of(0..3_u8),
            min_price in prop::option::of(0..3_i64),
            plan in prop::sample::select(vec![Plan::Cheapest, Plan::WalkIndex, Plan::SortMatches]),
        ) {
            let mut feed = Feed::default();
            for (number, (name, price, category, rating, discontinued)) in products.iter().enumerate() {
                let number = number as u128 * 7919 % 1000;
                feed.product(number, NAMES[*name], "", price * 100, &format!("c{category}"));
                if let Some(rating) = rating {
                    feed.rated(number, f64::from(*rating) / 2.0, u64::from(*rating % 3));
                }
                if *discontinued {
                    feed.on_product(number, CatalogEvent::ProductDiscontinued { product_id: product_id(number) });
                }
            }
            let mut request = ListProducts {
                query: query.map(str::to_owned),
                category: category.map(|category| text(&format!("C{category}"))),
                min_price: min_price.map(|price| price * 100),
                sort: SORTS[sort],
                page: PageRequest { limit, cursor: None },
                ..ListProducts::default()
            };
            let expected = expected_order(&feed.listing, &request);
            let mut seen = Vec::new();
            // Bounded, so that a cursor that does not advance fails the test instead of hanging it.
            for _ in 0..=products.len() + 1 {
                let page = feed.listing.list_with_plan(&request, plan).expect("valid");
                prop_assert!(page.items.len() <= limit as usize);
                seen.extend(page.items.iter().map(|product| product.id));
                match page.next_cursor {
                    Some(cursor) => {
                        prop_assert_eq!(page.items.len(), limit as usize, "only the last page is short");
                        request.page.cursor = Some(cursor);
                    }
                    None => {
                        request.page.cursor = None;
                        break;
                    }
                }
            }
            prop_assert!(request.page.cursor.is_none(), "paging did not end");
            prop_assert_eq!(seen, expected);
        }
    }
}
