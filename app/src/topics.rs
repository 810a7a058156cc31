//! Topics: the smallest kind of room, and the example to copy for a new one.
//!
//! A topic is a room named by a short slug (`topic:release-notes`) that any
//! logged-in user may join, with presence (who else follows it). Nothing
//! is stored: a topic exists while someone is in it. The dev ping and the
//! hooks playground (`/dev/realtime`) send to topics and join them.
//!
//! A kind of room is two things: a [`realtime::Room`] type, which names
//! the room on the wire and rejects keys that are not valid for the kind,
//! and a join rule on the server ([`register`]), which decides who may
//! join. `docs/guide.md` ("Add a room kind with its rule") walks through both.

use realtime::Room;

/// The longest topic name, in characters.
pub const MAX_TOPIC_LEN: usize = 32;

/// A topic's real-time room: `topic:<slug>`, the slug being 1 to 32
/// lower-case letters, digits and dashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic(pub String);

impl Topic {
    /// The topic called `slug`, if it is a valid topic name.
    pub fn new(slug: &str) -> Option<Self> {
        Self::from_key(slug)
    }
}

impl Room for Topic {
    const KIND: &'static str = "topic";

    fn key(&self) -> String {
        self.0.clone()
    }

    /// One spelling per topic: `Release` and `release` would otherwise be
    /// two rooms with two presence lists.
    fn from_key(key: &str) -> Option<Self> {
        let valid = (1..=MAX_TOPIC_LEN).contains(&key.len())
            && key
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        valid.then(|| Self(key.to_owned()))
    }
}

/// Adds the topics' rule to the hub being built: logged-in users may join
/// any topic; presence is tracked.
#[cfg(feature = "ssr")]
pub fn register(builder: realtime::server::HubBuilder) -> realtime::server::HubBuilder {
    use realtime::server::Refusal;
    builder
        .room::<Topic, _, _>(|request| async move {
            match request.user {
                Some(_) => Ok(()),
                None => Err(Refusal::new("Log in to follow a topic.")),
            }
        })
        .presence::<Topic>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_has_one_spelling() {
        let topic = Topic::new("release-2").expect("a valid topic name");
        assert_eq!(topic.name().as_str(), "topic:release-2");
        assert_eq!(Topic::from_key(&topic.key()), Some(topic));
        let too_long = "x".repeat(MAX_TOPIC_LEN + 1);
        for invalid in ["", "Release", "a b", "a:b", "café", too_long.as_str()] {
            assert_eq!(Topic::new(invalid), None, "{invalid:?}");
        }
    }
}
