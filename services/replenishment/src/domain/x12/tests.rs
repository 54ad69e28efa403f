//! The writer checked by a reader written here, from the standard's rules rather than from the
//! writer: ISA is fixed width and names the separators, SE counts its segments, and the
//! control numbers of each envelope agree with their trailers.

use chrono::{NaiveDate, TimeZone, Utc};

use super::*;

fn partners() -> Partners {
    Partners {
        sender_qualifier: "ZZ".into(),
        sender_id: "INVENTORY".into(),
        receiver_qualifier: "01".into(),
        receiver_id: "123456789".into(),
        production: true,
    }
}

fn order() -> PurchaseOrder {
    PurchaseOrder {
        po_number: "PO-000042".into(),
        order_date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap_or_default(),
        requested_delivery: NaiveDate::from_ymd_opt(2026, 12, 4),
        ship_to_name: "Berlin *Mitte*~".into(),
        ship_to_id: "10000000-0000-4000-8000-000000000001".into(),
        lines: vec![Line {
            quantity: 384,
            unit: "EA".into(),
            unit_price_micros: 12_500_000,
            buyer_part: "00000000-0000-4000-8000-000000000007".into(),
            vendor_part: Some("ACME-7".into()),
        }],
    }
}

/// What the reader found.
#[derive(Debug)]
struct Interchange {
    element: char,
    segment: char,
    component: char,
    segments: Vec<Vec<String>>,
}

/// Reads an interchange: the separators from the fixed-width ISA (element at byte 3,
/// component at byte 104, segment terminator at byte 105), then every segment.
fn read(text: &str) -> Result<Interchange, String> {
    let bytes = text.as_bytes();
    if bytes.len() < 106 || !text.starts_with("ISA") {
        return Err("no ISA segment of 106 characters".into());
    }
    let element = bytes[3] as char;
    let component = bytes[104] as char;
    let segment = bytes[105] as char;
    let isa: Vec<&str> = text[..105].split(element).collect();
    if isa.len() != 17 {
        return Err(format!("ISA has {} elements, not 17", isa.len()));
    }
    let widths = [3, 2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];
    for (i, (value, width)) in isa.iter().zip(widths).enumerate() {
        if value.len() != width {
            return Err(format!("ISA{i:02} is {} wide, not {width}", value.len()));
        }
    }
    let segments = text
        .split(segment)
        .filter(|s| !s.is_empty())
        .map(|s| s.split(element).map(str::to_owned).collect())
        .collect();
    Ok(Interchange {
        element,
        segment,
        component,
        segments,
    })
}

impl Interchange {
    fn find(&self, id: &str) -> Vec<&Vec<String>> {
        self.segments.iter().filter(|s| s[0] == id).collect()
    }

    fn one(&self, id: &str) -> &Vec<String> {
        let found = self.find(id);
        assert_eq!(found.len(), 1, "segments {id}: {found:?}");
        found[0]
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 7, 5, 0)
        .single()
        .unwrap_or_default()
}

#[test]
fn the_850_parses_back_to_the_same_purchase_order() -> Result<(), String> {
    let text = write_850(&partners(), &order(), 42, at()).map_err(|e| e.to_string())?;
    let doc = read(&text)?;
    assert_eq!((doc.element, doc.segment, doc.component), ('*', '~', '>'));

    let isa = doc.one("ISA");
    assert_eq!(isa[6].trim_end(), "INVENTORY");
    assert_eq!(isa[8].trim_end(), "123456789");
    assert_eq!(isa[9], "261127");
    assert_eq!(isa[10], "0705");
    assert_eq!(isa[12], "00401");
    assert_eq!(isa[15], "P");

    let beg = doc.one("BEG");
    assert_eq!(beg[3], "PO-000042");
    assert_eq!(beg[5], "20261127");
    assert_eq!(doc.one("DTM")[2], "20261204");
    let n1 = doc.one("N1");
    assert_eq!(n1[1], "ST");
    assert_eq!(n1[2], "Berlin  Mitte", "separators in a name become spaces");
    assert_eq!(n1[4], "10000000-0000-4000-8000-000000000001");

    let po1 = doc.one("PO1");
    assert_eq!(po1[1], "1");
    assert_eq!(po1[2].parse::<i64>().ok(), Some(384));
    assert_eq!(po1[3], "EA");
    assert_eq!(po1[4], "12.5");
    assert_eq!(
        &po1[6..],
        ["BP", "00000000-0000-4000-8000-000000000007", "VP", "ACME-7"]
    );
    let ctt = doc.one("CTT");
    assert_eq!((ctt[1].as_str(), ctt[2].as_str()), ("1", "384"));
    Ok(())
}

