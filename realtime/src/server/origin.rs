//! Which pages may open a WebSocket: the defence against cross-site
//! WebSocket hijacking, where another site's page opens a socket that the
//! browser authenticates with this site's cookie. (The server applies the
//! same rule to server-function calls.)

use axum::http::{HeaderMap, header};

/// The `Origin` rule for upgrades. Browsers always send `Origin` on a
/// WebSocket upgrade; a request without one is not from a browser page
/// (a test, a load generator, a native client) and is accepted.
///
/// This server's own origin is its scheme, host and port: the `Host`, and
/// `http`, or the scheme a proxy in front says the browser used
/// (`X-Forwarded-Proto`, as TLS-terminating proxies send it). A page can
/// set neither header, so reading the proxy's word from anyone is safe
/// here: a script that forges it could as well send no `Origin`, and
/// carries no visitor's cookies. So a page served over plain http cannot
/// act on a site served over https, nor the reverse.
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
        let same_origin =
            origin
                .split_once("://")
                .zip(host)
                .is_some_and(|((scheme, authority), host)| {
                    scheme.eq_ignore_ascii_case(own_scheme(headers))
                        && authority.trim_end_matches('/').eq_ignore_ascii_case(host)
                });
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

/// The scheme browsers reach this server with: what the proxy in front
/// says (the first of `X-Forwarded-Proto`'s values: the one the browser
/// used), else `http`, the only one the server speaks itself.
fn own_scheme(headers: &HeaderMap) -> &str {
    headers
        .get("x-forwarded-proto")
        .and_then(|proto| proto.to_str().ok())
        .and_then(|proto| proto.split(',').next())
        .map(str::trim)
        .filter(|proto| matches!(*proto, "http" | "https"))
        .unwrap_or("http")
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

    fn behind_tls(origin: &str, host: &str) -> HeaderMap {
        let mut headers = headers(Some(origin), host);
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
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
            rule.check(&behind_tls("https://App.example.com", "app.example.com"))
                .is_ok()
        );
    }

    #[test]
    fn the_same_host_with_another_scheme_is_another_origin() {
        let rule = Origins::SameOrigin;
        for (request, origin) in [
            (
                headers(Some("https://127.0.0.1:3000"), "127.0.0.1:3000"),
                "https://127.0.0.1:3000",
            ),
            (
                behind_tls("http://app.example.com", "app.example.com"),
                "http://app.example.com",
            ),
            (
                headers(Some("ws://127.0.0.1:3000"), "127.0.0.1:3000"),
                "ws://127.0.0.1:3000",
            ),
        ] {
            assert_eq!(rule.check(&request), Err(origin.to_owned()));
        }
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
