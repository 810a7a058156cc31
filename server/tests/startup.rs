//! Starting and stopping the server process's core: binding, refusing bad
//! configuration clearly, and shutting down when asked.

mod support;

use realtime::protocol::close;
use realtime_testing::TestClient;
use server::{
    DatabaseError, Server, ServerError,
    database::{Backend, Database},
};
use support::{default_session, scratch_dir, test_config};
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpStream, sync::oneshot};

#[tokio::test]
async fn the_database_file_and_its_folder_are_created_on_first_start() {
    let dir = scratch_dir("first-start").join("nested");
    let mut config = test_config(default_session()).await;
    config.database_url = format!("sqlite://{}/app.db", dir.display());

    let server = Server::bind(config).await.unwrap();
    assert!(dir.join("app.db").exists());
    drop(server);
}

#[tokio::test]
async fn the_database_pool_is_as_large_as_configured_or_the_backends_default() {
    let url = test_config(default_session()).await.database_url;
    let sized = Database::open(&url, Some(3)).await.unwrap();
    assert_eq!(sized.pool.options().get_max_connections(), 3);
    let default = Database::open(&url, None).await.unwrap();
    assert_eq!(
        default.pool.options().get_max_connections(),
        Backend::of(&url).unwrap().default_pool_size()
    );
    assert!(Backend::Sqlite.default_pool_size() >= 32);
}

#[tokio::test]
async fn an_unsupported_database_url_is_a_clear_error() {
    let mut config = test_config(default_session()).await;
    config.database_url = "mysql://localhost/app".into();

    let error = Server::bind(config).await.err().expect("refused");
    assert!(matches!(
        error,
        ServerError::Database(DatabaseError::UnsupportedUrl { .. })
    ));
    assert!(
        error.to_string().contains("mysql://localhost/app"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unusable_database_location_is_a_clear_error() {
    // A folder cannot be created inside a file.
    let file = scratch_dir("not-a-folder");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "").unwrap();
    let mut config = test_config(default_session()).await;
    config.database_url = format!("sqlite://{}/db/app.db", file.display());

    let error = Server::bind(config).await.err().expect("refused");
    assert!(
        matches!(
            error,
            ServerError::Database(DatabaseError::CreateFolder { .. })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn the_server_answers_over_tcp_and_stops_when_asked() {
    let server = Server::bind(test_config(default_session()).await)
        .await
        .unwrap();
    let address = server.local_addr().unwrap();
    let hub = server.hub().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));

    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // An open WebSocket does not hold the shutdown up: it is closed with
    // "going away", and the browser reconnects to the next server.
    let mut socket = TestClient::connect(address, &[]).await.unwrap();
    stop.send(()).unwrap();
    assert_eq!(socket.closed().await, Some(close::GOING_AWAY));
    serving.await.unwrap().unwrap();
    // Its close handshake ended before the server stopped (this client
    // does not answer the close: the server's 2 s bound ends it), rather
    // than being cut off with the sockets' runtime.
    assert_eq!(hub.open_sockets(), 0, "the socket's task finished");
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the port is closed"
    );
}

#[tokio::test]
async fn an_invalid_redis_url_is_a_clear_error_that_keeps_the_password_out() {
    let mut config = test_config(default_session()).await;
    config.redis_url = Some("http://user:hunter2@redis.internal".into());

    let error = Server::bind(config).await.err().expect("refused");
    assert!(matches!(error, ServerError::Backplane(_)), "{error}");
    let message = error.to_string();
    assert!(message.contains("REDIS_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

/// The response to a plain `GET`, whole.
async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let mut config = test_config(default_session()).await;
    config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::bind(config).await.unwrap();
    let address = server.local_addr().unwrap();
    let metrics = server.metrics_addr().unwrap().expect("a metrics listener");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));

    // A refusal, counted: a page from another origin.
    let refused = TestClient::connect(address, &[("origin", "http://evil.example")]).await;
    assert!(refused.is_err());
    let _visitor = TestClient::connect(address, &[]).await.unwrap();

    let scraped = get(metrics, "/metrics").await;
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    for line in [
        r#"realtime_connections{kind="anonymous"} 1"#,
        r#"realtime_refusals_total{limit="origin"}"#,
        "realtime_open_sockets 1",
        "app_password_hashing_waiting 0",
    ] {
        assert!(scraped.contains(line), "{line} missing from:\n{scraped}");
    }
    // Not on the application's own listener.
    assert!(get(address, "/metrics").await.starts_with("HTTP/1.1 404"));
    // The health check's details are here, and only here.
    let detailed = get(metrics, "/health").await;
    assert!(detailed.contains(r#""backplane":"off""#), "{detailed}");
    assert!(!get(address, "/health").await.contains("backplane"));

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
