//! Refuses requests that change something when pages of other sites make
//! them (cross-site request forgery).
//!
//! `SameSite=Lax` keeps the session cookie off most cross-site requests, but
//! not all: a form on another site can still log a visitor in as someone
//! else (log-in CSRF), and a sibling subdomain counts as the same site. So
//! every request but a `GET`, `HEAD` or `OPTIONS` (server functions take
//! `POST`; a route a product adds may take `PUT` or `DELETE`), whatever its
//! path, must come from this server's own pages or from an origin listed in
//! `REALTIME_ALLOWED_ORIGINS`:
//!
//! - When the browser says where the request comes from with
//!   `Sec-Fetch-Site`, `same-origin` (and `none`: the person typed it) is
//!   allowed; `same-site` and `cross-site` only from a listed origin.
//! - Otherwise the `Origin` header must be this server's own (its `Host`)
//!   or a listed one, the same rule as for WebSocket upgrades.
//! - A request with neither header is not from a browser page (a test, a
//!   script, a native client) and goes through: such clients carry no
//!   visitor's cookies.
//!
//! A refused call gets 403 with an [`AppError::Forbidden`] that says why.

use app::error::AppError;
use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use realtime::server::Origins;

/// Axum middleware: see the module documentation.
pub async fn refuse_cross_site(
    State(origins): State<Origins>,
    request: Request,
    next: Next,
) -> Response {
    // Reading is safe: what a page of another site reads, it cannot see.
    let changes_something = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_something && let Err(refused) = check(&origins, request.headers()) {
        tracing::warn!(from = %refused, path = %request.uri().path(), "cross-site call refused");
        let error = AppError::Forbidden(
            "This request came from another site, so it was refused. Use the site's own page."
                .into(),
        );
        return (StatusCode::FORBIDDEN, Json(error)).into_response();
    }
    next.run(request).await
}

/// `Ok` when the request may go ahead; otherwise where it came from.
fn check(origins: &Origins, headers: &HeaderMap) -> Result<(), String> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|site| site.to_str().unwrap_or("(not text)"));
    match fetch_site {
        Some("same-origin" | "none") => Ok(()),
        Some(site) => match headers.get(header::ORIGIN) {
            Some(origin) if origins.lists(origin.to_str().unwrap_or_default()) => Ok(()),
            Some(origin) => Err(format!(
                "{site}: {}",
                origin.to_str().unwrap_or("(not text)")
            )),
            None => Err(site.to_owned()),
        },
        None => origins.check(headers),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    const HOST: (&str, &str) = ("host", "app.example.com");

    #[test]
    fn the_sites_own_pages_and_non_browsers_go_through() {
        let rule = Origins::SameOrigin;
        assert!(check(&rule, &headers(&[HOST])).is_ok());
        assert!(
            check(
                &rule,
                &headers(&[
                    HOST,
                    ("origin", "https://app.example.com"),
                    ("x-forwarded-proto", "https")
                ])
            )
            .is_ok()
        );
        assert!(
            check(
                &rule,
                &headers(&[HOST, ("origin", "http://app.example.com")])
            )
            .is_ok()
        );
        assert!(check(&rule, &headers(&[HOST, ("sec-fetch-site", "same-origin")])).is_ok());
    }

    #[test]
    fn other_sites_and_sibling_subdomains_are_refused() {
        let rule = Origins::SameOrigin;
        for pairs in [
            &[HOST, ("origin", "https://evil.example")][..],
            // This host, over the other scheme: another origin.
            &[
                HOST,
                ("origin", "http://app.example.com"),
                ("x-forwarded-proto", "https"),
            ],
            &[HOST, ("origin", "https://blog.example.com")],
            &[HOST, ("origin", "null")],
            &[
                HOST,
                ("origin", "https://blog.example.com"),
                ("sec-fetch-site", "same-site"),
            ],
            &[HOST, ("sec-fetch-site", "cross-site")],
        ] {
            assert!(check(&rule, &headers(pairs)).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn listed_origins_go_through_from_another_site() {
        let rule = Origins::SameOriginAnd(vec!["https://blog.example.com".into()]);
        let pairs = [
            HOST,
            ("origin", "https://blog.example.com"),
            ("sec-fetch-site", "same-site"),
        ];
        assert!(check(&rule, &headers(&pairs)).is_ok());
    }
}
