//! Value types that parse: once a request has decoded, its values are valid.
//!
//! Each newtype deserializes through `TryFrom`, so a bad value fails the decode with a
//! message that says what is wrong; the gateway reports it with the field's path.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(message: impl Into<String>) -> InvalidValue {
    InvalidValue(message.into())
}

/// Declares a string newtype that trims its input and checks it with `$check`.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, InvalidValue> {
                let check: fn(&str) -> Result<String, InvalidValue> = $check;
                check(value.trim()).map($name)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn bounded(value: &str, what: &str, min: usize, max: usize) -> Result<String, InvalidValue> {
    let length = value.chars().count();
    if length < min {
        return Err(if min == 1 {
            invalid(format!("{what} must not be empty"))
        } else {
            invalid(format!("{what} must have at least {min} characters"))
        });
    }
    if length > max {
        return Err(invalid(format!("{what} must have at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(format!("{what} must not contain control characters")));
    }
    Ok(value.to_owned())
}

text_value!(
    /// An email address, lower-cased: one account per address whatever its case.
    Email,
    |value| {
        let value = bounded(value, "an email address", 3, 254)?.to_lowercase();
        match value.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !value.contains(char::is_whitespace)
                    && !domain.contains('@') =>
            {
                Ok(value)
            }
            _ => Err(invalid("not a valid email address")),
        }
    }
);

text_value!(
    /// A person's display name.
    PersonName,
    |value| bounded(value, "a name", 1, 100)
);

text_value!(
    /// A stock-keeping unit: letters, digits, `-` and `_`, upper-cased.
    Sku,
    |value| {
        let value = bounded(value, "a sku", 1, 64)?.to_uppercase();
        if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            Ok(value)
        } else {
            Err(invalid("a sku may hold only letters, digits, '-' and '_'"))
        }
    }
);

text_value!(
    /// A product's name.
    ProductName,
    |value| bounded(value, "a product name", 1, 200)
);

text_value!(
    /// A product's description; may be empty.
    Description,
    |value| bounded(value, "a description", 0, 5000)
);

text_value!(
    /// A product category, lower-cased (`shoes`, `home-garden`).
    Category,
    |value| bounded(value, "a category", 1, 64).map(|value| value.to_lowercase())
);

text_value!(
    /// One line of a postal address, a city, a postal code.
    AddressLine,
    |value| bounded(value, "an address field", 1, 200)
);

text_value!(
    /// An ISO 3166-1 alpha-2 country code, upper-cased.
    CountryCode,
    |value| {
        let value = value.to_uppercase();
        if value.len() == 2 && value.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(value)
        } else {
            Err(invalid("a country is a two-letter ISO 3166 code such as \"DE\""))
        }
    }
);

/// A password as typed. Never serialized back out in a reply, and redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Password(String);

impl Password {
    pub const MIN_LENGTH: usize = 8;

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        let length = value.chars().count();
        if length < Self::MIN_LENGTH {
            return Err(invalid(format!("a password must have at least {} characters", Self::MIN_LENGTH)));
        }
        if length > 256 {
            return Err(invalid("a password must have at most 256 characters"));
        }
        Ok(Password(value))
    }
}

impl From<Password> for String {
    fn from(value: Password) -> String {
        value.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A count of units: at least 1, at most [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1_000_000;

    pub fn new(value: u32) -> Result<Self, InvalidValue> {
        Self::try_from(i64::from(value))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = InvalidValue;
    fn try_from(value: i64) -> Result<Self, InvalidValue> {
        if value < 1 {
            return Err(invalid("a quantity must be at least 1"));
        }
        if value > i64::from(Self::MAX) {
            return Err(invalid(format!("a quantity must be at most {}", Self::MAX)));
        }
        Ok(Quantity(value as u32))
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> u32 {
        value.0
    }
}

/// The currencies the shop trades in. One for now; the type keeps the door open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Currency {
    #[default]
    #[serde(rename = "EUR")]
    Eur,
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EUR")
    }
}

/// An amount of money: integer minor units (cents) and a currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// The largest amount a single price, deposit or order may carry: 10 million in major
    /// units, far from any overflow when summed.
    pub const MAX_AMOUNT: i64 = 1_000_000_000;

    pub fn new(amount: i64, currency: Currency) -> Self {
        Money { amount, currency }
    }

    pub fn eur(amount: i64) -> Self {
        Money { amount, currency: Currency::Eur }
    }

    pub fn zero(currency: Currency) -> Self {
        Money { amount: 0, currency }
    }

    /// Money that is at least zero and at most [`Money::MAX_AMOUNT`].
    pub fn check_price(self) -> Result<Self, InvalidValue> {
        if self.amount < 0 {
            return Err(invalid("an amount must not be negative"));
        }
        if self.amount > Self::MAX_AMOUNT {
            return Err(invalid(format!("an amount must be at most {}", Self::MAX_AMOUNT)));
        }
        Ok(self)
    }

    /// Money that is above zero and at most [`Money::MAX_AMOUNT`].
    pub fn check_positive(self) -> Result<Self, InvalidValue> {
        if self.amount <= 0 {
            return Err(invalid("an amount must be greater than zero"));
        }
        self.check_price()
    }

    pub fn times(self, quantity: u32) -> Money {
        Money { amount: self.amount.saturating_mul(i64::from(quantity)), currency: self.currency }
    }
}

/// Declares a money newtype checked by one of [`Money`]'s checks.
macro_rules! money_value {
    ($(#[$doc:meta])* $name:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "Money", into = "Money")]
        pub struct $name(Money);

        impl $name {
            pub fn money(self) -> Money {
                self.0
            }
        }

        impl TryFrom<Money> for $name {
            type Error = InvalidValue;
            fn try_from(value: Money) -> Result<Self, InvalidValue> {
                value.$check().map($name)
            }
        }

        impl From<$name> for Money {
            fn from(value: $name) -> Money {
                value.0
            }
        }
    };
}

money_value!(
    /// A price: zero or more.
    Price,
    check_price
);

money_value!(
    /// An amount moved, such as a deposit: more than zero.
    PositiveAmount,
    check_positive
);

/// A token of the simulated card processor (SPEC §3). Only the processor's test tokens
/// exist; any other is refused when the request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CardToken {
    /// `tok_visa`: succeeds.
    Visa,
    /// `tok_mastercard`: succeeds.
    Mastercard,
    /// `tok_chargeDeclined`: declined.
    ChargeDeclined,
    /// `tok_insufficientFunds`: declined for insufficient funds.
    InsufficientFunds,
}

impl CardToken {
    pub fn as_str(self) -> &'static str {
        match self {
            CardToken::Visa => "tok_visa",
            CardToken::Mastercard => "tok_mastercard",
            CardToken::ChargeDeclined => "tok_chargeDeclined",
            CardToken::InsufficientFunds => "tok_insufficientFunds",
        }
    }
}

