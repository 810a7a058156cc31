//! __Humans__, end to end through the server: each user's own, created,
//! listed, edited and deleted through the server functions, heard live by
//! every tab of their owner's and nobody else's, checked, limited, and
//! rendered with the page.
//!
//! Written by `__command__`.

mod support;

use app::{
    __plural__::{
        __Type__, __Type__Created, __Type__Deleted, __Type__Fields, __Type__List,
        __Type__Opened, __Type__Updated, __FIRST_RULE__,
        store::__Plural__,
    },
    error::AppError,
    limits::{Action, Rate},
};
use axum::http::StatusCode;
use support::{Browser, TestApp};

const PASSWORD: &str = "correct horse battery";

/// A __human__'s fields, as its form sends them.
fn form(fields: &__Type__Fields) -> Vec<(String, String)> {
    @@TEST_FORM@@
}

fn first() -> __Type__Fields {
    __Type__Fields {
        @@TEST_FIRST@@
    }
}

fn second() -> __Type__Fields {
    __Type__Fields {
        @@TEST_SECOND@@
    }
}

async fn create(browser: &mut Browser<'_>, fields: &__Type__Fields) -> Result<__Type__, AppError> {
    call(browser, "/api/__plural__/create", form(fields)).await
}

async fn update(
    browser: &mut Browser<'_>,
    id: i64,
    fields: &__Type__Fields,
) -> Result<__Type__, AppError> {
    let mut form = form(fields);
    form.push(("id".into(), id.to_string()));
    call(browser, "/api/__plural__/update", form).await
}

async fn delete(browser: &mut Browser<'_>, id: i64) -> Result<(), AppError> {
    call(browser, "/api/__plural__/delete", vec![("id".into(), id.to_string())]).await
}

async fn list(browser: &mut Browser<'_>) -> Result<Vec<__Type__>, AppError> {
    let list: __Type__List = call(browser, "/api/__plural__/list", Vec::new()).await?;
    Ok(list.__plural__)
}

async fn open(browser: &mut Browser<'_>, id: i64) -> Result<__Type__, AppError> {
    let opened: __Type__Opened =
        call(browser, "/api/__plural__/open", vec![("id".into(), id.to_string())]).await?;
    Ok(opened.__name__)
}

async fn call<T: serde::de::DeserializeOwned>(
    browser: &mut Browser<'_>,
    path: &str,
    form: Vec<(String, String)>,
) -> Result<T, AppError> {
    let form: Vec<(&str, &str)> = form
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    browser.call(path, &form).await
}

#[tokio::test]
async fn a___name___is_created_listed_edited_and_deleted_by_its_owner() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    let user = ada.sign_up("ada", PASSWORD).await.unwrap();

    let created = create(&mut ada, &first()).await.unwrap();
    assert_eq!(__Type__Fields::of(&created), first());
    assert_eq!((created.owner, created.version), (user.id, 1));
    assert_eq!(list(&mut ada).await.unwrap(), std::slice::from_ref(&created));

    let updated = update(&mut ada, created.id, &second()).await.unwrap();
    assert_eq!(__Type__Fields::of(&updated), second());
    assert_eq!((updated.id, updated.version), (created.id, 2));
    assert_eq!(open(&mut ada, created.id).await.unwrap(), updated);

    delete(&mut ada, created.id).await.unwrap();
    assert_eq!(list(&mut ada).await.unwrap(), []);
    assert!(matches!(
        open(&mut ada, created.id).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn every_tab_of_the_owner_hears_each_change_and_nobody_else() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut grace = app.browser();
    grace.sign_up("grace", PASSWORD).await.unwrap();
    let mut ada_tabs = [ada.open_socket(address).await, ada.open_socket(address).await];
    let mut grace_tab = grace.open_socket(address).await;

    let created = create(&mut ada, &first()).await.unwrap();
    let updated = update(&mut ada, created.id, &second()).await.unwrap();
    delete(&mut ada, created.id).await.unwrap();
    for tab in &mut ada_tabs {
        assert_eq!(tab.event::<__Type__Created>().await, __Type__Created(created.clone()));
        assert_eq!(tab.event::<__Type__Updated>().await, __Type__Updated(updated.clone()));
        assert_eq!(tab.event::<__Type__Deleted>().await, __Type__Deleted { id: created.id });
    }
    // Grace's tab hears her own __human__ first: none of Ada's came before.
    let hers = create(&mut grace, &first()).await.unwrap();
    assert_eq!(grace_tab.event::<__Type__Created>().await, __Type__Created(hers));
}

#[tokio::test]
async fn another_users___plural___do_not_exist_for_them() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut grace = app.browser();
    grace.sign_up("grace", PASSWORD).await.unwrap();
    let adas = create(&mut ada, &first()).await.unwrap();

    assert_eq!(list(&mut grace).await.unwrap(), []);
    assert!(matches!(open(&mut grace, adas.id).await, Err(AppError::NotFound(_))));
    assert!(matches!(
        update(&mut grace, adas.id, &second()).await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(delete(&mut grace, adas.id).await, Err(AppError::NotFound(_))));
    assert_eq!(open(&mut ada, adas.id).await.unwrap(), adas, "unchanged");
}

#[tokio::test]
async fn visitors_are_asked_to_log_in() {
    let app = TestApp::new().await;
    let mut visitor = app.browser();
    assert_eq!(create(&mut visitor, &first()).await, Err(AppError::NotLoggedIn));
    assert_eq!(list(&mut visitor).await, Err(AppError::NotLoggedIn));
}

#[tokio::test]
async fn fields_that_break_their_rules_are_refused_with_a_reason() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut blank = first();
    blank.__first__ = "   ".into();
    assert!(matches!(create(&mut ada, &blank).await, Err(AppError::Invalid(_))));
    let created = create(&mut ada, &first()).await.unwrap();
    assert!(matches!(
        update(&mut ada, created.id, &blank).await,
        Err(AppError::Invalid(_))
    ));
    let mut too_long = first();
    too_long.__first__ = "x".repeat(__FIRST_RULE__.max_chars + 1);
    assert!(matches!(create(&mut ada, &too_long).await, Err(AppError::Invalid(_))));
    @@TEST_INVALID@@
    assert_eq!(list(&mut ada).await.unwrap(), [created]);
}