#[test]
fn trailers_count_segments_and_repeat_their_control_numbers() -> Result<(), String> {
    let mut po = order();
    po.lines.push(Line {
        quantity: 5,
        unit: "CS".into(),
        unit_price_micros: 3_000_000,
        buyer_part: "p-2".into(),
        vendor_part: None,
    });
    let text = write_850(&partners(), &po, 123_456_789, at()).map_err(|e| e.to_string())?;
    let doc = read(&text)?;
    let isa = doc.one("ISA");
    let iea = doc.one("IEA");
    assert_eq!(isa[13], "123456789");
    assert_eq!(iea[2], isa[13]);
    assert_eq!(iea[1], "1", "one functional group");
    let gs = doc.one("GS");
    let ge = doc.one("GE");
    assert_eq!((gs[1].as_str(), gs[8].as_str()), ("PO", "004010"));
    assert_eq!(ge[2], gs[6]);
    assert_eq!(ge[1], "1", "one transaction set");
    let st_at = doc
        .segments
        .iter()
        .position(|s| s[0] == "ST")
        .ok_or("no ST")?;
    let se_at = doc
        .segments
        .iter()
        .position(|s| s[0] == "SE")
        .ok_or("no SE")?;
    let st = &doc.segments[st_at];
    let se = &doc.segments[se_at];
    assert_eq!(st[1], "850");
    assert_eq!(se[2], st[2]);
    assert_eq!(se[1].parse::<usize>().ok(), Some(se_at - st_at + 1));
    assert_eq!(doc.find("PO1").len(), 2);
    assert_eq!(doc.one("CTT")[2], "389", "hash total of quantities");
    assert_eq!(doc.segments.last().map(|s| s[0].as_str()), Some("IEA"));
    Ok(())
}

#[test]
fn isa_stays_fixed_width_with_short_ids_and_small_control_numbers() -> Result<(), String> {
    let short = Partners {
        sender_id: "A".into(),
        receiver_id: "B".into(),
        ..partners()
    };
    let text = write_850(&short, &order(), 1, at()).map_err(|e| e.to_string())?;
    let doc = read(&text)?;
    assert_eq!(doc.one("ISA")[13], "000000001");
    assert_eq!(doc.one("ST")[2], "0001");
    Ok(())
}

#[test]
fn prices_are_decimals_without_trailing_zeros() {
    assert_eq!(decimal(12_500_000), "12.5");
    assert_eq!(decimal(3_000_000), "3");
    assert_eq!(decimal(1), "0.000001");
    assert_eq!(decimal(0), "0");
}

#[test]
fn what_the_envelope_cannot_carry_is_refused() {
    let long = Partners {
        sender_id: "SIXTEEN-CHARS-ID".into(),
        ..partners()
    };
    assert!(matches!(
        write_850(&long, &order(), 1, at()),
        Err(X12Error::Length {
            field: "sender_id",
            ..
        })
    ));
    assert_eq!(
        write_850(&partners(), &order(), 0, at()),
        Err(X12Error::ControlNumber(0))
    );
    assert_eq!(
        write_850(&partners(), &order(), 1_000_000_000, at()),
        Err(X12Error::ControlNumber(1_000_000_000))
    );
    let mut empty = order();
    empty.lines.clear();
    assert_eq!(
        write_850(&partners(), &empty, 1, at()),
        Err(X12Error::NoLines)
    );
    let mut long_number = order();
    long_number.po_number = "P".repeat(23);
    assert!(write_850(&partners(), &long_number, 1, at()).is_err());
}

#[test]
fn units_map_to_x12_codes() {
    assert_eq!(unit_code("each"), "EA");
    assert_eq!(unit_code("kg"), "KG");
    assert_eq!(unit_code("case-of-12"), "CA");
    assert_eq!(unit_code("Litre"), "LT");
    assert_eq!(unit_code("bunch"), "EA");
}

/// The writer fuzzed: any purchase order, with separators, control characters and
/// multibyte text anywhere, is refused or written as an interchange the reader above takes,
/// with every element in place and none empty that the 850 requires. Cases per run:
/// `FUZZ_CASES` (256 by default; a long run sets more). Failures proptest finds are kept in
/// `proptest-regressions/` beside this file and replayed first on every run.
mod fuzz {
    use inventory_testkit::fuzz::cases;
    use proptest::prelude::*;

