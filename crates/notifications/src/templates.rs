//! The texts of notifications: a subject and a body per kind, plain text with `{name}`
//! placeholders.
//!
//! A small substitution of our own rather than a template engine: the texts are constants
//! of this crate, and all they need is values put in. `{{` and `}}` stand for literal
//! braces. A placeholder without a value is an error, never an empty gap, and a test
//! renders every template with the values its kind is given. The rendered text is what
//! `NotificationSent` records, so a later change of wording never rewrites history.

use std::collections::BTreeMap;

use contracts::Money;
use contracts::notifications::NotificationKind;
use contracts::orders::{OrderLine, RejectionReason};

/// A kind's subject and body, before values are put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub subject: &'static str,
    pub body: &'static str,
}

/// The template of each kind.
pub fn template(kind: NotificationKind) -> Template {
    match kind {
        NotificationKind::OrderConfirmed => Template {
            subject: "Your order {order_id} is confirmed",
            body: "Thank you for your order.\n\n\
                   Order {order_id} is confirmed: {items} for {total}.\n\
                   We will write again when it is on its way.\n",
        },
        NotificationKind::OrderRejected => Template {
            subject: "Your order {order_id} could not be completed",
            body: "We are sorry: order {order_id} was rejected because {reason}.\n\n\
                   Nothing is charged for it; any amount already taken is refunded.\n",
        },
        NotificationKind::OrderCancelled => Template {
            subject: "Your order {order_id} is cancelled",
            body: "Order {order_id} is cancelled.\n\nAny payment for it is refunded.\n",
        },
        NotificationKind::ShipmentDispatched => Template {
            subject: "Your order {order_id} is on its way",
            body: "Order {order_id} was handed to {carrier}.\n\nTracking number: {tracking_number}\n",
        },
        NotificationKind::ShipmentDelivered => Template {
            subject: "Your order {order_id} was delivered",
            body: "Order {order_id} was delivered. We hope you enjoy it.\n",
        },
        NotificationKind::LowStock => Template {
            subject: "Low stock: product {product_id}",
            body: "Only {available} units of product {product_id} are available, fewer than the threshold of \
                   {threshold}.\n\nRestock it with POST /api/inventory/{product_id}/restock.\n",
        },
    }
}

/// The values a template is rendered with, by placeholder name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(BTreeMap<&'static str, String>);

impl Values {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &'static str, value: impl ToString) -> Self {
        self.0.insert(name, value.to_string());
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Why a template could not be rendered: a fault of the template or its caller, not of
/// any input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("no value for the placeholder {{{0}}}")]
    MissingValue(String),
    #[error("a `{{` opens no placeholder (write `{{{{` for a brace)")]
    Unclosed,
    #[error("a `}}` closes no placeholder (write `}}}}` for a brace)")]
    UnopenedBrace,
}

/// A subject and body with their values put in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Renders `kind`'s template with `values`.
pub fn render_kind(kind: NotificationKind, values: &Values) -> Result<Rendered, TemplateError> {
    let template = template(kind);
    Ok(Rendered { subject: render(template.subject, values)?, body: render(template.body, values)? })
}

/// Puts `values` into the `{name}` placeholders of `text`.
pub fn render(text: &str, values: &Values) -> Result<String, TemplateError> {
    let mut rendered = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(index) = rest.find(['{', '}']) {
        rendered.push_str(&rest[..index]);
        let tail = &rest[index..];
        if let Some(after) = tail.strip_prefix("{{") {
            rendered.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            rendered.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err(TemplateError::UnopenedBrace);
        } else {
            let end = tail.find('}').ok_or(TemplateError::Unclosed)?;
            let name = &tail[1..end];
            let value = values.get(name).ok_or_else(|| TemplateError::MissingValue(name.to_owned()))?;
            rendered.push_str(value);
            rest = &tail[end + 1..];
        }
    }
    rendered.push_str(rest);
    Ok(rendered)
}

/// Money as a person reads it: `20.00 EUR`.
pub fn money(money: Money) -> String {
    let sign = if money.amount < 0 { "-" } else { "" };
    let minor = money.amount.unsigned_abs();
    format!("{sign}{}.{:02} {}", minor / 100, minor % 100, money.currency)
}

/// How many units an order's lines hold: `1 item`, `3 items`.
pub fn items(lines: &[OrderLine]) -> String {
    let units: u64 = lines.iter().map(|line| u64::from(line.quantity)).sum();
    if units == 1 { "1 item".to_owned() } else { format!("{units} items") }
}

