//! Requests to commands: every bad field named at once, in one INVALID_ARGUMENT.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use inventory_core::ServiceError;
use inventory_core::time::from_timestamp;
use inventory_core::validate::Violations;
use inventory_proto::reconciliation::v1 as pb;
use uuid::Uuid;

/// Products one task counts at most, and entries one submission carries.
pub const MAX_LINES: usize = 10_000;
/// How far ahead of the server a scanner's clock may run.
const FUTURE_SLACK: Duration = Duration::minutes(1);
/// Longest report period.
const MAX_REPORT_DAYS: i64 = 3660;

pub struct CreateTask {
    pub request_id: String,
    pub warehouse_id: Uuid,
    pub location: String,
    pub product_ids: Vec<Uuid>,
    pub blind: bool,
    pub actor: String,
}

pub fn create_task(req: &pb::CreateCountTaskRequest) -> Result<CreateTask, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let warehouse_id = v.uuid("warehouse_id", &req.warehouse_id);
    let location = location(&mut v, &req.location);
    let actor = v.key("actor", &req.actor);
    let product_ids = if req.product_ids.len() > MAX_LINES {
        v.add(
            "product_ids",
            format!(
                "must hold at most {MAX_LINES} products, got {}",
                req.product_ids.len()
            ),
        );
        None
    } else {
        distinct_ids(&mut v, "product_ids", &req.product_ids)
    };
    v.finish()?;
    Ok(CreateTask {
        request_id: request_id.unwrap_or_default(),
        warehouse_id: warehouse_id.unwrap_or_default(),
        location: location.unwrap_or_default(),
        product_ids: product_ids.unwrap_or_default(),
        blind: req.blind,
        actor: actor.unwrap_or_default(),
    })
}

/// Optional, at most 128 characters, no surrounding whitespace.
fn location(v: &mut Violations, value: &str) -> Option<String> {
    v.optional_key("location", value)
        .map(Option::unwrap_or_default)
}

fn distinct_ids(v: &mut Violations, field: &str, raw: &[String]) -> Option<Vec<Uuid>> {
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if let Some(id) = v.uuid(&f, value) {
            if !seen.insert(id) {
                v.add(&f, "repeats an earlier product");
            }
            ids.push(id);
        }
    }
    (ids.len() == raw.len()).then_some(ids)
}

pub struct Entry {
    pub product_id: Uuid,
    pub quantity: i64,
    pub recount: bool,
    pub count_time: DateTime<Utc>,
}

pub struct Submit {
    pub request_id: String,
    pub task_id: Uuid,
    pub entries: Vec<Entry>,
    pub counted_by: String,
}

pub fn submit(req: &pb::SubmitCountsRequest, now: DateTime<Utc>) -> Result<Submit, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let task_id = v.uuid("task_id", &req.task_id);
    let counted_by = v.key("counted_by", &req.counted_by);
    v.item_count("entries", req.entries.len(), MAX_LINES, "entries");
    let mut entries = Vec::new();
    if req.entries.len() <= MAX_LINES {
        for (i, e) in req.entries.iter().enumerate() {
            let product = v.uuid(&format!("entries[{i}].product_id"), &e.product_id);
            let quantity = v.quantity_or_zero(&format!("entries[{i}].quantity"), e.quantity);
            let count_time = match &e.count_time {
                None => Some(now),
                Some(t) => match from_timestamp(&format!("entries[{i}].count_time"), t) {
                    Ok(t) if t > now + FUTURE_SLACK => {
                        v.add(
                            format!("entries[{i}].count_time"),
                            format!("is in the future ({t}); at most a minute ahead of {now}"),
                        );
                        None
                    }
                    Ok(t) => Some(t),
                    Err(_) => {
                        v.add(
                            format!("entries[{i}].count_time"),
                            "is not a valid timestamp",
                        );
                        None
                    }
                },
            };
            if let (Some(product_id), Some(quantity), Some(count_time)) =
                (product, quantity, count_time)
            {
                entries.push(Entry {
                    product_id,
                    quantity,
                    recount: e.recount,
                    count_time,
                });
            }
        }
    }
    v.finish()?;
    Ok(Submit {
        request_id: request_id.unwrap_or_default(),
        task_id: task_id.unwrap_or_default(),
        entries,
        counted_by: counted_by.unwrap_or_default(),
    })
}

/// request_id, an id and the person acting, and an optional or required note.
pub struct Act {
    pub request_id: String,
    pub id: Uuid,
    pub actor: String,
    pub note: String,
}

