//! The published language between eventshop's services (DESIGN: "services share this and
//! nothing else").
//!
//! Each service module holds its requests (commands and queries, as
//! [`Operation`](eventshop_core::bus::Operation)s with their reply types) and the events it
//! publishes. The value types shared by all of them are in [`values`]: they parse, so a
//! request that decodes is a valid request (`Email`, `Sku`, `Quantity`, `Money`), and the
//! gateway names the bad field from the decode error's path.

pub mod admin;
pub mod cart;
pub mod catalog;
pub mod identity;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod recommendations;
pub mod reviews;
pub mod shipping;
pub mod values;

pub use values::{Currency, Money, Page, PaymentMethod, Role};

/// Declares a request's service, name and reply type.
macro_rules! operation {
    ($request:ty, $service:expr, $reply:ty) => {
        impl eventshop_core::bus::Operation for $request {
            const SERVICE: &'static str = $service;
            const NAME: &'static str = stringify!($request);
            type Reply = $reply;
        }
    };
}
pub(crate) use operation;
