//! The identity rules, end to end: sign-up, log-in, log-out and the session
//! cookie, through the real router on a real SQLite database.

mod support;

use std::time::Duration;

use app::{
    auth::{
        AuthError, MAX_PASSWORD_LEN, MAX_USER_NAME_LEN, MIN_PASSWORD_LEN,
        session::{SECURE_SESSION_COOKIE_NAME, SESSION_COOKIE_NAME},
    },
    error::AppError,
};
use axum::http::{StatusCode, header};
use server::config::SessionConfig;
use support::{Browser, TestApp, TestResponse, encode_form};

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn signing_up_creates_the_account_and_logs_it_in() {
    let app = TestApp::new().await;
    let mut browser = app.browser();

    let user = browser.sign_up("ada", PASSWORD).await.unwrap();
    assert_eq!(user.name, "ada");
    assert!(browser.cookie.is_some(), "signing up sets a session cookie");

    let me = browser.current_user().await.unwrap();
    assert_eq!(me, Some(user));
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_hashes() {
    let app = TestApp::new().await;
    app.browser().sign_up("ada", PASSWORD).await.unwrap();

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.database.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains(PASSWORD));
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_lax() {
    let app = TestApp::new().await;
    let response = app
        .browser()
        .post(
            "/api/auth/sign_up",
            &[("name", "ada"), ("password", PASSWORD)],
        )
        .await;

    let cookie = response.session_cookie().expect("a session cookie");
    assert!(cookie.has("httponly"), "{cookie:?}");
    assert!(cookie.has("samesite=lax"), "{cookie:?}");
    assert!(
        !cookie.has("secure"),
        "plain http needs Secure off: {cookie:?}"
    );
    assert_eq!(cookie.max_age(), Some(3600), "{cookie:?}");
}

/// A server configured for TLS, its sessions expiring after 120 s, and the
/// session cookie it gave Ada at sign-up.
async fn ada_behind_tls() -> (TestApp, support::SetCookie) {
    let app = TestApp::with_session(SessionConfig {
        secure: true,
        expiry: Duration::from_secs(120),
        ..support::default_session()
    })
    .await;
    let response = app
        .browser()
        .post(
            "/api/auth/sign_up",
            &[("name", "ada"), ("password", PASSWORD)],
        )
        .await;
    let cookie = response.session_cookie().expect("a session cookie");
    (app, cookie)
}

#[tokio::test]
async fn the_cookie_follows_the_secure_and_expiry_settings() {
    let (_app, cookie) = ada_behind_tls().await;
    assert!(cookie.has("secure"), "{cookie:?}");
    assert_eq!(cookie.max_age(), Some(120), "{cookie:?}");
    // A host cookie: no sibling subdomain can set one of that name.
    assert_eq!(cookie.name, SECURE_SESSION_COOKIE_NAME);
    assert!(cookie.name.starts_with("__Host-"), "{cookie:?}");
    assert!(cookie.has("path=/"), "{cookie:?}");
    assert!(
        !cookie.attributes.iter().any(|a| a.starts_with("domain")),
        "{cookie:?}"
    );
}

#[tokio::test]
async fn a_session_in_use_has_its_expiry_moved_at_most_once_per_period() {
    // Written back on every use a second apart: the expiry moves.
    let mut config = support::test_config(support::default_session()).await;
    config.app.session_touch_every = Duration::ZERO;
    let app = TestApp::with_config(config).await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let at_log_in = app.latest_session_expiry().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ada.current_user().await.unwrap().is_some());
    assert!(app.latest_session_expiry().await > at_log_in);

    // With the default period, a use within the minute writes nothing.
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let at_log_in = app.latest_session_expiry().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ada.current_user().await.unwrap().is_some());
    assert_eq!(app.latest_session_expiry().await, at_log_in);
}

/// A session of an hour, not stored yet.
fn session_record() -> tower_sessions::session::Record {
    tower_sessions::session::Record {
        id: Default::default(),
        data: Default::default(),
        expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
            + tower_sessions::cookie::time::Duration::hours(1),
    }
}

