//! The real-time layer inside the application: sockets that belong to the
//! session's user, logging out, anonymous visitors, and server functions
//! that know which tab called them. Real sessions, a real database, real
//! WebSocket connections.

mod support;

use app::events::SomethingHappened;
use axum::http::{StatusCode, header};
use leptos::prelude::ServerFnError;
use realtime::{
    Event,
    protocol::{Resume, close},
    stream::TabId,
};
use realtime_testing::TestClient;
use serde::{Deserialize, Serialize};
use support::TestApp;

const PASSWORD: &str = "correct horse battery";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Note(String);

impl Event for Note {
    const NAME: &'static str = "Note";
}

/// A server function for these tests only: it emits `Note(text)` to
/// everyone, or to everyone but the calling tab.
#[leptos::server(prefix = "/api", endpoint = "test/shout")]
async fn shout(text: String, others_only: bool) -> Result<(), ServerFnError> {
    let events = app::AppContext::expect()
        .map_err(|error| ServerFnError::new(error.to_string()))?
        .events;
    let emit = if others_only {
        events.except_caller()
    } else {
        events.target(realtime::server::Target::everyone())
    };
    emit.emit(&Note(text))
        .map_err(|error| ServerFnError::new(error.to_string()))?;
    Ok(())
}

#[tokio::test]
async fn a_socket_belongs_to_the_sessions_user() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut browser = app.browser();
    let user = browser.sign_up("ada", PASSWORD).await.unwrap();

    let socket = browser.open_socket(address).await;
    assert_eq!(socket.user, Some(user.id));

    let visitor = app.browser().open_socket(address).await;
    assert_eq!(visitor.user, None);
}

#[tokio::test]
async fn a_forged_cookie_gets_an_anonymous_socket() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut browser = app.browser();
    browser.cookie = Some("AAAAAAAAAAAAAAAAAAAAAA".into());
    assert_eq!(browser.open_socket(address).await.user, None);
}

#[tokio::test]
async fn user_events_reach_every_tab_of_the_user_and_no_visitor() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut ada = app.browser();
    let user = ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut tab1 = ada.open_socket(address).await;
    let mut tab2 = ada.open_socket(address).await;
    let mut visitor = app.browser().open_socket(address).await;

    assert_eq!(
        app.hub.to(user.id).emit(&Note("for ada".into())).unwrap(),
        2
    );
    assert_eq!(tab1.event::<Note>().await, Note("for ada".into()));
    assert_eq!(tab2.event::<Note>().await, Note("for ada".into()));
    app.hub.emit(&Note("for all".into())).unwrap();
    assert_eq!(
        visitor.event::<Note>().await,
        Note("for all".into()),
        "the visitor got only this"
    );
}

#[tokio::test]
async fn logging_out_closes_the_sessions_sockets_at_once() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut laptop = app.browser();
    let user = laptop.sign_up("ada", PASSWORD).await.unwrap();
    let mut phone = app.browser();
    phone.log_in("ada", PASSWORD).await.unwrap();
    let mut laptop_tab1 = laptop.open_socket(address).await;
    let mut laptop_tab2 = laptop.open_socket(address).await;
    let mut phone_tab = phone.open_socket(address).await;

    laptop.log_out().await.unwrap();
    // Closed before the log-out answered: nothing sent now reaches them.
    assert_eq!(app.hub.to(user.id).emit(&Note("after".into())).unwrap(), 1);
    assert_eq!(laptop_tab1.closed().await, Some(close::SESSION_ENDED));
    assert_eq!(laptop_tab2.closed().await, Some(close::SESSION_ENDED));
    assert_eq!(phone_tab.event::<Note>().await, Note("after".into()));
}

#[tokio::test]
async fn logging_in_as_someone_else_closes_the_old_sessions_sockets() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    app.browser().sign_up("grace", PASSWORD).await.unwrap();
    let mut browser = app.browser();
    browser.sign_up("ada", PASSWORD).await.unwrap();
    let mut as_ada = browser.open_socket(address).await;

    browser.log_in("grace", PASSWORD).await.unwrap();
    assert_eq!(as_ada.closed().await, Some(close::SESSION_ENDED));
    let as_grace = browser.open_socket(address).await;
    assert_ne!(as_grace.user, as_ada.user);
}

/// A call to `shout` as the browser runtime makes it: naming the calling
/// tab (its connection and its id).
fn shout_from(
    browser: &support::Browser<'_>,
    tab: TabId,
    connection: realtime::ConnectionId,
    text: &str,
) -> axum::http::Request<axum::body::Body> {
    browser
        .request("POST", "/api/test/shout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            realtime::protocol::CONNECTION_HEADER,
            connection.to_string(),
        )
        .header(realtime::protocol::TAB_HEADER, tab.to_string())
        .body(axum::body::Body::from(support::encode_form(&[
            ("text", text),
            ("others_only", "true"),
        ])))
        .unwrap()
}

