//! AIP-134 update masks: which fields of a resource a partial update replaces.

use std::collections::HashSet;

use crate::Violations;
use crate::validate::excerpt;

/// The paths of `mask`, each one of `all` and none twice; `"*"` alone means every field.
/// A missing or empty mask is refused rather than read as "everything": a client that
/// forgot the mask must not overwrite fields it never meant to touch.
pub fn mask_paths<'a>(
    v: &mut Violations,
    mask: Option<&prost_types::FieldMask>,
    all: &[&'a str],
) -> Vec<&'a str> {
    let paths: &[String] = mask.map_or(&[], |m| m.paths.as_slice());
    if paths.is_empty() {
        v.add(
            "update_mask",
            "is required: name the fields to replace, or \"*\" for all",
        );
        return Vec::new();
    }
    if paths.len() == 1 && paths[0] == "*" {
        return all.to_vec();
    }
    let mut seen = HashSet::new();
    let mut known = Vec::with_capacity(paths.len());
    let (mut unknown, mut twice) = (Vec::new(), Vec::new());
    for path in paths {
        match all.iter().find(|field| **field == path.as_str()) {
            None => unknown.push(path.as_str()),
            Some(_) if !seen.insert(path.as_str()) => twice.push(path.as_str()),
            Some(field) => known.push(*field),
        }
    }
    // One violation per kind, naming a few: a mask of hundreds of bad paths still makes a
    // small error.
    if !unknown.is_empty() {
        v.add(
            "update_mask.paths",
            format!(
                "unknown {} {}; expected one of {}",
                if unknown.len() == 1 {
                    "field"
                } else {
                    "fields"
                },
                some_of(&unknown),
                all.join(", ")
            ),
        );
    }
    if !twice.is_empty() {
        v.add(
            "update_mask.paths",
            format!("listed twice: {}", some_of(&twice)),
        );
    }
    known
}

/// Paths shown in an error: the first few, and how many more.
const SHOWN_PATHS: usize = 5;

fn some_of(paths: &[&str]) -> String {
    let shown: Vec<String> = paths.iter().take(SHOWN_PATHS).map(|p| excerpt(p)).collect();
    match paths.len().saturating_sub(SHOWN_PATHS) {
        0 => shown.join(", "),
        more => format!("{} (and {more} more)", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(paths: &[&str]) -> prost_types::FieldMask {
        prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    const ALL: [&str; 3] = ["name", "address", "location"];

    #[test]
    fn named_paths_and_the_wildcard_are_accepted() {
        let mut v = Violations::new();
        assert_eq!(mask_paths(&mut v, Some(&mask(&["name"])), &ALL), ["name"]);
        assert_eq!(mask_paths(&mut v, Some(&mask(&["*"])), &ALL), ALL);
        assert!(v.is_empty());
    }

    #[test]
    fn missing_unknown_and_repeated_paths_are_refused() {
        for (paths, field) in [
            (&[][..], "update_mask"),
            (&["colour"][..], "update_mask.paths"),
            (&["name", "name"][..], "update_mask.paths"),
        ] {
            let mut v = Violations::new();
            mask_paths(&mut v, Some(&mask(paths)), &ALL);
            let Err(crate::ServiceError::InvalidArgument(violations)) = v.finish() else {
                panic!("{paths:?} accepted");
            };
            assert_eq!(violations[0].field, field);
        }
    }

    #[test]
    fn hundreds_of_unknown_paths_make_one_small_error() {
        let paths: Vec<String> = (0..200).map(|i| format!("no_such_field_{i}")).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let mut v = Violations::new();
        mask_paths(&mut v, Some(&mask(&refs)), &ALL);
        let Err(error) = v.finish() else {
            panic!("accepted")
        };
        let status = tonic::Status::from(error);
        assert!(
            status.message().contains("(and 195 more)"),
            "{}",
            status.message()
        );
        let size = status.message().len() + status.details().len();
        assert!(size < 1024, "{size} bytes: {}", status.message());
    }

    /// Update masks fuzzed: whatever the paths, the answer names only known fields, each
    /// once, and it is refused exactly when a path is unknown or repeated or there is none.
    mod fuzz {
        use std::collections::HashSet;

        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: crate::fuzz_cases(),
                ..ProptestConfig::default()
            })]

            #[test]
            fn only_known_fields_are_replaced_and_anything_else_is_refused(
                paths in prop::collection::vec(
                    prop_oneof![
                        prop::sample::select(vec!["name", "address", "location", "*", ""])
                            .prop_map(str::to_owned),
                        any::<String>(),
                    ],
                    0..6,
                ),
            ) {
                let mut v = Violations::new();
                let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
                let known = mask_paths(&mut v, Some(&mask(&refs)), &ALL);
                let unique: HashSet<&&str> = known.iter().collect();
                prop_assert_eq!(unique.len(), known.len(), "a field twice: {:?}", known);
                prop_assert!(known.iter().all(|f| ALL.contains(f)));
                let wildcard = paths.len() == 1 && paths[0] == "*";
                let distinct: HashSet<&String> = paths.iter().collect();
                let fine = wildcard
                    || (!paths.is_empty()
                        && distinct.len() == paths.len()
                        && paths.iter().all(|p| ALL.contains(&p.as_str())));
                prop_assert_eq!(v.is_empty(), fine, "{:?}", paths);
            }
        }
    }
}