pub fn act(
    request_id: &str,
    id: (&str, &str),
    actor: (&str, &str),
    note: (&str, &str),
    note_required: bool,
) -> Result<Act, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", request_id);
    let parsed = v.uuid(id.0, id.1);
    let actor_value = v.key(actor.0, actor.1);
    let note_value = if note_required {
        v.text(note.0, note.1)
    } else {
        v.optional_text(note.0, note.1)
    };
    v.finish()?;
    Ok(Act {
        request_id: request_id.unwrap_or_default(),
        id: parsed.unwrap_or_default(),
        actor: actor_value.unwrap_or_default(),
        note: note_value.unwrap_or_default(),
    })
}

/// A status filter, as the database names it; UNSPECIFIED is none.
fn status_filter<E>(
    value: i32,
    name: fn(E) -> &'static str,
) -> Result<Option<&'static str>, ServiceError>
where
    E: TryFrom<i32> + PartialEq + Default,
{
    if value == 0 {
        return Ok(None);
    }
    let mut v = Violations::new();
    let status = v.known_enum::<E>("status", value);
    v.finish()?;
    Ok(status.map(name))
}

pub fn task_status(value: i32) -> Result<Option<&'static str>, ServiceError> {
    status_filter(value, super::convert::task_status_name)
}

pub fn line_status(value: i32) -> Result<Option<&'static str>, ServiceError> {
    status_filter(value, super::convert::line_status_name)
}

/// A report's period [start, end).
pub fn period(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ServiceError> {
    let mut v = Violations::new();
    let mut read = |field: &str, t: Option<&prost_types::Timestamp>| match t {
        None => {
            v.add(field, "is required");
            None
        }
        Some(t) => match from_timestamp(field, t) {
            Ok(t) => Some(t),
            Err(_) => {
                v.add(field, "is not a valid timestamp");
                None
            }
        },
    };
    let start = read("start_time", start);
    let end = read("end_time", end);
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            v.add("end_time", "must be after start_time");
        } else if e - s > Duration::days(MAX_REPORT_DAYS) {
            v.add(
                "end_time",
                format!("must be at most {MAX_REPORT_DAYS} days after start_time"),
            );
        }
    }
    v.finish()?;
    Ok((start.unwrap_or_default(), end.unwrap_or_default()))
}

/// Every request reconciliation validates, fuzzed from a valid seed (see the test kit's
/// `fuzz`): no input panics, and every refusal names its fields.
#[cfg(test)]
mod fuzz {
    use inventory_testkit::fuzz::{cases, mutated, refusal_is_specific};
    use proptest::prelude::*;

    use super::*;

    const ID: &str = "0190b5f6-1c2d-7e3f-8a4b-5c6d7e8f9a0b";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn create_task(req in mutated(pb::CreateCountTaskRequest {
            request_id: ID.into(),
            warehouse_id: ID.into(),
            location: "A-01".into(),
            product_ids: vec![ID.into()],
            blind: true,
            actor: "planner".into(),
        })) {
            refusal_is_specific(&super::create_task(&req))?;
        }

        #[test]
        fn submit(req in mutated(pb::SubmitCountsRequest {
            request_id: ID.into(),
            task_id: ID.into(),
            entries: vec![pb::CountEntry {
                product_id: ID.into(),
                quantity: 90,
                recount: false,
                count_time: Some(prost_types::Timestamp { seconds: 1_799_999_000, nanos: 0 }),
            }],
            counted_by: "alice".into(),
        })) {
            refusal_is_specific(&super::submit(&req, now()))?;
        }

        #[test]
        fn act(req in mutated(pb::ApproveAdjustmentRequest {
            request_id: ID.into(),
            adjustment_id: ID.into(),
            manager: "manager-max".into(),
            comment: "checked the shelf".into(),
        }), note_required in any::<bool>()) {
            refusal_is_specific(&super::act(
                &req.request_id,
                ("adjustment_id", &req.adjustment_id),
                ("manager", &req.manager),
                ("comment", &req.comment),
                note_required,
            ))?;
        }

        #[test]
        fn filters_and_periods(
            task in any::<i32>(),
            line in any::<i32>(),
            start in prop::option::of((any::<i64>(), any::<i32>())),
            end in prop::option::of((any::<i64>(), any::<i32>())),
        ) {
            refusal_is_specific(&super::task_status(task))?;
            refusal_is_specific(&super::line_status(line))?;
            let timestamp = |t: Option<(i64, i32)>| {
                t.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos })
            };
            let (start, end) = (timestamp(start), timestamp(end));
            refusal_is_specific(&super::period(start.as_ref(), end.as_ref()))?;
        }
    }
}
