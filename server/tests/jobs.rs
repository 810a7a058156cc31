//! Background jobs: a periodic job runs once per period however many
//! processes share the database, and what it emits reaches the tabs.
//! Runs on SQLite, and on PostgreSQL when `TEST_POSTGRES_URL` is set.

mod support;

use std::time::Duration;

use app::{
    AppContext, AppSettings,
    events::SomethingHappened,
    jobs::{self, JobsConfig, periodic},
};
use realtime_testing::TestClient;
use support::TestApp;

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn a_period_is_claimed_once_whoever_asks() {
    let app = TestApp::new().await;
    let db = app.database.pool.clone();
    let period = periodic::Period::containing(1_000_000, Duration::from_secs(60));
    // Eight "processes" at once.
    let claims = (0..8).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { periodic::claim(&db, "test", period).await })
    });
    let mut won = 0;
    for claim in claims {
        if claim.await.unwrap().expect("the claim is answered") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one claim of a period succeeds");
    // The next period, and another job's, are free.
    assert!(periodic::claim(&db, "test", period.next()).await.unwrap());
    assert!(periodic::claim(&db, "other", period).await.unwrap());
}

#[tokio::test]
async fn the_sign_up_digest_is_announced_once_per_period_by_two_processes() {
    let app = TestApp::new().await;
    let address = app.listen().await;
    // Two processes' jobs on one database; both emit into the hub the tab
    // is connected to, so a digest sent twice would arrive twice.
    let settings = AppSettings {
        jobs: JobsConfig {
            sign_up_digest: Some(Duration::from_secs(1)),
        },
        ..AppSettings::default()
    };
    let running: Vec<_> = (0..2)
        .flat_map(|_| {
            let context = AppContext::new(app.database.pool.clone(), app.hub.clone(), &settings);
            jobs::start(&context, &settings.jobs)
        })
        .collect();

    let mut tab = TestClient::connect(address, &[]).await.unwrap();
    app.browser().sign_up("ada", PASSWORD).await.unwrap();
    let digest: SomethingHappened = tab.event().await;
    assert_eq!(digest.message, "1 person signed up in the last second.");
    // The next periods have no sign-ups: nothing more, from either process.
    let more = tokio::time::timeout(Duration::from_millis(2500), tab.frame()).await;
    assert!(more.is_err(), "a second digest: {more:?}");
    for job in running {
        job.abort();
    }
}
