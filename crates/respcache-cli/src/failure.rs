//! [`Failure`]: why a command stopped, printed by `main` as one line.

use std::fmt;
use std::io;

/// Why a command stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error to print as `error: <message>` (exit code 1).
    Error(String),
    /// Standard output was closed early (`respcache ls | head`): stop
    /// quietly.
    BrokenPipe,
}

/// A command's result.
pub(crate) type CliResult<T> = Result<T, Failure>;

impl Failure {
    /// An error with `message`.
    pub(crate) fn new(message: impl fmt::Display) -> Self {
        Failure::Error(message.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Error(format!("cannot write the output: {e}"))
        }
    }
}

/// `text` on one line: line breaks and other control characters escaped.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(one_line("plain é"), "plain é");
    }
}
