//! The catalog's operations: commands decided by the `Product` aggregate and appended to the
//! catalog's store, queries answered from the product's stream or the listing view.
//!
//! Every reply is built the same way: the product's own fields and version from its stream,
//! and what the listing adds (stock, rating, times) once the listing has caught up with the
//! write, so that a query right after a command shows the command's effect.

use std::sync::Arc;

use chrono::Utc;
use contracts::catalog::{
    CatalogEvent, CreateProduct, DiscontinueProduct, GetProduct, GetProducts, ListProducts, Product as ProductReply,
    UpdateProduct,
};
use contracts::values::{Page, Sku};
use eventshop_core::bus::{MessageContext, Rejection, RejectionKind};
use eventshop_core::{
    Aggregate, CommandHandler, EventCodec, EventStore, ExpectedVersion, Position, StreamAppend, StreamId, Version,
};
use runtime::{LiveView, command_rejection, internal};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{Product, ProductCommand, ProductError};
use crate::listing::{Listing, ListingError};

/// The stream that claims a sku for one product: its first event wins, so two products
/// can never hold the same sku.
pub fn sku_claim_stream(sku: &Sku) -> StreamId {
    StreamId::new("sku", Uuid::new_v5(&Uuid::NAMESPACE_OID, sku.as_str().as_bytes()))
}

/// The catalog service's state: its store, the products' command handler and the listing.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn EventStore>,
    products: CommandHandler<Product>,
    listing: LiveView<Listing>,
    codec: EventCodec<CatalogEvent>,
}

impl Catalog {
    pub fn new(store: Arc<dyn EventStore>, listing: LiveView<Listing>) -> Self {
        Catalog { products: CommandHandler::new(store.clone()), store, listing, codec: EventCodec::new() }
    }

    /// Creates a product and claims its sku in one append; a retry answers the product.
    pub async fn create_product(
        self: Arc<Self>,
        request: CreateProduct,
        context: MessageContext,
    ) -> Result<ProductReply, Rejection> {
        let product_id = request.product_id;
        let loaded =
            self.products.load(product_id).await.map_err(|error| command_rejection(error, domain_rejection))?;
        let sku = request.sku.clone();
        let events = loaded.state.decide(&ProductCommand::Create(request)).map_err(domain_rejection)?;
        if events.is_empty() {
            return self.answer(&loaded.state, None).await;
        }
        let metadata = context.event_metadata();
        let encode = |event: &CatalogEvent| self.codec.encode(event, metadata).map_err(internal);
        let claim = CatalogEvent::SkuClaimed { sku: sku.clone(), product_id };
        let appends = vec![
            StreamAppend {
                stream_id: CommandHandler::<Product>::stream_id(product_id),
                expected: ExpectedVersion::NoStream,
                events: events.iter().map(encode).collect::<Result<_, _>>()?,
            },
            StreamAppend {
                stream_id: sku_claim_stream(&sku),
                expected: ExpectedVersion::NoStream,
                events: vec![encode(&claim)?],
            },
        ];
        match self.store.append_many(appends).await {
            Ok(appended) => {
                let position = appended.iter().map(|result| result.position).max();
                self.answer(&loaded.state.apply_all(&events), position).await
            }
            Err(error) if error.is_conflict() => {
                // Either a concurrent retry created this very product, or the sku is taken.
                let loaded =
                    self.products.load(product_id).await.map_err(|error| command_rejection(error, domain_rejection))?;
                if loaded.state.details.is_some() {
                    return self.answer(&loaded.state, None).await;
                }
                let message = format!("a product with sku {sku} already exists");
                Err(Rejection::new(RejectionKind::Conflict, message.clone())
                    .with_details(field_errors("sku", &message)))
            }
            Err(error) => Err(internal(error)),
        }
    }

    pub async fn update_product(
        self: Arc<Self>,
        request: UpdateProduct,
        context: MessageContext,
    ) -> Result<ProductReply, Rejection> {
        self.execute(request.product_id, ProductCommand::Update(request), context).await
    }

    pub async fn discontinue_product(
        self: Arc<Self>,
        request: DiscontinueProduct,
        context: MessageContext,
    ) -> Result<ProductReply, Rejection> {
        self.execute(request.product_id, ProductCommand::Discontinue(request), context).await
    }

