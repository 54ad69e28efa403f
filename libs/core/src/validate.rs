//! Turns raw request fields into domain values, collecting every violation so one
//! INVALID_ARGUMENT names all the bad fields at once.

use tonic_types::FieldViolation;
use uuid::Uuid;

use crate::ServiceError;

/// Longest free-text field accepted anywhere (names, addresses, reasons).
pub const MAX_TEXT_LEN: usize = 512;
/// Longest identifier-like string accepted (SKUs, order ids, references, request ids).
pub const MAX_KEY_LEN: usize = 128;
/// Largest quantity one request may move (a trillion units): far above any real movement,
/// and low enough that no sum of a request's lines can overflow.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;
/// Highest unit cost accepted, in micros (a million currency units per unit): with
/// [`MAX_QUANTITY`] units, a value still fits comfortably in a numeric sum.
pub const MAX_UNIT_COST_MICROS: i64 = 1_000_000_000_000;
/// Longest piece of a bad value echoed back in an error. Echoing a whole 10,000-character
/// value would make the error's trailers larger than many clients accept (16 KiB is usual),
/// and they would see RESOURCE_EXHAUSTED instead of the INVALID_ARGUMENT we meant.
pub const MAX_ECHO_CHARS: usize = 40;

/// A bad value as it may appear in an error message: quoted, and cut to [`MAX_ECHO_CHARS`]
/// characters with the full length named when longer.
pub fn excerpt(value: &str) -> String {
    let len = value.chars().count();
    if len <= MAX_ECHO_CHARS {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX_ECHO_CHARS).collect();
        format!("{head:?}... ({len} characters)")
    }
}

/// A request's one required UUID (a Get's id): INVALID_ARGUMENT naming `field` when it is
/// missing or malformed.
pub fn uuid_field(field: &str, value: &str) -> Result<Uuid, ServiceError> {
    let mut v = Violations::new();
    let id = v.uuid(field, value);
    v.finish()?;
    id.ok_or_else(|| ServiceError::invalid(field, "is required"))
}

/// A request's one optional UUID (a list filter): empty is absent.
pub fn optional_uuid_field(field: &str, value: &str) -> Result<Option<Uuid>, ServiceError> {
    if value.is_empty() {
        Ok(None)
    } else {
        uuid_field(field, value).map(Some)
    }
}

