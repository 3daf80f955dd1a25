//! [`BufferBudget`]: a byte budget shared by everything that holds a body
//! in memory, so many slow or large bodies at once cannot exhaust memory.
//!
//! A client given one (through
//! [`CachedClientBuilder::buffer_budget`](crate::CachedClientBuilder::buffer_budget))
//! reserves a response body's `Content-Length`, or its store limit when the
//! length is unknown, before reading the body whole to store it. When the
//! budget cannot grant that, the body streams to the caller unstored, as a
//! body too large by its `Content-Length` does. The reservation is held
//! until the last copy of the read bytes is dropped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// A shared byte budget; clones share it.
///
/// ```
/// use respcache_http::BufferBudget;
///
/// let budget = BufferBudget::new(100);
/// let held = budget.try_reserve(60).expect("within the budget");
/// assert!(budget.try_reserve(60).is_none());
/// drop(held);
/// assert_eq!(budget.in_use(), 0);
/// ```
#[derive(Clone)]
pub struct BufferBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl BufferBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        BufferBudget {
            inner: Arc::new(Inner {
                limit: bytes,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// The bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, or `None` when that would exceed the budget.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: Some(self.clone()),
            bytes,
        })
    }

    fn take(&self, bytes: usize) -> bool {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl From<usize> for BufferBudget {
    fn from(bytes: usize) -> Self {
        BufferBudget::new(bytes)
    }
}

impl fmt::Debug for BufferBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferBudget")
            .field("limit", &self.limit())
            .field("in_use", &self.in_use())
            .finish()
    }
}

/// Bytes reserved from a [`BufferBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    /// `None`: no budget applies (nothing to give back).
    budget: Option<BufferBudget>,
    bytes: usize,
}

impl Reservation {
    /// A reservation that no budget limits.
    pub(crate) fn unlimited() -> Self {
        Reservation {
            budget: None,
            bytes: 0,
        }
    }

    /// The bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reserves `more` bytes on top; `false` (and nothing changed) when the
    /// budget cannot grant them.
    pub fn try_grow(&mut self, more: usize) -> bool {
        match &self.budget {
            Some(budget) if !budget.take(more) => false,
            _ => {
                self.bytes += more;
                true
            }
        }
    }

    /// Gives back what is reserved beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            if let Some(budget) = &self.budget {
                budget.give_back(self.bytes - bytes);
            }
            self.bytes = bytes;
        }
    }

    /// `bytes`, holding this reservation (shrunk to their length) until
    /// the last clone of them is dropped.
    pub fn attach(mut self, bytes: Bytes) -> Bytes {
        if self.budget.is_none() {
            return bytes;
        }
        self.shrink_to(bytes.len());
        Bytes::from_owner(Held {
            bytes,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.bytes);
        }
    }
}

/// Bytes and the reservation they hold.
struct Held {
    bytes: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The reservation for reading a response body whole: its `length` when
/// known, else `limit`; `None` when `budget` cannot grant it.
pub(crate) fn for_body(
    budget: Option<&BufferBudget>,
    length: Option<u64>,
    limit: usize,
) -> Option<Reservation> {
    let Some(budget) = budget else {
        return Some(Reservation::unlimited());
    };
    let bytes = length.map_or(limit, |n| {
        usize::try_from(n).unwrap_or(usize::MAX).min(limit)
    });
    budget.try_reserve(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let budget = BufferBudget::new(100);
        let mut a = budget.try_reserve(40).unwrap();
        assert!(a.try_grow(30));
        assert!(!a.try_grow(31));
        assert_eq!(budget.in_use(), 70);
        assert!(budget.try_reserve(31).is_none());
        let b = budget.try_reserve(30).unwrap();
        drop(a);
        assert_eq!(budget.in_use(), 30);
        let bytes = b.attach(Bytes::from_static(b"0123456789"));
        assert_eq!(budget.in_use(), 10);
        let copy = bytes.clone();
        drop(bytes);
        assert_eq!(budget.in_use(), 10);
        assert_eq!(&copy[..], b"0123456789");
        drop(copy);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_body_reserves_its_length_or_the_limit() {
        let budget = BufferBudget::new(100);
        assert_eq!(
            for_body(None, Some(1 << 40), 10).map(|r| r.bytes()),
            Some(0)
        );
        let r = for_body(Some(&budget), Some(30), 50).unwrap();
        assert_eq!(r.bytes(), 30);
        let r2 = for_body(Some(&budget), None, 50).unwrap();
        assert_eq!(r2.bytes(), 50);
        assert!(for_body(Some(&budget), None, 50).is_none());
        drop((r, r2));
        assert_eq!(budget.in_use(), 0);
    }
}