fn borrowed(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

#[tokio::test]
async fn changes_are_limited_per_user() {
    let mut config = support::test_config(support::default_session()).await;
    let rate: Rate = "2/min".parse().unwrap();
    config.app.limits.set(Action::__Action__, rate);
    let app = TestApp::with_config(config).await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let created = create(&mut ada, &first()).await.unwrap();
    update(&mut ada, created.id, &second()).await.unwrap();
    let refused = ada
        .post("/api/__plural__/create", &borrowed(&form(&first())))
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(
        delete(&mut ada, created.id).await,
        Err(AppError::TooManyRequests { .. })
    ));
    // Grace has a limit of her own.
    let mut grace = app.browser();
    grace.sign_up("grace", PASSWORD).await.unwrap();
    create(&mut grace, &first()).await.unwrap();
}

#[tokio::test]
async fn changes_are_limited_per_network_too() {
    let mut config = support::test_config(support::default_session()).await;
    let rate: Rate = "2/min".parse().unwrap();
    config.app.limits.set(Action::__Action__PerAddress, rate);
    let app = TestApp::with_config(config).await;
    // Two accounts on one network share its limit.
    let mut ada = app.browser_at("127.0.0.2");
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let mut grace = app.browser_at("127.0.0.2");
    grace.sign_up("grace", PASSWORD).await.unwrap();
    create(&mut ada, &first()).await.unwrap();
    create(&mut grace, &first()).await.unwrap();
    assert!(matches!(
        create(&mut grace, &first()).await,
        Err(AppError::TooManyRequests { .. })
    ));
    // Another network has its own.
    let mut alan = app.browser_at("127.0.0.3");
    alan.sign_up("alan", PASSWORD).await.unwrap();
    create(&mut alan, &first()).await.unwrap();
}

#[tokio::test]
async fn a_user_keeps_at_most_so_many___plural__() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    let user = ada.sign_up("ada", PASSWORD).await.unwrap();
    let store = __Plural__::with_max_per_user(app.database.pool.clone(), 2);
    store.create(user.id, &first()).await.unwrap();
    store.create(user.id, &first()).await.unwrap();
    assert!(matches!(
        store.create(user.id, &first()).await,
        Err(AppError::Invalid(_))
    ));
    assert_eq!(store.list(user.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_pages_come_from_the_server_with_the_users___plural__() {
    let app = TestApp::new().await;
    let mut ada = app.browser();
    ada.sign_up("ada", PASSWORD).await.unwrap();
    let created = create(&mut ada, &first()).await.unwrap();

    let list_page = ada.get("/__plural__").await;
    assert_eq!(list_page.status, StatusCode::OK);
    assert!(list_page.body.contains(&created.__first__), "{}", list_page.body);
    let edit_page = ada.get(&format!("/__plural__/{}", created.id)).await;
    assert_eq!(edit_page.status, StatusCode::OK);
    assert!(
        edit_page.body.contains(&format!("value=\"{}\"", created.__first__)),
        "{}",
        edit_page.body
    );
    let mut grace = app.browser();
    grace.sign_up("grace", PASSWORD).await.unwrap();
    let not_hers = grace.get("/__plural__").await;
    assert!(!not_hers.body.contains(&created.__first__));
}
