//! Key/value cache cases (`KeyValueCache`).

use super::Case;

pub(super) fn cases() -> Vec<Case> {
    Vec::new()
}
