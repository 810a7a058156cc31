//! Text people type: trimmed, not empty, at most so many characters, and
//! free of characters that hide or disguise what it says.
//!
//! [`bounded`] is the one place the first three are decided, and
//! [`Characters`] the last. Each kind of text a form sends has a
//! [`TextRule`] that words its errors; user names, whose errors are account
//! errors, call [`bounded`] directly (they are plain ASCII besides). What
//! comes back is what the server stores and sends on. Whole numbers have a
//! [`NumberRule`]: the smallest and largest a form may send.

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

/// Which characters a kind of text refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Characters {
    /// Prose (a message): no control characters (NUL, escapes, line
    /// breaks in a one-line field) and nothing that reverses or isolates
    /// the direction of the text around it. Joiners stay: emoji need them.
    Prose,
    /// A name others see and pick from a list: prose's rules, and no
    /// invisible characters either (zero-width spaces and joiners, word
    /// joiners, byte-order marks), so two names that look alike are alike.
    Name,
}

impl Characters {
    /// Whether `c` is refused.
    pub fn refuses(self, c: char) -> bool {
        let direction = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        let invisible = matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}'
        );
        c.is_control() || direction || (self == Self::Name && invisible)
    }
}

/// The rule for one kind of text (a room name, a message, …).
#[derive(Clone, Copy, Debug)]
pub struct TextRule {
    /// What the text is called, at the start of a sentence: "Room names",
    /// "Title" (the messages read "… can be at most …").
    pub what: &'static str,
    /// The most characters (not bytes) it may have, once trimmed.
    pub max_chars: usize,
    /// What to tell someone who sent nothing (or only spaces).
    pub when_empty: &'static str,
    /// The characters it refuses.
    pub characters: Characters,
}

impl TextRule {
    /// The text, trimmed, if it follows the rule; otherwise
    /// [`AppError::Invalid`] with a message for the person at the keyboard.
    pub fn check(&self, text: &str) -> Result<String, AppError> {
        let text = match bounded(text, self.max_chars) {
            Ok(text) => text,
            Err(TextProblem::Empty) => return Err(AppError::Invalid(self.when_empty.to_owned())),
            Err(TextProblem::TooLong) => {
                return Err(AppError::Invalid(format!(
                    "{} can be at most {} characters long.",
                    self.what, self.max_chars
                )));
            }
        };
        if text.chars().any(|c| self.characters.refuses(c)) {
            return Err(AppError::Invalid(format!(
                "{} cannot contain control characters or characters that hide or turn the text.",
                self.what
            )));
        }
        Ok(text.to_owned())
    }
}

/// The rule for one kind of whole number people type (a quantity, a
/// priority…): the smallest and the largest it may be.
#[derive(Clone, Copy, Debug)]
pub struct NumberRule {
    /// What the number is called, at the start of a sentence: "Priority".
    pub what: &'static str,
    pub min: i64,
    pub max: i64,
}

impl NumberRule {
    /// The number, if it is within the rule's bounds; otherwise
    /// [`AppError::Invalid`] with a message for the person at the keyboard.
    pub fn check(&self, number: i64) -> Result<i64, AppError> {
        if (self.min..=self.max).contains(&number) {
            Ok(number)
        } else {
            Err(AppError::Invalid(format!(
                "{} must be between {} and {}.",
                self.what, self.min, self.max
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_held_to_their_bounds_inclusive() {
        let rule = NumberRule {
            what: "Priority",
            min: 1,
            max: 5,
        };
        assert_eq!(rule.check(1), Ok(1));
        assert_eq!(rule.check(5), Ok(5));
        for outside in [0, 6, i64::MIN, i64::MAX] {
            assert_eq!(
                rule.check(outside),
                Err(AppError::Invalid(
                    "Priority must be between 1 and 5.".into()
                )),
                "{outside}"
            );
        }
    }

    const NOTE: TextRule = TextRule {
        what: "Notes",
        max_chars: 3,
        when_empty: "Write a note.",
        characters: Characters::Prose,
    };

    const NAME: TextRule = TextRule {
        what: "Names",
        max_chars: 40,
        when_empty: "Give it a name.",
        characters: Characters::Name,
    };

    #[test]
    fn control_and_direction_characters_are_refused_everywhere() {
        for bad in [
            "a\0b",
            "a\u{1b}[31mb",
            "a\nb",
            "a\u{202E}b",
            "a\u{2067}b",
            "a\u{85}b",
        ] {
            for rule in [
                NAME,
                TextRule {
                    max_chars: 40,
                    ..NOTE
                },
            ] {
                let refused = rule.check(bad);
                assert!(
                    matches!(&refused, Err(AppError::Invalid(message)) if message.contains("control characters")),
                    "{bad:?}: {refused:?}"
                );
            }
        }
    }

    #[test]
    fn invisible_characters_are_refused_in_names_but_joiners_stay_in_prose() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(
            TextRule {
                max_chars: 40,
                ..NOTE
            }
            .check(family),
            Ok(family.to_owned())
        );
        for hidden in ["ad\u{200B}a", family, "\u{FEFF}ada", "ad\u{2060}a"] {
            assert!(NAME.check(hidden).is_err(), "{hidden:?}");
        }
        assert_eq!(NAME.check("Café Élan"), Ok("Café Élan".to_owned()));
    }

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
