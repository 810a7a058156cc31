//! Text people type: trimmed, not empty, and at most so many characters.
//!
//! [`bounded`] is the one place those three things are decided. Each kind
//! of text a form sends has a [`TextRule`] that words its errors; user
//! names, whose errors are account errors, call [`bounded`] directly. What
//! comes back is what the server stores and sends on.

use crate::error::AppError;

/// Why a text breaks its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextProblem {
    /// Nothing, or only whitespace.
    Empty,
    /// More characters than allowed, once trimmed.
    TooLong,
}

/// `text` without its surrounding whitespace, if that is not empty and has
/// at most `max_chars` characters (not bytes).
pub fn bounded(text: &str, max_chars: usize) -> Result<&str, TextProblem> {
    let text = text.trim();
    if text.is_empty() {
        Err(TextProblem::Empty)
    } else if text.chars().count() > max_chars {
        Err(TextProblem::TooLong)
    } else {
        Ok(text)
    }
}

/// The rule for one kind of text (a room name, a message, …).
#[derive(Clone, Copy, Debug)]
pub struct TextRule {
    /// What the text is called, in the plural, at the start of a sentence:
    /// "Room names".
    pub what: &'static str,
    /// The most characters (not bytes) it may have, once trimmed.
    pub max_chars: usize,
    /// What to tell someone who sent nothing (or only spaces).
    pub when_empty: &'static str,
}

impl TextRule {
    /// The text, trimmed, if it follows the rule; otherwise
    /// [`AppError::Invalid`] with a message for the person at the keyboard.
    pub fn check(&self, text: &str) -> Result<String, AppError> {
        match bounded(text, self.max_chars) {
            Ok(text) => Ok(text.to_owned()),
            Err(TextProblem::Empty) => Err(AppError::Invalid(self.when_empty.to_owned())),
            Err(TextProblem::TooLong) => Err(AppError::Invalid(format!(
                "{} can be at most {} characters long.",
                self.what, self.max_chars
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: TextRule = TextRule {
        what: "Notes",
        max_chars: 3,
        when_empty: "Write a note.",
    };

    #[test]
    fn text_is_trimmed() {
        assert_eq!(NOTE.check("  abc \n"), Ok("abc".into()));
    }

    #[test]
    fn empty_and_blank_text_is_refused_with_the_rules_message() {
        for blank in ["", "   ", "\t\n"] {
            assert_eq!(
                NOTE.check(blank),
                Err(AppError::Invalid("Write a note.".into()))
            );
        }
    }

    #[test]
    fn the_limit_counts_characters_after_trimming() {
        assert_eq!(NOTE.check(" ééé "), Ok("ééé".into()));
        assert_eq!(
            NOTE.check("abcd"),
            Err(AppError::Invalid(
                "Notes can be at most 3 characters long.".into()
            ))
        );
    }
}