    async fn execute(
        &self,
        product_id: Uuid,
        command: ProductCommand,
        context: MessageContext,
    ) -> Result<ProductReply, Rejection> {
        let executed = self
            .products
            .execute(product_id, &command, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, domain_rejection))?;
        self.answer(&executed.state, executed.position).await
    }

    /// A product read from its stream, whatever the listing has seen yet.
    pub async fn get_product(
        self: Arc<Self>,
        request: GetProduct,
        _context: MessageContext,
    ) -> Result<ProductReply, Rejection> {
        // The listing holds every product this service recorded, and a command answers only
        // once the listing shows its effect: so reading the listing reads our own writes
        // without touching the store. A product the listing has not seen yet (written by
        // another instance a moment ago) is read from its stream.
        if let Some(listed) = self.listing.read(|listing| listing.get(request.product_id)) {
            return Ok(listed);
        }
        let loaded =
            self.products.load(request.product_id).await.map_err(|error| command_rejection(error, domain_rejection))?;
        if loaded.state.details.is_none() {
            return Err(domain_rejection(ProductError::NotFound(request.product_id)));
        }
        self.answer(&loaded.state, None).await
    }

    /// The products the catalog knows among `product_ids`; unknown ids are left out. As for
    /// one product, an id the listing has not seen yet is read from its stream, so that a
    /// product another instance has just created can be ordered at once.
    pub async fn get_products(
        self: Arc<Self>,
        request: GetProducts,
        _context: MessageContext,
    ) -> Result<Vec<ProductReply>, Rejection> {
        let mut products = self.listing.read(|listing| listing.get_many(&request.product_ids));
        let missing: Vec<Uuid> = request
            .product_ids
            .iter()
            .filter(|id| !products.iter().any(|product| product.id == **id))
            .copied()
            .collect();
        for product_id in missing {
            let loaded =
                self.products.load(product_id).await.map_err(|error| command_rejection(error, domain_rejection))?;
            if loaded.state.details.is_some() {
                products.push(self.answer(&loaded.state, None).await?);
            }
        }
        Ok(products)
    }

    pub async fn list_products(
        self: Arc<Self>,
        request: ListProducts,
        _context: MessageContext,
    ) -> Result<Page<ProductReply>, Rejection> {
        self.listing.read(|listing| listing.list_products(&request)).map_err(listing_rejection)
    }

    /// The reply for `state`, once the listing shows it: after `appended_at` when this
    /// command appended, or else after the store's head if the listing is behind the stream
    /// (another instance wrote it a moment ago).
    async fn answer(&self, state: &Product, appended_at: Option<Position>) -> Result<ProductReply, Rejection> {
        let Some(details) = &state.details else {
            return Err(Rejection::new(RejectionKind::Internal, "a product without details was answered"));
        };
        match appended_at {
            Some(position) => self.listing.caught_up(position).await,
            None if self.listing.read(|listing| listing.product_version(details.id)) < state.version => {
                let head = self.store.head_position().await.map_err(internal)?;
                self.listing.caught_up(head).await;
            }
            None => {}
        }
        let listed = self.listing.read(|listing| listing.get(details.id));
        let (created_at, updated_at, available, rating, review_count) = match listed {
            Some(listed) => {
                (listed.created_at, listed.updated_at, listed.available, listed.rating, listed.review_count)
            }
            None => {
                // Only when the listing is lagging by seconds: take the times from the stream.
                let (created_at, updated_at) = self.stream_times(details.id, state.version).await?;
                (created_at, updated_at, 0, 0.0, 0)
            }
        };
        Ok(ProductReply {
            id: details.id,
            sku: details.sku.clone(),
            name: details.name.clone(),
            description: details.description.clone(),
            price: details.price,
            category: details.category.clone(),
            available,
            rating,
            review_count,
            discontinued: state.discontinued,
            created_at,
            updated_at,
            version: state.version,
        })
    }

    async fn stream_times(
        &self,
        product_id: Uuid,
        version: Version,
    ) -> Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>), Rejection> {
        let stream_id = CommandHandler::<Product>::stream_id(product_id);
        let events = self.store.read_stream(&stream_id, 0).await.map_err(internal)?;
        let created_at = events.first().map_or_else(Utc::now, |event| event.recorded_at);
        let updated_at = events
            .iter()
            .take_while(|event| event.stream_version <= version)
            .last()
            .map_or(created_at, |event| event.recorded_at);
        Ok((created_at, updated_at))
    }
}

/// `{"errors": [{"field", "message"}]}`, the detail of a rejection a field is at fault for.
fn field_errors(field: &str, message: &str) -> serde_json::Value {
    json!({ "errors": [{ "field": field, "message": message }] })
}

/// How a product's refusal reaches the caller.
pub fn domain_rejection(error: ProductError) -> Rejection {
    let kind = match error {
        ProductError::NotFound(_) => RejectionKind::NotFound,
        ProductError::Discontinued(_) => RejectionKind::Conflict,
        ProductError::VersionMismatch { .. } => RejectionKind::PreconditionFailed,
    };
    Rejection::new(kind, error.to_string())
}

fn listing_rejection(error: ListingError) -> Rejection {
    let message = error.to_string();
    Rejection::new(RejectionKind::Invalid, message.clone()).with_details(field_errors(error.field(), &message))
}
