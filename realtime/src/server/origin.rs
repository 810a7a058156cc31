//! Which pages may open a WebSocket: the defence against cross-site
//! WebSocket hijacking, where another site's page opens a socket that the
//! browser authenticates with this site's cookie. (The server applies the
//! same rule to server-function calls.)

use axum::http::{HeaderMap, header};

/// The `Origin` rule for upgrades. Browsers always send `Origin` on a
/// WebSocket upgrade; a request without one is not from a browser page
/// (a test, a load generator, a native client) and is accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origins {
    /// Only pages served by this server: the origin's host and port equal
    /// the request's `Host`.
    #[default]
    SameOrigin,
    /// This server's pages, and pages from each of these origins
    /// (`https://app.example.com`, scheme and host and port as browsers send
    /// them).
    SameOriginAnd(Vec<String>),
}

impl Origins {
    /// `Ok` when the upgrade may go ahead; otherwise the refused origin.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().map_err(|_| "(not text)".to_owned())?;
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok());
        let same_origin = authority(origin)
            .zip(host)
            .is_some_and(|(origin, host)| origin.eq_ignore_ascii_case(host));
        if same_origin || self.lists(origin) {
            Ok(())
        } else {
            Err(origin.to_owned())
        }
    }
}

impl Origins {
    /// Whether `origin` is one of the listed origins (this server's own
    /// origin is always allowed and never needs listing).
    pub fn lists(&self, origin: &str) -> bool {
        match self {
            Self::SameOrigin => false,
            Self::SameOriginAnd(allowed) => allowed
                .iter()
                .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin)),
        }
    }
}

/// `host:port` of an origin such as `http://host:port`.
fn authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    matches!(scheme, "http" | "https").then_some(rest.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn the_same_origin_is_allowed() {
        let rule = Origins::SameOrigin;
        assert!(
            rule.check(&headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000"))
                .is_ok()
        );
        assert!(
            rule.check(&headers(Some("https://App.example.com"), "app.example.com"))
                .is_ok()
        );
    }

    #[test]
    fn other_origins_are_refused() {
        let rule = Origins::SameOrigin;
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:3001",
            "null",
            "file://x",
        ] {
            assert_eq!(
                rule.check(&headers(Some(origin), "127.0.0.1:3000")),
                Err(origin.to_owned())
            );
        }
    }

    #[test]
    fn listed_origins_are_allowed() {
        let rule = Origins::SameOriginAnd(vec!["https://app.example.com/".into()]);
        assert!(
            rule.check(&headers(Some("https://app.example.com"), "api.example.com"))
                .is_ok()
        );
        assert!(
            rule.check(&headers(
                Some("https://other.example.com"),
                "api.example.com"
            ))
            .is_err()
        );
    }

    #[test]
    fn requests_without_an_origin_are_not_from_browsers_and_allowed() {
        assert!(
            Origins::SameOrigin
                .check(&headers(None, "127.0.0.1:3000"))
                .is_ok()
        );
    }
}