/// The total of an order's lines, at the prices they were placed at.
pub fn total(lines: &[OrderLine]) -> Money {
    let currency = lines.first().map(|line| line.unit_price.currency).unwrap_or_default();
    let amount = lines.iter().map(|line| line.unit_price.times(line.quantity).amount).fold(0i64, i64::saturating_add);
    Money::new(amount, currency)
}

/// Why an order was rejected, as the end of "was rejected because …".
pub fn reason(reason: RejectionReason) -> &'static str {
    match reason {
        RejectionReason::OutOfStock => "some of its items are out of stock",
        RejectionReason::PaymentDeclined => "the payment was declined",
        RejectionReason::Timeout => "the payment did not complete in time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values each kind is rendered with by the reactions.
    fn values_of(kind: NotificationKind) -> Values {
        let order = Values::new().with("order_id", "0de5");
        match kind {
            NotificationKind::OrderConfirmed => order.with("items", "2 items").with("total", "20.00 EUR"),
            NotificationKind::OrderRejected => order.with("reason", reason(RejectionReason::OutOfStock)),
            NotificationKind::OrderCancelled | NotificationKind::ShipmentDelivered => order,
            NotificationKind::ShipmentDispatched => order.with("carrier", "DHL").with("tracking_number", "JD01"),
            NotificationKind::LowStock => {
                Values::new().with("product_id", "5eed").with("available", 4).with("threshold", 5)
            }
        }
    }

    #[test]
    fn every_template_renders_with_the_values_of_its_kind() {
        let kinds = [
            NotificationKind::OrderConfirmed,
            NotificationKind::OrderRejected,
            NotificationKind::OrderCancelled,
            NotificationKind::ShipmentDispatched,
            NotificationKind::ShipmentDelivered,
            NotificationKind::LowStock,
        ];
        for kind in kinds {
            let rendered = render_kind(kind, &values_of(kind)).unwrap_or_else(|error| panic!("{kind:?}: {error}"));
            assert!(!rendered.subject.contains(['{', '}', '\n']), "{kind:?}: {}", rendered.subject);
            assert!(!rendered.body.contains(['{', '}']), "{kind:?}: {}", rendered.body);
        }
        let dispatched =
            render_kind(NotificationKind::ShipmentDispatched, &values_of(NotificationKind::ShipmentDispatched))
                .expect("renders");
        assert_eq!(dispatched.subject, "Your order 0de5 is on its way");
        assert_eq!(dispatched.body, "Order 0de5 was handed to DHL.\n\nTracking number: JD01\n");
    }

    #[test]
    fn placeholders_are_replaced_and_double_braces_are_braces() {
        let values = Values::new().with("name", "Ada").with("n", 3);
        assert_eq!(render("Hello {name}, {n} {{new}} }}", &values).expect("renders"), "Hello Ada, 3 {new} }");
        assert_eq!(render("no placeholders", &values).expect("renders"), "no placeholders");
        assert_eq!(render("{name}{name}", &values).expect("renders"), "AdaAda");
        // A value is put in as it is, never rendered again.
        let braces = Values::new().with("name", "{n}");
        assert_eq!(render("Hi {name}", &braces).expect("renders"), "Hi {n}");
    }

    #[test]
    fn a_placeholder_without_a_value_or_a_stray_brace_is_an_error() {
        assert_eq!(render("Hi {who}", &Values::new()), Err(TemplateError::MissingValue("who".to_owned())));
        assert_eq!(render("Hi {who", &Values::new()), Err(TemplateError::Unclosed));
        assert_eq!(render("Hi }", &Values::new()), Err(TemplateError::UnopenedBrace));
    }

    #[test]
    fn money_and_items_read_as_a_person_writes_them() {
        assert_eq!(money(Money::eur(2_000)), "20.00 EUR");
        assert_eq!(money(Money::eur(5)), "0.05 EUR");
        assert_eq!(money(Money::eur(-150)), "-1.50 EUR");
        let line = |quantity, amount| OrderLine {
            product_id: uuid::Uuid::nil(),
            name: "Mug".to_owned(),
            quantity,
            unit_price: Money::eur(amount),
        };
        assert_eq!(items(&[line(1, 100)]), "1 item");
        assert_eq!(items(&[line(2, 100), line(1, 250)]), "3 items");
        assert_eq!(total(&[line(2, 100), line(1, 250)]), Money::eur(450));
        assert_eq!(total(&[]), Money::eur(0));
    }
}