#[tokio::test]
async fn a_session_written_back_after_it_ended_stays_ended() {
    use tower_sessions::SessionStore;
    let app = TestApp::new().await;
    let store = &app.database.sessions;
    let mut record = session_record();
    store.create(&mut record).await.unwrap();
    // Logged out while another request held it; that request touches it.
    store.delete(&record.id).await.unwrap();
    store.save(&record).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_session_logged_out_while_a_request_writes_it_back_stays_ended() {
    use tower_sessions::SessionStore;
    let app = TestApp::new().await;
    let store = app.database.sessions.clone();
    let mut record = session_record();
    store.create(&mut record).await.unwrap();
    // The log-out's delete, not committed yet: it holds the database's
    // write lock (SQLite) or the row's (PostgreSQL).
    let sql = match app.database.backend() {
        server::database::Backend::Sqlite => "DELETE FROM tower_sessions WHERE id = $1",
        server::database::Backend::Postgres => "DELETE FROM tower_sessions.session WHERE id = $1",
    };
    let mut logging_out = app.database.pool.begin().await.unwrap();
    sqlx::query(sql)
        .bind(record.id.to_string())
        .execute(&mut *logging_out)
        .await
        .unwrap();
    // A request that read the session before it writes it back now, and
    // waits for the log-out; a check of the row, then a write, would see
    // the row, then insert it again.
    let saving = tokio::spawn({
        let (store, record) = (store.clone(), record.clone());
        async move { store.save(&record).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    logging_out.commit().await.unwrap();
    saving.await.unwrap().unwrap();
    assert!(store.load(&record.id).await.unwrap().is_none());
}

/// Who `browser` is (`/api/auth/me`), asking with `planted`, a `Cookie`
/// header another page set, sent beside its own cookie (if any).
async fn me_beside(browser: &mut Browser<'_>, planted: &[u8]) -> TestResponse {
    let request = browser
        .request("POST", "/api/auth/me")
        .header(
            axum::http::header::COOKIE,
            axum::http::HeaderValue::from_bytes(planted).unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    browser.send(request).await
}

#[tokio::test]
async fn a_request_with_two_session_cookies_is_refused_before_its_session_is_read() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut mallory = app.browser_at("127.0.0.2");
    mallory.sign_up("mallory", PASSWORD).await.unwrap();
    // Mallory's cookie, planted for the whole domain by a sibling site,
    // arrives beside Ada's own.
    let planted = format!("{SESSION_COOKIE_NAME}={}", mallory.cookie.clone().unwrap());
    let response = me_beside(&mut ada, planted.as_bytes()).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        matches!(response.json::<AppError>(), AppError::Invalid(message) if message.contains("two login cookies")),
        "{}",
        response.body
    );
    // With her own cookie alone, Ada is herself.
    assert_eq!(ada.current_user().await.unwrap().unwrap().name, "ada");
}

#[tokio::test]
async fn behind_tls_a_planted_plain_session_cookie_shuts_nobody_out() {
    let (app, cookie) = ada_behind_tls().await;
    let own = cookie.value;
    // Any sibling can set `session` for the domain; only `__Host-session`
    // is read here, so it is not a second login cookie.
    let cookies = format!("{SECURE_SESSION_COOKIE_NAME}={own}; {SESSION_COOKIE_NAME}=junk");
    let response = me_beside(&mut app.browser(), cookies.as_bytes()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert!(response.body.contains("\"ada\""), "{}", response.body);
    // Two of the name that is read still are.
    let cookies = format!("{SECURE_SESSION_COOKIE_NAME}={own}; {SECURE_SESSION_COOKIE_NAME}=junk");
    let response = me_beside(&mut app.browser(), cookies.as_bytes()).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.body
    );
}

#[tokio::test]
async fn a_session_cookie_under_a_percent_encoded_name_is_never_read() {
    let app = TestApp::new().await;
    let mut mallory = app.browser_at("127.0.0.2");
    mallory.sign_up("mallory", PASSWORD).await.unwrap();
    let mallorys = mallory.cookie.clone().unwrap();
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut visitor = app.browser_at("127.0.0.3");
    // Spelled with a percent-encoded letter, which browsers take from a
    // sibling as another cookie than ours, and the session layer would
    // decode into ours; in a header of its own, or beside a cookie whose
    // value is not ASCII (which the session layer reads as UTF-8).
    for name in [SESSION_COOKIE_NAME, SECURE_SESSION_COOKIE_NAME] {
        let encoded = name.replacen('s', "%73", 1);
        for planted in [
            format!("{encoded}={mallorys}"),
            format!("theme=caf\u{e9}; {encoded}={mallorys}"),
        ] {
            // Beside Ada's own: she is still Ada.
            let response = me_beside(&mut ada, planted.as_bytes()).await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.body);
            assert!(response.body.contains("\"ada\""), "{}", response.body);
            // Alone: a visitor stays a visitor, not Mallory.
            let response = me_beside(&mut visitor, planted.as_bytes()).await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.body);
            assert!(!response.body.contains("mallory"), "{}", response.body);
        }
    }
}

#[tokio::test]
async fn bad_sign_up_input_is_refused_with_a_reason_and_writes_nothing() {
    let app = TestApp::new().await;
    let too_long_name = "n".repeat(MAX_USER_NAME_LEN + 1);
    let short_password = "p".repeat(MIN_PASSWORD_LEN - 1);
    let long_password = "p".repeat(MAX_PASSWORD_LEN + 1);
    let cases = [
        ("", PASSWORD, AuthError::EmptyUserName),
        ("   ", PASSWORD, AuthError::EmptyUserName),
        (
            too_long_name.as_str(),
            PASSWORD,
            AuthError::UserNameTooLong {
                max: MAX_USER_NAME_LEN,
            },
        ),
        ("ada lovelace", PASSWORD, AuthError::UserNameInvalid),
        (
            "ada",
            short_password.as_str(),
            AuthError::PasswordTooShort {
                min: MIN_PASSWORD_LEN,
            },
        ),
        (
            "ada",
            long_password.as_str(),
            AuthError::PasswordTooLong {
                max: MAX_PASSWORD_LEN,
            },
        ),
        // What attackers try first.
        ("ada", "P@ssw0rd", AuthError::PasswordTooCommon),
        ("ada", "qwertyuiop", AuthError::PasswordTooCommon),
    ];

    for (name, password, expected) in cases {
        let mut browser = app.browser();
        let response = browser
            .post(
                "/api/auth/sign_up",
                &[("name", name), ("password", password)],
            )
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(response.json::<AppError>(), expected.into(), "{name:?}");
        assert!(browser.cookie.is_none(), "no session for {name:?}");
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn a_taken_name_is_refused_whatever_its_case() {
    let app = TestApp::new().await;
    app.browser().sign_up("Ada", PASSWORD).await.unwrap();

    let mut second = app.browser();
    let response = second
        .post(
            "/api/auth/sign_up",
            &[("name", "ada"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(
        response.json::<AppError>(),
        AuthError::NameTaken { name: "ada".into() }.into()
    );
    assert!(second.cookie.is_none());
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn concurrent_sign_ups_for_one_name_create_one_account() {
    let app = TestApp::new().await;
    let (mut first, mut second) = (app.browser(), app.browser());

    let (a, b) = tokio::join!(
        first.sign_up("ada", PASSWORD),
        second.sign_up("ada", PASSWORD)
    );

    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let refused = if a.is_ok() { b } else { a };
    assert_eq!(
        refused,
        Err(AuthError::NameTaken { name: "ada".into() }.into())
    );
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn logging_in_works_with_any_case_of_the_name() {
    let app = TestApp::new().await;
    let created = app.browser().sign_up("Ada", PASSWORD).await.unwrap();

    let mut browser = app.browser();
    let user = browser.log_in("ada", PASSWORD).await.unwrap();
    assert_eq!(user, created);
    assert_eq!(browser.current_user().await.unwrap(), Some(created));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_name_look_the_same() {
    let app = TestApp::new().await;
    app.browser().sign_up("ada", PASSWORD).await.unwrap();

    let mut browser = app.browser();
    let wrong_password = browser
        .post(
            "/api/auth/log_in",
            &[("name", "ada"), ("password", "not the password")],
        )
        .await;
    let unknown_name = browser
        .post(
            "/api/auth/log_in",
            &[("name", "grace"), ("password", "not the password")],
        )
        .await;
    let invalid_name = browser
        .post(
            "/api/auth/log_in",
            &[("name", "<grace>"), ("password", "not the password")],
        )
        .await;

    for response in [&wrong_password, &unknown_name, &invalid_name] {
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.json::<AppError>(),
            AuthError::WrongCredentials.into()
        );
        assert_eq!(response.body, wrong_password.body);
    }
    assert!(browser.cookie.is_none());
    assert_eq!(browser.current_user().await, Ok(None));
}

#[tokio::test]
async fn logging_in_replaces_the_session_id() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    browser.sign_up("ada", PASSWORD).await.unwrap();
    let before = browser.cookie.clone().unwrap();

    browser.log_in("ada", PASSWORD).await.unwrap();
    let after = browser.cookie.clone().unwrap();
    assert_ne!(before, after, "the id is cycled at log-in");

    // The old id is worthless now: whoever held it is not logged in.
    let mut holder_of_old_id = app.browser();
    holder_of_old_id.cookie = Some(before);
    assert_eq!(
        holder_of_old_id.current_user().await,
        Err(AuthError::SessionExpired.into())
    );
}

#[tokio::test]
async fn logging_out_ends_the_session_and_removes_the_cookie() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    browser.sign_up("ada", PASSWORD).await.unwrap();
    let old_cookie = browser.cookie.clone();

    let response = browser.post("/api/auth/log_out", &[]).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.session_cookie().is_some_and(|c| c.is_removal()));
    assert_eq!(browser.current_user().await, Ok(None));

    let mut replay = app.browser();
    replay.cookie = old_cookie;
    assert_eq!(
        replay.current_user().await,
        Err(AuthError::SessionExpired.into())
    );
}

#[tokio::test]
async fn logging_out_without_a_session_is_harmless() {
    let app = TestApp::new().await;
    assert_eq!(app.browser().log_out().await, Ok(()));
}

#[tokio::test]
async fn a_forged_cookie_is_reported_and_removed() {
    let app = TestApp::new().await;
    // One that is not even a session id, and one that is well-formed but
    // was never issued.
    for forged in ["not-a-session-id", "AAAAAAAAAAAAAAAAAAAAAA"] {
        let mut browser = app.browser();
        browser.cookie = Some(forged.to_owned());

        let response = browser.post("/api/auth/me", &[]).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{forged}");
        assert_eq!(
            response.json::<AppError>(),
            AuthError::SessionExpired.into()
        );
        assert!(browser.cookie.is_none(), "the cookie is removed: {forged}");
        assert_eq!(browser.current_user().await, Ok(None), "{forged}");
    }
}

#[tokio::test]
async fn an_expired_session_is_reported_and_removed() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    browser.sign_up("ada", PASSWORD).await.unwrap();

    // Expire every session, as time passing would.
    app.expire_all_sessions().await;

    assert_eq!(
        browser.current_user().await,
        Err(AuthError::SessionExpired.into())
    );
    assert!(browser.cookie.is_none());
    assert_eq!(browser.current_user().await, Ok(None));
}

#[tokio::test]
async fn the_header_shows_who_is_logged_in() {
    let app = TestApp::new().await;
    let mut browser = app.browser();

    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(r#"href="/login""#),
        "visitors get a log-in link"
    );

    browser.sign_up("ada", PASSWORD).await.unwrap();
    let page = browser.get("/").await;
    assert!(page.body.contains("Logged in as"), "{}", page.body);
    assert!(
        page.body.contains("Logged in as <strong>ada<"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_stale_cookie_on_a_page_shows_a_notice_and_is_removed() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    browser.cookie = Some("AAAAAAAAAAAAAAAAAAAAAA".into());

    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Your session has expired"),
        "{}",
        page.body
    );
    assert!(browser.cookie.is_none());
}

#[tokio::test]
async fn unknown_pages_are_404() {
    let app = TestApp::new().await;
    let page = app.browser().get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Page not found"));
}

/// Without JavaScript a form posts as HTML; Leptos answers with a redirect:
/// home on success, back to the form with the error in the URL on failure.
#[tokio::test]
async fn forms_work_without_javascript() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let form_post = |browser: &support::Browser<'_>, path: &str, form: &[(&str, &str)]| {
        browser
            .request("POST", path)
            .header(header::ACCEPT, "text/html")
            .header(header::REFERER, "http://127.0.0.1:3000/signup")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(encode_form(form)))
            .unwrap()
    };

    let request = form_post(
        &browser,
        "/api/auth/sign_up",
        &[("name", ""), ("password", PASSWORD)],
    );
    let response = browser.send(request).await;
    assert_eq!(response.status, StatusCode::FOUND);
    let location = response.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:3000/signup?"),
        "{location}"
    );
    assert!(location.contains("__err="), "{location}");
    assert!(location.contains("__sig="), "{location}");
    // The form page, rendered at that URL, shows the message.
    let path = location.trim_start_matches("http://127.0.0.1:3000");
    let page = browser.get(path).await;
    assert!(
        page.body.contains("Please choose a user name."),
        "{}",
        page.body
    );
    // With its signature altered, it is not this server's: the page is
    // asked for again without it.
    let forged = path.replace("__sig=", "__sig=00");
    let page = browser.get(&forged).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{forged}");
    assert_eq!(page.headers[header::LOCATION], "/signup");

    let request = form_post(
        &browser,
        "/api/auth/sign_up",
        &[("name", "ada"), ("password", PASSWORD)],
    );
    let response = browser.send(request).await;
    assert_eq!(response.status, StatusCode::FOUND);
    assert_eq!(response.headers[header::LOCATION], "/");
    assert!(browser.get("/").await.body.contains("<strong>ada<"));
}

#[tokio::test]
async fn a_form_error_written_into_a_link_is_not_shown() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    let forged = format!("/login?__path=%2Fapi%2Fauth%2Flog_in&__err={LOCKED}");
    let page = browser.get(&forged).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/login");
    let page = browser.get("/login").await;
    assert!(!page.body.contains("locked"), "{}", page.body);

    // Nor sent to another site on the way.
    let page = browser
        .get("//evil.example?__err=eyJJbnZhbGlkIjoieCJ9")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/evil.example");

    // Nor signed by the server when a caller writes it into the `Referer`
    // that Leptos sends the form back to, whole or relative (which Leptos
    // would carry back as it is).
    for referer in ["http://127.0.0.1:3000/login", "/login"] {
        let referer = format!("{referer}?__path=%2Fapi%2Fauth%2Flog_in&__err={LOCKED}");
        let request = browser
            .request("POST", "/api/auth/log_in")
            .header(header::ACCEPT, "text/html")
            .header(header::REFERER, referer)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(encode_form(&[
                ("name", "ada"),
                ("password", "wrong password"),
            ])))
            .unwrap();
        let response = browser.send(request).await;
        let location = response.headers[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!location.contains(LOCKED), "{location}");
        let page = browser
            .get(location.trim_start_matches("http://127.0.0.1:3000"))
            .await;
        assert!(!page.body.contains("locked"), "{}", page.body);
    }
}

