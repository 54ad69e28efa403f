//! Reservations: a hold on stock for one order line in one warehouse, and what shipping and
//! releasing do to it.

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use uuid::Uuid;

use super::movement::{InventoryKey, Movement, precondition};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Something is still held.
    Active,
    /// Nothing is held and at least one unit shipped.
    Shipped,
    /// Nothing is held and nothing shipped: cancelled.
    Released,
    /// Released by the expiry task.
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Shipped => "SHIPPED",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Active, Self::Shipped, Self::Released, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// Why a hold is being released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseCause {
    /// The caller cancelled.
    Cancelled,
    /// The expiry passed.
    Expired,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub reservation_id: Uuid,
    pub order_id: String,
    pub order_line_id: String,
    pub key: InventoryKey,
    pub status: ReservationStatus,
    pub quantity_requested: i64,
    pub quantity_held: i64,
    pub quantity_shipped: i64,
    pub quantity_released: i64,
    pub expire_time: Option<DateTime<Utc>>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Reservation {
    /// A new hold on the full quantity.
    pub fn new(
        order_id: String,
        order_line_id: String,
        key: InventoryKey,
        quantity: i64,
        expire_time: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            reservation_id: Uuid::now_v7(),
            order_id,
            order_line_id,
            key,
            status: ReservationStatus::Active,
            quantity_requested: quantity,
            quantity_held: quantity,
            quantity_shipped: 0,
            quantity_released: 0,
            expire_time,
            create_time: now,
            update_time: now,
        }
    }

    fn ensure_active(&self) -> Result<(), ServiceError> {
        if self.status == ReservationStatus::Active {
            return Ok(());
        }
        Err(precondition(
            "RESERVATION_NOT_ACTIVE",
            format!(
                "reservation for order {} line {} is {}",
                self.order_id,
                self.order_line_id,
                self.status.as_str()
            ),
            vec![
                ("reservation_id", self.reservation_id.to_string()),
                ("status", self.status.as_str().to_owned()),
            ],
        ))
    }

    fn exceeds_held(&self, requested: i64) -> ServiceError {
        precondition(
            "EXCEEDS_RESERVED_QUANTITY",
            format!(
                "requested {requested} but the reservation for order {} line {} holds {}",
                self.order_id, self.order_line_id, self.quantity_held
            ),
            vec![
                ("reservation_id", self.reservation_id.to_string()),
                ("requested", requested.to_string()),
                ("held", self.quantity_held.to_string()),
            ],
        )
    }

    fn settle(&mut self, terminal_if_unshipped: ReservationStatus, now: DateTime<Utc>) {
        if self.quantity_held == 0 {
            self.status = if self.quantity_shipped > 0 {
                ReservationStatus::Shipped
            } else {
                terminal_if_unshipped
            };
        }
        self.update_time = now;
    }

    /// Ships part or all of what is held: on hand and reserved both drop by `quantity`.
    pub fn ship(
        &self,
        quantity: i64,
        now: DateTime<Utc>,
    ) -> Result<(Self, Movement), ServiceError> {
        self.ensure_active()?;
        if quantity > self.quantity_held {
            return Err(self.exceeds_held(quantity));
        }
        let mut next = self.clone();
        next.quantity_held -= quantity;
        next.quantity_shipped += quantity;
        next.settle(ReservationStatus::Shipped, now);
        let movement = Movement::ship(self.key, quantity).with_reference(self.order_id.clone());
        Ok((next, movement))
    }

    /// Releases `quantity` (everything still held when `None`) back to available.
    pub fn release(
        &self,
        quantity: Option<i64>,
        cause: ReleaseCause,
        now: DateTime<Utc>,
    ) -> Result<(Self, Movement), ServiceError> {
        self.ensure_active()?;
        let quantity = quantity.unwrap_or(self.quantity_held);
        if quantity > self.quantity_held {
            return Err(self.exceeds_held(quantity));
        }
        let mut next = self.clone();
        next.quantity_held -= quantity;
        next.quantity_released += quantity;
        let (terminal, reason) = match cause {
            ReleaseCause::Cancelled => (ReservationStatus::Released, ""),
            ReleaseCause::Expired => (ReservationStatus::Expired, "expired"),
        };
        next.settle(terminal, now);
        let movement = Movement::release(self.key, quantity)
            .with_reference(self.order_id.clone())
            .with_reason(reason);
        Ok((next, movement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::movement::TxnType;

    fn reservation(quantity: i64) -> Reservation {
        let key = InventoryKey {
            product_id: Uuid::from_u128(1),
            warehouse_id: Uuid::from_u128(2),
        };
        Reservation::new(
            "order-1".into(),
            "line-1".into(),
            key,
            quantity,
            None,
            Utc::now(),
        )
    }

    #[test]
    fn partial_shipment_keeps_the_rest_held() {
        let (next, movement) = reservation(5).ship(2, Utc::now()).expect("ships");
        assert_eq!(next.status, ReservationStatus::Active);
        assert_eq!((next.quantity_held, next.quantity_shipped), (3, 2));
        assert_eq!(movement.txn_type, TxnType::Ship);
        assert_eq!((movement.on_hand_delta, movement.reserved_delta), (-2, -2));
        assert_eq!(movement.reference_id, "order-1");
    }

    #[test]
    fn shipping_everything_closes_the_reservation() {
        let (next, _) = reservation(5).ship(5, Utc::now()).expect("ships");
        assert_eq!(next.status, ReservationStatus::Shipped);
        assert!(next.ship(1, Utc::now()).is_err(), "nothing left to ship");
    }

    #[test]
    fn cannot_ship_or_release_more_than_held() {
        let r = reservation(3);
        assert!(r.ship(4, Utc::now()).is_err());
        assert!(
            r.release(Some(4), ReleaseCause::Cancelled, Utc::now())
                .is_err()
        );
    }

    #[test]
    fn releasing_the_rest_after_a_partial_shipment_counts_as_shipped() {
        let (shipped, _) = reservation(5).ship(2, Utc::now()).expect("ships");
        let (released, movement) = shipped
            .release(None, ReleaseCause::Cancelled, Utc::now())
            .expect("releases");
        assert_eq!(movement.reserved_delta, -3);
        assert_eq!(released.status, ReservationStatus::Shipped);
        assert_eq!(released.quantity_released, 3);
    }

    #[test]
    fn expiry_marks_the_reservation_expired_with_a_reason() {
        let (expired, movement) = reservation(2)
            .release(None, ReleaseCause::Expired, Utc::now())
            .expect("expires");
        assert_eq!(expired.status, ReservationStatus::Expired);
        assert_eq!(movement.reason, "expired");
        assert!(
            expired
                .release(None, ReleaseCause::Expired, Utc::now())
                .is_err()
        );
    }
}
