//! [`KeyValueCache`]: a plain key/value cache with TTLs over any backend
//! (being written).
