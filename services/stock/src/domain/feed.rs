//! A position in the transaction feed. The feed delivers the log in (writer, sequence) order:
//! the writer is the transaction id of the transaction that logged the row (see the feed's
//! reader for why that order is final). The cursor a consumer stores is that pair, as an
//! opaque token.
//!
//! Before cursors, the feed delivered in sequence order and consumers stored the last
//! sequence they saw; such a number still resumes exactly. It means "every row with a
//! sequence at or below it was delivered", which a position keeps as its floor: rows at or
//! below the floor are never delivered again, whatever their writer.

/// Where a feed stands: after the row (`writer_xid`, `sequence`), never again delivering rows
/// at or below `floor` by sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedPosition {
    pub writer_xid: i64,
    pub sequence: i64,
    pub floor: i64,
}

/// The token's version tag, so its form can change without misreading a stored one.
const TOKEN_VERSION: &str = "1";

impl FeedPosition {
    /// The position of a consumer of the feed before cursors, whose last row was `sequence`.
    /// Rows logged before the cursor migration have writer 0 and were delivered in sequence
    /// order, so the position sits among them; the floor covers any later row with a lower
    /// sequence that a replica still running the old feed delivered.
    pub fn after_sequence(sequence: i64) -> Self {
        Self {
            writer_xid: 0,
            sequence,
            floor: sequence,
        }
    }

    /// The position after the row (`writer_xid`, `sequence`), keeping this one's floor.
    pub fn after(self, writer_xid: i64, sequence: i64) -> Self {
        Self {
            writer_xid,
            sequence,
            floor: self.floor,
        }
    }

    /// The cursor token: `1.<writer>.<sequence>.<floor>`. Opaque to consumers.
    pub fn token(&self) -> String {
        format!(
            "{TOKEN_VERSION}.{}.{}.{}",
            self.writer_xid, self.sequence, self.floor
        )
    }

    /// Reads a token made by [`FeedPosition::token`]; the error says what is wrong with it.
    pub fn parse(token: &str) -> Result<Self, String> {
        const SHAPE: &str = "is not a cursor from this feed (a StreamTransactionsResponse.cursor)";
        let mut parts = token.split('.');
        if parts.next() != Some(TOKEN_VERSION) {
            return Err(SHAPE.to_owned());
        }
        let mut number = || -> Result<i64, String> {
            let part = parts.next().ok_or_else(|| SHAPE.to_owned())?;
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SHAPE.to_owned());
            }
            part.parse::<i64>().map_err(|_| SHAPE.to_owned())
        };
        let (writer_xid, sequence, floor) = (number()?, number()?, number()?);
        if parts.next().is_some() {
            return Err(SHAPE.to_owned());
        }
        Ok(Self {
            writer_xid,
            sequence,
            floor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::FeedPosition;

    #[test]
    fn a_token_reads_back_as_the_position_it_was_made_from() {
        let position = FeedPosition::after_sequence(41).after(9_000_000_123, 77);
        assert_eq!(position.token(), "1.9000000123.77.41");
        assert_eq!(FeedPosition::parse(&position.token()), Ok(position));
        let start = FeedPosition::default();
        assert_eq!(FeedPosition::parse(&start.token()), Ok(start));
    }

    #[test]
    fn a_token_not_made_by_the_feed_is_refused() {
        for bad in [
            "",
            "1",
            "1.2.3",
            "1.2.3.4.5",
            "2.1.2.3",
            "1.-1.2.3",
            "1.a.2.3",
            "1..2.3",
            "1.99999999999999999999.2.3",
            "1.9223372036854775808.2.3",
            "1.+1.2.3",
        ] {
            assert!(FeedPosition::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_sequence_from_before_cursors_resumes_among_the_rows_it_was_read_from() {
        let position = FeedPosition::after_sequence(1_000);
        assert_eq!((position.writer_xid, position.sequence), (0, 1_000));
        assert_eq!(position.floor, 1_000);
        assert_eq!(position.after(5, 3).floor, 1_000, "the floor stays");
    }
}
