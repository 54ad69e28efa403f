//! Movements: every change of a quantity, and the rules the log and the rows obey.

use std::collections::BTreeMap;
use std::fmt;

use inventory_core::ServiceError;
use uuid::Uuid;

use super::ERROR_DOMAIN;

/// One inventory row's identity. Its `Ord` is the one order in which every transaction
/// locks rows, so concurrent multi-row movements can never deadlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InventoryKey {
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
}

/// The two stored quantities of a row; available is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    pub on_hand: i64,
    pub reserved: i64,
}

impl Level {
    pub fn available(self) -> i64 {
        self.on_hand - self.reserved
    }

    /// The level after a change, or `None` when the change would break an invariant
    /// (the same ones the database's CHECK constraints enforce).
    pub fn apply(self, on_hand_delta: i64, reserved_delta: i64) -> Option<Level> {
        let next = Level {
            on_hand: self.on_hand.checked_add(on_hand_delta)?,
            reserved: self.reserved.checked_add(reserved_delta)?,
        };
        (next.on_hand >= 0 && next.reserved >= 0 && next.reserved <= next.on_hand).then_some(next)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnType {
    Receive,
    Reserve,
    Release,
    Ship,
    Adjust,
    Transfer,
}

impl TxnType {
    pub const ALL: [TxnType; 6] = [
        Self::Receive,
        Self::Reserve,
        Self::Release,
        Self::Ship,
        Self::Adjust,
        Self::Transfer,
    ];

    /// The name stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receive => "RECEIVE",
            Self::Reserve => "RESERVE",
            Self::Release => "RELEASE",
            Self::Ship => "SHIP",
            Self::Adjust => "ADJUST",
            Self::Transfer => "TRANSFER",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

impl fmt::Display for TxnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of one inventory row, as the log will record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub key: InventoryKey,
    pub txn_type: TxnType,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub reference_id: String,
    pub reason: String,
}

impl Movement {
    fn new(key: InventoryKey, txn_type: TxnType, on_hand_delta: i64, reserved_delta: i64) -> Self {
        Self {
            key,
            txn_type,
            on_hand_delta,
            reserved_delta,
            reference_id: String::new(),
            reason: String::new(),
        }
    }

    pub fn receive(key: InventoryKey, quantity: i64) -> Self {
        Self::new(key, TxnType::Receive, quantity, 0)
    }
    pub fn reserve(key: InventoryKey, quantity: i64) -> Self {
        Self::new(key, TxnType::Reserve, 0, quantity)
    }
    pub fn release(key: InventoryKey, quantity: i64) -> Self {
        Self::new(key, TxnType::Release, 0, -quantity)
    }
    pub fn ship(key: InventoryKey, quantity: i64) -> Self {
        Self::new(key, TxnType::Ship, -quantity, -quantity)
    }
    pub fn adjust(key: InventoryKey, on_hand_delta: i64) -> Self {
        Self::new(key, TxnType::Adjust, on_hand_delta, 0)
    }
    pub fn transfer_out(key: InventoryKey, quantity: i64) -> Self {
        Self::new(key, TxnType::Transfer, -quantity, 0)
    }
    pub fn transfer_in(key: InventoryKey, quantity: i64) -> Self {
        Self::new(key, TxnType::Transfer, quantity, 0)
    }

    pub fn with_reference(mut self, reference_id: impl Into<String>) -> Self {
        self.reference_id = reference_id.into();
        self
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// The size of the movement, always positive; the log stores it beside the deltas.
    pub fn quantity(&self) -> i64 {
        self.on_hand_delta.abs().max(self.reserved_delta.abs())
    }
}

/// The net change one request makes to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowChange {
    pub key: InventoryKey,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
}

impl RowChange {
    /// A change that only adds may create the row; anything else needs it to exist.
    pub fn only_adds(&self) -> bool {
        self.on_hand_delta >= 0 && self.reserved_delta >= 0
    }
}

/// Nets the movements per row, in lock order.
pub fn row_changes(movements: &[Movement]) -> Vec<RowChange> {
    let mut rows: BTreeMap<InventoryKey, RowChange> = BTreeMap::new();
    for m in movements {
        let row = rows.entry(m.key).or_insert(RowChange {
            key: m.key,
            on_hand_delta: 0,
            reserved_delta: 0,
        });
        row.on_hand_delta += m.on_hand_delta;
        row.reserved_delta += m.reserved_delta;
    }
    rows.into_values().collect()
}

/// The level after each movement, in request order, given each row's level after the whole
/// request (what the conditional update returned). Each row's starting level is its final
/// level minus the net change; the movements are then replayed in order.
pub fn levels_after_each(
    movements: &[Movement],
    final_levels: &BTreeMap<InventoryKey, Level>,
) -> Result<Vec<Level>, ServiceError> {
    let mut current: BTreeMap<InventoryKey, Level> = BTreeMap::new();
    for change in row_changes(movements) {
        let end = final_levels.get(&change.key).copied().ok_or_else(|| {
            ServiceError::Internal(format!("no level returned for {:?}", change.key))
        })?;
        let start = Level {
            on_hand: end.on_hand - change.on_hand_delta,
            reserved: end.reserved - change.reserved_delta,
        };
        current.insert(change.key, start);
    }
    movements
        .iter()
        .map(|m| {
            let level = current.get_mut(&m.key).ok_or_else(|| {
                ServiceError::Internal(format!("row {:?} missing while replaying", m.key))
            })?;
            *level = level
                .apply(m.on_hand_delta, m.reserved_delta)
                .ok_or_else(|| {
                    ServiceError::Internal(format!(
                        "movement {m:?} breaks an invariant midway through its request"
                    ))
                })?;
            Ok(*level)
        })
        .collect()
}

/// What a coalesced batch decides for one reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every line reserved; each line's row level right after its grant.
    Granted(Vec<Level>),
    /// Not enough left when its turn came: the first line (by index) that did not fit and
    /// what it found available. Nothing of the request was reserved.
    Refused { line: usize, available: i64 },
}

/// Decides a batch of reservation requests against the locked rows: each request asks for
/// one or more lines (distinct rows) held all or none, and the rows serve the requests
/// strictly in arrival order while stock lasts. A request that does not fit is refused
/// (nothing of it taken) and the next one is still tried, so a large request cannot starve
/// small ones. Every key in `asks` must have a level in `levels`.
pub fn grant_in_arrival_order(
    levels: &BTreeMap<InventoryKey, Level>,
    asks: &[Vec<(InventoryKey, i64)>],
) -> Vec<Grant> {
    let mut current = levels.clone();
    asks.iter()
        .map(|lines| {
            let mut afters = Vec::with_capacity(lines.len());
            for (n, (key, quantity)) in lines.iter().enumerate() {
                let level = current.get(key).copied();
                match level.and_then(|l| l.apply(0, *quantity)) {
                    Some(next) => afters.push(next),
                    None => {
                        return Grant::Refused {
                            line: n,
                            available: level.map_or(0, Level::available),
                        };
                    }
                }
            }
            for ((key, _), after) in lines.iter().zip(&afters) {
                current.insert(*key, *after);
            }
            Grant::Granted(afters)
        })
        .collect()
}

/// Why a row refused a change: the client-facing error, with the numbers that matter.
/// `current` is the row as it stands (`None` when it was never stocked).
pub fn rejection(
    change: &RowChange,
    txn_type: TxnType,
    current: Option<Level>,
    expected_on_hand: Option<i64>,
) -> ServiceError {
    let level = current.unwrap_or_default();
    if let Some(expected) = expected_on_hand
        && expected != level.on_hand
    {
        return precondition(
            "ON_HAND_CHANGED",
            format!(
                "on hand is {} but the request expected {expected}: a movement happened since it was read",
                level.on_hand
            ),
            vec![
                ("expected_on_hand", expected.to_string()),
                ("on_hand", level.on_hand.to_string()),
            ],
        );
    }
    match txn_type {
        TxnType::Adjust => {
            let target = level.on_hand + change.on_hand_delta;
            if target < 0 {
                precondition(
                    "ADJUSTMENT_BELOW_ZERO",
                    format!(
                        "adjusting by {} would leave on hand at {target}",
                        change.on_hand_delta
                    ),
                    vec![
                        ("quantity_delta", change.on_hand_delta.to_string()),
                        ("on_hand", level.on_hand.to_string()),
                    ],
                )
            } else {
                precondition(
                    "ADJUSTMENT_BELOW_RESERVED",
                    format!(
                        "adjusting by {} would leave on hand {target} below the {} units reserved",
                        change.on_hand_delta, level.reserved
                    ),
                    vec![
                        ("quantity_delta", change.on_hand_delta.to_string()),
                        ("on_hand", level.on_hand.to_string()),
                        ("reserved", level.reserved.to_string()),
                    ],
                )
            }
        }
        _ => {
            let requested = change.reserved_delta.max(-change.on_hand_delta).max(0);
            insufficient_stock(change.key, requested, level.available())
        }
    }
}

pub fn insufficient_stock(key: InventoryKey, requested: i64, available: i64) -> ServiceError {
    precondition(
        "INSUFFICIENT_STOCK",
        format!(
            "product {} in warehouse {}: requested {requested}, available {available}",
            key.product_id, key.warehouse_id
        ),
        vec![
            ("product_id", key.product_id.to_string()),
            ("warehouse_id", key.warehouse_id.to_string()),
            ("requested", requested.to_string()),
            ("available", available.to_string()),
        ],
    )
}

pub fn precondition(
    reason: &'static str,
    message: String,
    metadata: Vec<(&'static str, String)>,
) -> ServiceError {
    ServiceError::FailedPrecondition {
        reason,
        domain: ERROR_DOMAIN,
        message,
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128) -> InventoryKey {
        InventoryKey {
            product_id: Uuid::from_u128(n),
            warehouse_id: Uuid::from_u128(100),
        }
    }

    #[test]
    fn levels_refuse_what_the_database_refuses() {
        let level = Level {
            on_hand: 5,
            reserved: 3,
        };
        assert_eq!(level.available(), 2);
        assert_eq!(
            level.apply(0, 2),
            Some(Level {
                on_hand: 5,
                reserved: 5
            })
        );
        assert_eq!(level.apply(0, 3), None, "reserved above on hand");
        assert_eq!(level.apply(-3, 0), None, "on hand below reserved");
        assert_eq!(level.apply(0, -4), None, "negative reserved");
        assert_eq!(
            level.apply(-3, -3),
            Some(Level {
                on_hand: 2,
                reserved: 0
            })
        );
        assert_eq!(level.apply(i64::MAX, 0), None, "overflow");
    }

    #[test]
    fn row_changes_net_per_row_in_lock_order() {
        let moves = [
            Movement::reserve(key(2), 1),
            Movement::reserve(key(1), 2),
            Movement::reserve(key(2), 3),
        ];
        let rows = row_changes(&moves);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, key(1));
        assert_eq!(rows[1].key, key(2));
        assert_eq!(rows[1].reserved_delta, 4);
        assert!(rows.iter().all(RowChange::only_adds));
        assert!(!row_changes(&[Movement::ship(key(1), 1)])[0].only_adds());
    }

    #[test]
    fn after_values_replay_each_movement_from_the_start_level() {
        let moves = [Movement::reserve(key(1), 2), Movement::reserve(key(1), 3)];
        let finals = BTreeMap::from([(
            key(1),
            Level {
                on_hand: 10,
                reserved: 6,
            },
        )]);
        let after = levels_after_each(&moves, &finals).expect("consistent");
        assert_eq!(
            after,
            [
                Level {
                    on_hand: 10,
                    reserved: 3
                },
                Level {
                    on_hand: 10,
                    reserved: 6
                }
            ]
        );
    }

    #[test]
    fn quantity_is_the_size_of_the_movement() {
        assert_eq!(Movement::ship(key(1), 4).quantity(), 4);
        assert_eq!(Movement::adjust(key(1), -7).quantity(), 7);
        assert_eq!(Movement::release(key(1), 2).quantity(), 2);
    }

    #[test]
    fn rejections_say_why_with_numbers() {
        let change = RowChange {
            key: key(1),
            on_hand_delta: 0,
            reserved_delta: 5,
        };
        let ServiceError::FailedPrecondition {
            reason, metadata, ..
        } = rejection(
            &change,
            TxnType::Reserve,
            Some(Level {
                on_hand: 4,
                reserved: 1,
            }),
            None,
        )
        else {
            panic!("expected a failed precondition")
        };
        assert_eq!(reason, "INSUFFICIENT_STOCK");
        assert!(metadata.contains(&("requested", "5".to_owned())));
        assert!(metadata.contains(&("available", "3".to_owned())));

        let adjust = RowChange {
            key: key(1),
            on_hand_delta: -3,
            reserved_delta: 0,
        };
        let reason_of =
            |current, expected| match rejection(&adjust, TxnType::Adjust, current, expected) {
                ServiceError::FailedPrecondition { reason, .. } => reason,
                other => panic!("unexpected {other:?}"),
            };
        assert_eq!(
            reason_of(
                Some(Level {
                    on_hand: 2,
                    reserved: 0
                }),
                None
            ),
            "ADJUSTMENT_BELOW_ZERO"
        );
        assert_eq!(
            reason_of(
                Some(Level {
                    on_hand: 4,
                    reserved: 2
                }),
                None
            ),
            "ADJUSTMENT_BELOW_RESERVED"
        );
        assert_eq!(
            reason_of(
                Some(Level {
                    on_hand: 4,
                    reserved: 0
                }),
                Some(5)
            ),
            "ON_HAND_CHANGED"
        );
        assert_eq!(reason_of(None, None), "ADJUSTMENT_BELOW_ZERO");
    }

    #[test]
    fn a_batch_is_granted_in_arrival_order_while_stock_lasts() {
        let levels = BTreeMap::from([
            (
                key(1),
                Level {
                    on_hand: 3,
                    reserved: 1,
                },
            ),
            (
                key(2),
                Level {
                    on_hand: 1,
                    reserved: 0,
                },
            ),
        ]);
        let level = |on_hand, reserved| Level { on_hand, reserved };
        let asks = [
            vec![(key(1), 1)],
            vec![(key(2), 1)],
            vec![(key(1), 2)],
            vec![(key(1), 1)],
            vec![(key(2), 1)],
        ];
        assert_eq!(
            grant_in_arrival_order(&levels, &asks),
            [
                Grant::Granted(vec![level(3, 2)]),
                Grant::Granted(vec![level(1, 1)]),
                Grant::Refused {
                    line: 0,
                    available: 1
                },
                Grant::Granted(vec![level(3, 3)]),
                Grant::Refused {
                    line: 0,
                    available: 0
                },
            ]
        );
    }

    #[test]
    fn an_order_is_granted_all_or_none_and_one_refused_takes_nothing() {
        let levels = BTreeMap::from([
            (
                key(1),
                Level {
                    on_hand: 3,
                    reserved: 0,
                },
            ),
            (
                key(2),
                Level {
                    on_hand: 1,
                    reserved: 0,
                },
            ),
        ]);
        let level = |on_hand, reserved| Level { on_hand, reserved };
        let asks = [
            // Its second line does not fit: its first takes nothing.
            vec![(key(1), 2), (key(2), 2)],
            vec![(key(1), 3), (key(2), 1)],
            vec![(key(1), 1)],
        ];
        assert_eq!(
            grant_in_arrival_order(&levels, &asks),
            [
                Grant::Refused {
                    line: 1,
                    available: 1
                },
                Grant::Granted(vec![level(3, 3), level(1, 1)]),
                Grant::Refused {
                    line: 0,
                    available: 0
                },
            ]
        );
    }

    #[test]
    fn txn_types_round_trip_through_their_stored_names() {
        for t in TxnType::ALL {
            assert_eq!(TxnType::parse(t.as_str()), Some(t));
        }
        assert_eq!(TxnType::parse("STEAL"), None);
    }
}