fn as_tab(tab: TabId) -> Resume {
    Resume {
        tab: Some(tab),
        since: Vec::new(),
    }
}

#[tokio::test]
async fn a_server_function_knows_the_calling_tab_live_and_in_replays() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut browser = app.browser();
    browser.sign_up("ada", PASSWORD).await.unwrap();
    let tab = TabId(0x0a0a);
    let mut caller = browser.open_tab(address, &as_tab(tab)).await;
    let before = caller.positions.clone();
    let mut other_tab = browser.open_tab(address, &as_tab(TabId(0x0b0b))).await;
    let mut visitor = app.browser().open_socket(address).await;

    let shout = shout_from(&browser, tab, caller.connection, "hello");
    assert_eq!(browser.send(shout).await.status, StatusCode::OK);

    assert_eq!(other_tab.event::<Note>().await, Note("hello".into()));
    assert_eq!(visitor.event::<Note>().await, Note("hello".into()));
    // The caller's next event is the one after: it never got "hello".
    app.hub.emit(&Note("next".into())).unwrap();
    assert_eq!(caller.event::<Note>().await, Note("next".into()));

    // The same tab, back from before "hello": not replayed it either.
    let resume = Resume {
        tab: Some(tab),
        since: before.into_iter().collect(),
    };
    let mut again = browser.open_tab(address, &resume).await;
    assert_eq!(again.event::<Note>().await, Note("next".into()));
}

#[tokio::test]
async fn a_call_naming_a_tab_of_another_session_leaves_out_nobody() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let tab = TabId(0x0a0a);
    let mut victim = ada.open_tab(address, &as_tab(tab)).await;

    // Mallory learnt Ada's tab and connection, and names them as hers.
    let mut mallory = app.browser();
    mallory.sign_up("mallory", PASSWORD).await.unwrap();
    let forged = shout_from(&mallory, tab, victim.connection, "hidden?");
    assert_eq!(mallory.send(forged).await.status, StatusCode::OK);
    assert_eq!(victim.event::<Note>().await, Note("hidden?".into()));

    // A visitor naming it, too.
    let mut stranger = app.browser();
    let forged = shout_from(&stranger, tab, victim.connection, "still here");
    assert_eq!(stranger.send(forged).await.status, StatusCode::OK);
    assert_eq!(victim.event::<Note>().await, Note("still here".into()));
}

#[tokio::test]
async fn without_the_header_nobody_is_left_out() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut tab = app.browser().open_socket(address).await;
    let response = app
        .browser()
        .post(
            "/api/test/shout",
            &[("text", "hi"), ("others_only", "true")],
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(tab.event::<Note>().await, Note("hi".into()));
}

#[tokio::test]
async fn an_announcement_reaches_every_tab_logged_in_or_not() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut logged_in = ada.open_socket(address).await;
    let mut visitor = app.browser().open_socket(address).await;

    // Announcing takes a logged-in user; every tab receives it.
    let response = ada
        .post(
            "/api/events/broadcast",
            &[("event[message]", "John created an account!")],
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);

    let expected = SomethingHappened {
        author: Some("ada".into()),
        ..SomethingHappened::new("John created an account!")
    };
    assert_eq!(logged_in.event::<SomethingHappened>().await, expected);
    assert_eq!(visitor.event::<SomethingHappened>().await, expected);
}

#[tokio::test]
async fn an_empty_announcement_is_refused_with_a_reason() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let response = ada
        .post("/api/events/broadcast", &[("event[message]", "  ")])
        .await;
    assert!(!response.status.is_success());
    assert_eq!(
        response.json::<app::error::AppError>(),
        app::error::AppError::Invalid("Write a message first.".into())
    );
}

#[tokio::test]
async fn a_page_from_another_origin_cannot_open_a_socket() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let refused = TestClient::connect(address, &[("origin", "http://evil.example")]).await;
    assert_eq!(refused.err(), Some(StatusCode::FORBIDDEN));
    let own = format!("http://{address}");
    assert!(
        TestClient::connect(address, &[("origin", &own)])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn closed_sockets_leave_nothing_in_the_registry() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut browser = app.browser();
    browser.sign_up("ada", PASSWORD).await.unwrap();
    let mut tab = browser.open_socket(address).await;
    let mut visitor = app.browser().open_socket(address).await;
    assert_eq!(app.hub.stats().connections, 2);

    tab.ws.close(None).await.unwrap();
    visitor.ws.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + realtime_testing::PATIENCE;
    while app.hub.stats() != Default::default() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            app.hub.stats()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