/// `{"Invalid":"Your account is locked: call +1 555 0100"}`, as Leptos
/// would carry it in a URL.
const LOCKED: &str = "eyJJbnZhbGlkIjoiWW91ciBhY2NvdW50IGlzIGxvY2tlZDogY2FsbCArMSA1NTUgMDEwMCJ9";

#[tokio::test]
async fn health_reports_the_database_and_nothing_else() {
    let app = TestApp::new().await;
    let response = app.browser().get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    // How events reach other processes is for operators (the metrics
    // listener), not for anyone who asks.
    assert_eq!(
        response.json::<serde_json::Value>(),
        serde_json::json!({ "status": "ok" })
    );

    app.database.pool.close().await;
    let response = app.browser().get("/health").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_people_page_lists_the_newest_accounts_to_logged_in_users_only() {
    let app = TestApp::new().await;
    let visitor = app.browser().post("/api/people/newest", &[]).await;
    assert_eq!(visitor.status, StatusCode::UNAUTHORIZED);
    assert_eq!(visitor.json::<AppError>(), AppError::NotLoggedIn);

    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    app.browser().sign_up("grace", PASSWORD).await.unwrap();
    let people = ada.post("/api/people/newest", &[]).await;
    assert_eq!(people.status, StatusCode::OK, "{}", people.body);
    let names: Vec<String> = people
        .json::<Vec<app::auth::User>>()
        .into_iter()
        .map(|user| user.name)
        .collect();
    assert_eq!(names, ["grace", "ada"], "newest first");
}