impl TryFrom<String> for CardToken {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        match value.as_str() {
            "tok_visa" => Ok(CardToken::Visa),
            "tok_mastercard" => Ok(CardToken::Mastercard),
            "tok_chargeDeclined" => Ok(CardToken::ChargeDeclined),
            "tok_insufficientFunds" => Ok(CardToken::InsufficientFunds),
            _ => Err(invalid(
                "unknown card token; the test tokens are tok_visa, tok_mastercard, tok_chargeDeclined and tok_insufficientFunds",
            )),
        }
    }
}

impl From<CardToken> for String {
    fn from(value: CardToken) -> String {
        value.as_str().to_owned()
    }
}

/// How an order is paid (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentMethod {
    /// The user's wallet.
    Wallet,
    /// The simulated card processor.
    Card { token: CardToken },
}

/// A role: what a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Customer,
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        })
    }
}

/// One page of a list, and the cursor of the next page if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// How much of a list to return, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// 1..=100.
    pub limit: u32,
    /// Opaque, from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest { limit: Self::DEFAULT_LIMIT, cursor: None }
    }
}

/// Why a list request was refused: the same two faults for every list of every service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("limit must be between 1 and {}", PageRequest::MAX_LIMIT)]
    Limit,
    #[error("the cursor is not one this list gave")]
    Cursor,
}

impl ListError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            ListError::Limit => "limit",
            ListError::Cursor => "cursor",
        }
    }
}

/// An invalid request, naming the field at fault.
impl From<ListError> for eventshop_core::bus::Rejection {
    fn from(error: ListError) -> Self {
        let message = error.to_string();
        eventshop_core::bus::Rejection::new(eventshop_core::bus::RejectionKind::Invalid, message.clone())
            .with_details(serde_json::json!({ "errors": [{ "field": error.field(), "message": message }] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        let email = Email::try_from(" Ann@Example.COM ".to_owned()).unwrap();
        assert_eq!(email.as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@.com"] {
            assert!(Email::try_from(bad.to_owned()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn quantities_are_positive_and_bounded() {
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("-3").is_err());
        assert!(serde_json::from_str::<Quantity>("1.5").is_err());
        assert!(serde_json::from_str::<Quantity>("\"3\"").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("3").unwrap().get(), 3);
        assert!(serde_json::from_str::<Quantity>("1000001").is_err());
    }

    #[test]
    fn money_has_a_currency_and_no_fraction() {
        let money: Money = serde_json::from_str(r#"{"amount": 1999, "currency": "EUR"}"#).unwrap();
        assert_eq!(money, Money::eur(1999));
        assert!(serde_json::from_str::<Money>(r#"{"amount": 19.99, "currency": "EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1, "currency": "XXX"}"#).is_err());
        assert!(Money::eur(-1).check_price().is_err());
        assert!(Money::eur(0).check_positive().is_err());
    }

    #[test]
    fn payment_methods_are_the_wallet_or_a_known_card_token() {
        let wallet: PaymentMethod = serde_json::from_str(r#"{"type": "wallet"}"#).unwrap();
        assert_eq!(wallet, PaymentMethod::Wallet);
        let card: PaymentMethod = serde_json::from_str(r#"{"type": "card", "token": "tok_visa"}"#).unwrap();
        assert_eq!(card, PaymentMethod::Card { token: CardToken::Visa });
        assert!(serde_json::from_str::<PaymentMethod>(r#"{"type": "card", "token": "tok_other"}"#).is_err());
        assert!(serde_json::from_str::<PaymentMethod>(r#"{"type": "cash"}"#).is_err());
        assert_eq!(serde_json::to_string(&card).unwrap(), r#"{"type":"card","token":"tok_visa"}"#);
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let password = Password::try_from("correct horse".to_owned()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