    use super::*;

    /// Text up to `max` characters, often made of what breaks X12.
    fn text(max: usize) -> impl Strategy<Value = String> {
        let awkward = prop::sample::select(vec![
            '*', '~', '>', '\n', '\r', '\0', ' ', 'é', 'ß', '😀', 'A', 'z', '9', '-',
        ]);
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..=max),
            prop::collection::vec(awkward, 0..=max),
        ]
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn line() -> impl Strategy<Value = Line> {
        (
            prop_oneof![any::<i64>(), 1..1_000_i64],
            text(4),
            prop_oneof![any::<i64>(), 0..100_000_000_i64],
            text(50),
            prop::option::of(text(50)),
        )
            .prop_map(
                |(quantity, unit, unit_price_micros, buyer_part, vendor_part)| Line {
                    quantity,
                    unit,
                    unit_price_micros,
                    buyer_part,
                    vendor_part,
                },
            )
    }

    /// Elements each segment of the 850 carries (PO1: 8, or 10 with the supplier's part).
    fn elements(id: &str) -> &'static [usize] {
        match id {
            "ISA" => &[17],
            "GS" => &[9],
            "ST" | "DTM" | "CTT" | "SE" | "GE" | "IEA" => &[3],
            "BEG" => &[6],
            "N1" => &[5],
            "PO1" => &[8, 10],
            _ => &[],
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn any_purchase_order_is_refused_or_written_well_formed(
            sender_qualifier in text(3),
            sender_id in text(17),
            receiver_qualifier in text(3),
            receiver_id in text(17),
            production in any::<bool>(),
            po_number in text(24),
            ship_to_name in text(70),
            ship_to_id in text(90),
            lines in prop::collection::vec(line(), 0..4),
            control in prop_oneof![any::<i64>(), 1..=MAX_CONTROL_NUMBER],
        ) {
            let partners = Partners {
                sender_qualifier,
                sender_id,
                receiver_qualifier,
                receiver_id,
                production,
            };
            let po = PurchaseOrder {
                po_number,
                order_date: at().date_naive(),
                requested_delivery: None,
                ship_to_name,
                ship_to_id,
                lines,
            };
            let Ok(text) = write_850(&partners, &po, control, at()) else {
                return Ok(());
            };
            prop_assert!(text.is_ascii(), "{text:?}");
            let doc = read(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!((doc.element, doc.segment, doc.component), ('*', '~', '>'));
            for segment in &doc.segments {
                prop_assert!(
                    elements(&segment[0]).contains(&segment.len()),
                    "{segment:?}"
                );
                prop_assert!(
                    segment.iter().all(|e| !e.chars().any(|c| c.is_control())),
                    "{segment:?}"
                );
            }
            let isa = doc.one("ISA");
            for (i, what) in [(5, "sender qualifier"), (6, "sender id"), (7, "receiver qualifier"), (8, "receiver id")] {
                prop_assert!(!isa[i].trim().is_empty(), "empty {what}: {isa:?}");
            }
            let gs = doc.one("GS");
            prop_assert!(!gs[2].is_empty() && !gs[3].is_empty(), "{gs:?}");
            prop_assert!(!doc.one("BEG")[3].is_empty(), "a PO number");
            prop_assert!(!doc.one("N1")[4].is_empty(), "a ship-to id");
            for po1 in doc.find("PO1") {
                prop_assert!(!po1[7].is_empty(), "BP without a part: {po1:?}");
                prop_assert!(po1[2].len() <= 15, "PO102 holds 15 digits: {po1:?}");
                let digits = po1[4].chars().filter(char::is_ascii_digit).count();
                prop_assert!(digits <= 17, "PO104 holds 17 digits: {po1:?}");
                if po1.len() == 10 {
                    prop_assert!(!po1[9].is_empty(), "VP without a part: {po1:?}");
                }
            }
            let st_at = doc.segments.iter().position(|s| s[0] == "ST").unwrap_or(0);
            let se_at = doc.segments.iter().position(|s| s[0] == "SE").unwrap_or(0);
            prop_assert_eq!(
                doc.segments[se_at][1].parse::<usize>().ok(),
                Some(se_at - st_at + 1)
            );
        }
    }
}