/// Collects field violations; each parser returns `None` on a bad field and records why.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing was recorded, otherwise one INVALID_ARGUMENT with every violation.
    pub fn finish(self) -> Result<(), ServiceError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(self.0))
        }
    }

    /// A required UUID.
    pub fn uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        if value.is_empty() {
            self.add(field, "is required");
            return None;
        }
        match Uuid::parse_str(value) {
            Ok(id) => Some(id),
            Err(_) => {
                self.add(field, format!("must be a UUID, got {}", excerpt(value)));
                None
            }
        }
    }

    /// An optional UUID: empty means absent.
    pub fn optional_uuid(&mut self, field: &str, value: &str) -> Option<Option<Uuid>> {
        if value.is_empty() {
            Some(None)
        } else {
            self.uuid(field, value).map(Some)
        }
    }

    /// A required request id (AIP-155): 1 to 128 printable characters, usually a UUID.
    pub fn request_id(&mut self, field: &str, value: &str) -> Option<String> {
        self.key(field, value)
    }

    /// A required identifier-like string: 1 to [`MAX_KEY_LEN`] characters, no control
    /// characters, no surrounding whitespace.
    pub fn key(&mut self, field: &str, value: &str) -> Option<String> {
        self.text_in(field, value, 1, MAX_KEY_LEN)
            .and_then(|v| self.no_outer_space(field, v))
    }

    /// An optional identifier-like string: empty means absent.
    pub fn optional_key(&mut self, field: &str, value: &str) -> Option<Option<String>> {
        if value.is_empty() {
            Some(None)
        } else {
            self.key(field, value).map(Some)
        }
    }

    /// A required free-text field: 1 to [`MAX_TEXT_LEN`] characters.
    pub fn text(&mut self, field: &str, value: &str) -> Option<String> {
        self.text_in(field, value, 1, MAX_TEXT_LEN)
    }

    /// An optional free-text field: at most [`MAX_TEXT_LEN`] characters, may be empty.
    pub fn optional_text(&mut self, field: &str, value: &str) -> Option<String> {
        self.text_in(field, value, 0, MAX_TEXT_LEN)
    }

    fn text_in(&mut self, field: &str, value: &str, min: usize, max: usize) -> Option<String> {
        let len = value.chars().count();
        if len < min {
            self.add(field, "is required");
            None
        } else if len > max {
            self.add(
                field,
                format!("must be at most {max} characters, got {len}"),
            );
            None
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
            None
        } else {
            Some(value.to_owned())
        }
    }

    fn no_outer_space(&mut self, field: &str, value: String) -> Option<String> {
        if value.trim() != value {
            self.add(field, "must not start or end with whitespace");
            None
        } else {
            Some(value)
        }
    }

    /// A quantity of at least one unit and at most [`MAX_QUANTITY`].
    pub fn positive(&mut self, field: &str, value: i64) -> Option<i64> {
        if value <= 0 {
            self.add(field, format!("must be positive, got {value}"));
            None
        } else if value > MAX_QUANTITY {
            self.add(
                field,
                format!("must be at most {MAX_QUANTITY}, got {value}"),
            );
            None
        } else {
            Some(value)
        }
    }

    /// A quantity that may be zero (meaning "none" or "all", as the field says), bounded like
    /// [`Violations::positive`].
    pub fn quantity_or_zero(&mut self, field: &str, value: i64) -> Option<i64> {
        if value == 0 {
            Some(0)
        } else {
            self.positive(field, value)
        }
    }

    /// A unit cost in micros: zero up to [`MAX_UNIT_COST_MICROS`].
    pub fn unit_cost_micros(&mut self, field: &str, value: i64) -> Option<i64> {
        self.in_range(field, value, 0, MAX_UNIT_COST_MICROS)
    }

    /// A count that may be zero but never negative.
    pub fn non_negative(&mut self, field: &str, value: i64) -> Option<i64> {
        if value >= 0 {
            Some(value)
        } else {
            self.add(field, format!("must not be negative, got {value}"));
            None
        }
    }

    /// A number within an inclusive range.
    pub fn in_range<T>(&mut self, field: &str, value: T, min: T, max: T) -> Option<T>
    where
        T: PartialOrd + std::fmt::Display + Copy,
    {
        if value >= min && value <= max {
            Some(value)
        } else {
            self.add(
                field,
                format!("must be between {min} and {max}, got {value}"),
            );
            None
        }
    }

    /// A protobuf enum value: known and not the zero UNSPECIFIED value.
    pub fn known_enum<E>(&mut self, field: &str, value: i32) -> Option<E>
    where
        E: TryFrom<i32> + PartialEq + Default,
    {
        match E::try_from(value) {
            Ok(e) if e != E::default() => Some(e),
            Ok(_) => {
                self.add(field, "is required");
                None
            }
            Err(_) => {
                self.add(field, format!("unknown value {value}"));
                None
            }
        }
    }

    /// A repeated field's length: 1 to `max` items (`noun` names them in the message).
    pub fn item_count(&mut self, field: &str, len: usize, max: usize, noun: &str) {
        if len == 0 || len > max {
            self.add(field, format!("must hold 1 to {max} {noun}, got {len}"));
        }
    }

    /// A present sub-message.
    pub fn present<'a, T>(&mut self, field: &str, value: Option<&'a T>) -> Option<&'a T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_bad_field_into_one_error() {
        let mut v = Violations::new();
        assert_eq!(v.uuid("product_id", "nope"), None);
        assert_eq!(v.positive("quantity", 0), None);
        assert_eq!(v.key("order_id", " padded"), None);
        let Err(ServiceError::InvalidArgument(violations)) = v.finish() else {
            panic!("expected invalid argument");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["product_id", "quantity", "order_id"]);
    }

    #[test]
    fn accepts_good_values() {
        let mut v = Violations::new();
        let id = Uuid::now_v7();
        assert_eq!(v.uuid("id", &id.to_string()), Some(id));
        assert_eq!(v.positive("q", 3), Some(3));
        assert_eq!(v.optional_key("k", ""), Some(None));
        assert_eq!(v.text("name", "Widget"), Some("Widget".to_owned()));
        assert!(v.finish().is_ok());
    }

    #[test]
    fn rejects_oversize_and_control_characters() {
        let mut v = Violations::new();
        assert_eq!(v.text("name", &"x".repeat(MAX_TEXT_LEN + 1)), None);
        assert_eq!(v.text("name", "a\u{0}b"), None);
        assert_eq!(v.key("sku", ""), None);
        assert_eq!(v.positive("quantity", i64::MAX), None);
        assert!(v.finish().is_err());
    }

    #[test]
    fn a_long_bad_value_is_echoed_only_as_a_short_prefix() {
        let mut v = Violations::new();
        assert_eq!(v.uuid("product_id", &"x".repeat(10_000)), None);
        let Err(ServiceError::InvalidArgument(violations)) = v.finish() else {
            panic!("expected invalid argument");
        };
        let description = &violations[0].description;
        assert!(description.len() < 100, "{description}");
        assert!(description.contains("10000 characters"), "{description}");
    }

    #[test]
    fn every_quantity_has_one_upper_bound() {
        let mut v = Violations::new();
        assert_eq!(v.quantity_or_zero("quantity", 0), Some(0));
        assert_eq!(
            v.quantity_or_zero("quantity", MAX_QUANTITY),
            Some(MAX_QUANTITY)
        );
        assert_eq!(v.quantity_or_zero("quantity", MAX_QUANTITY + 1), None);
        assert_eq!(v.quantity_or_zero("quantity", -1), None);
        assert_eq!(v.unit_cost_micros("unit_cost_micros", i64::MAX), None);
        assert_eq!(
            v.unit_cost_micros("unit_cost_micros", 4_500_000),
            Some(4_500_000)
        );
    }
}
