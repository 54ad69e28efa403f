//! ANSI X12 850 (purchase order), version 004010: one purchase order per interchange.
//!
//! ```text
//! ISA ... control number (9 digits, fixed width) ... ~
//! GS*PO*sender*receiver*CCYYMMDD*HHMM*control*X*004010~
//! ST*850*control~
//! BEG*00*SA*po number**CCYYMMDD~
//! DTM*002*CCYYMMDD~                       requested delivery
//! N1*ST*warehouse name*92*warehouse id~   ship to
//! PO1*1*quantity*EA*unit price**BP*product id*VP*supplier part~
//! CTT*lines*sum of quantities~
//! SE*segments from ST to SE*control~
//! GE*1*control~
//! IEA*1*control~
//! ```
//!
//! Separators: `*` between elements, `~` after each segment, `>` between components (ISA16),
//! `U` as the 4010 standards identifier (ISA11). Values are written as given but for those
//! characters, control characters and anything beyond ASCII, which are replaced by a space
//! (a warehouse named "A*B" must not end a field, an "é" must not widen the fixed-width ISA).
//! A value the 850 requires that is empty once cleaned is refused, not sent blank.
//! The same control number is used for ISA13/IEA02, GS06/GE02 and ST02/SE02: it is drawn once
//! per purchase order from a sequence, so a resend repeats it and a new PO never reuses one.

use chrono::{DateTime, NaiveDate, Utc};

pub const ELEMENT: char = '*';
pub const SEGMENT: char = '~';
pub const COMPONENT: char = '>';

/// Largest interchange control number (ISA13 is 9 digits).
pub const MAX_CONTROL_NUMBER: i64 = 999_999_999;

