//! How cases fail: a [`Failure`] with a message, returned (never panicked),
//! so a failing case reports exactly what a user would notice.

use std::fmt;

/// Why a case failed.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<respcache_core::Error> for Failure {
    fn from(e: respcache_core::Error) -> Self {
        Failure(format!("unexpected error: {e}"))
    }
}

/// What a case returns.
pub type CaseResult = Result<(), Failure>;

/// Fails the case with a formatted message unless `cond` holds.
#[macro_export]
#[doc(hidden)]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure(format!($($msg)+)));
        }
    };
}

/// Fails the case unless `left == right`, showing both.
#[macro_export]
#[doc(hidden)]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err($crate::Failure(format!(
                        "{}: expected {:?}, got {:?}",
                        format!($($msg)+),
                        r,
                        l
                    )));
                }
            }
        }
    };
}
