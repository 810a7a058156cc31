//! Who is at the other end of a connection.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An account's id, as the application's `users` table numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<i64> for UserId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

impl From<i32> for UserId {
    fn from(id: i32) -> Self {
        Self(id.into())
    }
}

/// One WebSocket connection: one browser tab.
///
/// Random, and told only to the tab it names (in the `welcome` frame), so
/// it doubles as proof that a server-function call comes from that tab.
/// Written as 16 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Gives a `u64` newtype its written form, 16 hexadecimal digits, in
/// `Display`, `Debug`, `FromStr` and serde.
macro_rules! hex_id {
    ($name:ident) => {
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                u64::from_str_radix(text, 16).map(Self)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
// For epochs, event and tab ids, and the backplane's node ids.
pub(crate) use hex_id;

hex_id!(ConnectionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_are_written_in_hex_and_read_back() {
        let id = ConnectionId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<ConnectionId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<ConnectionId>(&json).unwrap(), id);
        assert!("not hex".parse::<ConnectionId>().is_err());
    }
}