/// Who sends and who receives, as the trading partners agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partners {
    /// ISA05/ISA06: qualifier (e.g. ZZ, 01) and id (at most 15 characters).
    pub sender_qualifier: String,
    pub sender_id: String,
    pub receiver_qualifier: String,
    pub receiver_id: String,
    /// ISA15: P (production) or T (test).
    pub production: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub quantity: i64,
    /// Unit of measure code (EA, CS, ..).
    pub unit: String,
    pub unit_price_micros: i64,
    /// Our product id (BP: buyer's part number).
    pub buyer_part: String,
    /// The supplier's part number (VP), when known.
    pub vendor_part: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOrder {
    /// BEG03: at most 22 characters.
    pub po_number: String,
    pub order_date: NaiveDate,
    pub requested_delivery: Option<NaiveDate>,
    pub ship_to_name: String,
    pub ship_to_id: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X12Error {
    #[error("{field} must be 1 to {max} characters, got {got}")]
    Length {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error("control number {0} is outside 1..=999999999")]
    ControlNumber(i64),
    #[error("a purchase order needs at least one line")]
    NoLines,
    #[error("line {line}: {what}")]
    Line { line: usize, what: &'static str },
}

/// Largest quantity PO102 carries (15 digits).
const MAX_QUANTITY: i64 = 999_999_999_999_999;

/// Writes the interchange for `po` with control number `control`, created at `at`.
pub fn write_850(
    partners: &Partners,
    po: &PurchaseOrder,
    control: i64,
    at: DateTime<Utc>,
) -> Result<String, X12Error> {
    if !(1..=MAX_CONTROL_NUMBER).contains(&control) {
        return Err(X12Error::ControlNumber(control));
    }
    let sender_id = check_length("sender_id", &partners.sender_id, 15)?;
    let receiver_id = check_length("receiver_id", &partners.receiver_id, 15)?;
    let sender_qualifier = check_length("sender_qualifier", &partners.sender_qualifier, 2)?;
    let receiver_qualifier = check_length("receiver_qualifier", &partners.receiver_qualifier, 2)?;
    let po_number = check_length("po_number", &po.po_number, 22)?;
    let ship_to_id = clean(&po.ship_to_id);
    if ship_to_id.is_empty() {
        return Err(X12Error::Length {
            field: "ship_to_id",
            max: 80,
            got: 0,
        });
    }
    if po.lines.is_empty() {
        return Err(X12Error::NoLines);
    }
    for (i, line) in po.lines.iter().enumerate() {
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(X12Error::Line {
                line: i + 1,
                what: "quantity must be 1 to 999999999999999",
            });
        }
        if clean(&line.buyer_part).is_empty() {
            return Err(X12Error::Line {
                line: i + 1,
                what: "the buyer's part number is empty",
            });
        }
        if line.unit_price_micros < 0 {
            return Err(X12Error::Line {
                line: i + 1,
                what: "unit price must not be negative",
            });
        }
        // PO104 holds 17 digits (the decimal point not counted).
        if decimal(line.unit_price_micros)
            .chars()
            .filter(char::is_ascii_digit)
            .count()
            > 17
        {
            return Err(X12Error::Line {
                line: i + 1,
                what: "unit price has more than 17 digits",
            });
        }
    }

    let date8 = at.format("%Y%m%d").to_string();
    let date6 = at.format("%y%m%d").to_string();
    let time = at.format("%H%M").to_string();
    let mut out = String::new();
    let mut segment = |elements: &[&str]| {
        out.push_str(&elements.join(&ELEMENT.to_string()));
        out.push(SEGMENT);
    };

    let isa_control = format!("{control:09}");
    let group_control = control.to_string();
    let set_control = format!("{control:04}");
    segment(&[
        "ISA",
        "00",
        &pad(""),
        "00",
        &pad(""),
        &pad_to(&sender_qualifier, 2),
        &pad_to(&sender_id, 15),
        &pad_to(&receiver_qualifier, 2),
        &pad_to(&receiver_id, 15),
        &date6,
        &time,
        "U",
        "00401",
        &isa_control,
        "0",
        if partners.production { "P" } else { "T" },
        &COMPONENT.to_string(),
    ]);
    segment(&[
        "GS",
        "PO",
        &sender_id,
        &receiver_id,
        &date8,
        &time,
        &group_control,
        "X",
        "004010",
    ]);

    // The transaction set, counted for SE01.
    let mut set: Vec<Vec<String>> = Vec::new();
    set.push(vec!["ST".into(), "850".into(), set_control.clone()]);
    set.push(vec![
        "BEG".into(),
        "00".into(),
        "SA".into(),
        po_number,
        String::new(),
        po.order_date.format("%Y%m%d").to_string(),
    ]);
    if let Some(delivery) = po.requested_delivery {
        set.push(vec![
            "DTM".into(),
            "002".into(),
            delivery.format("%Y%m%d").to_string(),
        ]);
    }
    set.push(vec![
        "N1".into(),
        "ST".into(),
        truncate(&clean(&po.ship_to_name), 60),
        "92".into(),
        truncate(&ship_to_id, 80),
    ]);
    for (i, line) in po.lines.iter().enumerate() {
        let mut po1 = vec![
            "PO1".into(),
            (i + 1).to_string(),
            line.quantity.to_string(),
            match truncate(&clean(&line.unit), 2) {
                unit if unit.is_empty() => "EA".to_owned(),
                unit => unit,
            },
            decimal(line.unit_price_micros),
            String::new(),
            "BP".into(),
            truncate(&clean(&line.buyer_part), 48),
        ];
        let vendor = line.vendor_part.as_deref().map(clean).unwrap_or_default();
        if !vendor.is_empty() {
            po1.push("VP".into());
            po1.push(truncate(&vendor, 48));
        }
        set.push(po1);
    }
    // CTT02 holds 10 digits: a longer hash total keeps its rightmost ones, as X12 says.
    let hash_total: i128 = po.lines.iter().map(|l| i128::from(l.quantity)).sum();
    set.push(vec![
        "CTT".into(),
        po.lines.len().to_string(),
        (hash_total % 10_000_000_000).to_string(),
    ]);
    let count = set.len() + 1;
    set.push(vec!["SE".into(), count.to_string(), set_control]);
    for s in &set {
        let refs: Vec<&str> = s.iter().map(String::as_str).collect();
        segment(&refs);
    }

    segment(&["GE", "1", &group_control]);
    segment(&["IEA", "1", &isa_control]);
    Ok(out)
}

/// The X12 unit of measure code (355) for a product's unit as stock names it; EA (each)
/// when there is no common code for it.
pub fn unit_code(unit_of_measure: &str) -> &'static str {
    match unit_of_measure.trim().to_ascii_lowercase().as_str() {
        "kg" | "kilogram" | "kilograms" => "KG",
        "g" | "gram" | "grams" => "GR",
        "l" | "liter" | "litre" | "liters" | "litres" => "LT",
        "m" | "meter" | "metre" | "meters" | "metres" => "MR",
        "box" | "boxes" => "BX",
        "pack" | "packs" => "PK",
        "pallet" | "pallets" => "PL",
        u if u.starts_with("case") => "CA",
        _ => "EA",
    }
}

/// `value` cleaned, if that leaves 1 to `max` characters.
fn check_length(field: &'static str, value: &str, max: usize) -> Result<String, X12Error> {
    let cleaned = clean(value);
    let got = cleaned.chars().count();
    if got == 0 || got > max {
        return Err(X12Error::Length { field, max, got });
    }
    Ok(cleaned)
}

/// Separators and control characters become spaces; only printable ASCII is kept.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c == ELEMENT || c == SEGMENT || c == COMPONENT || !c.is_ascii() || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn truncate(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// The two 10-character authorization and security fields, blank.
fn pad(value: &str) -> String {
    pad_to(value, 10)
}

fn pad_to(value: &str, width: usize) -> String {
    format!("{:<width$}", truncate(value, width))
}

/// Micros as an X12 decimal: no trailing zeros, no trailing point.
fn decimal(micros: i64) -> String {
    let whole = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests;
