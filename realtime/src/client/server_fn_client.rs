//! A server-function client that tells the server which tab is calling.
//!
//! It is Leptos's own browser client, plus two headers: the id of the
//! tab's open connection (or `none`, while it has none), and the tab's own
//! id. The server reads them, so a server function can emit "to everyone
//! except the caller" or "to the caller only" without the page passing ids
//! around, whichever process the call and the tab's socket are on. Use it
//! with `#[server(client = realtime::RealtimeClient)]`.

use std::future::Future;

use bytes::Bytes;
use futures::{Sink, Stream};
use leptos::server_fn::{
    client::{Client, browser::BrowserClient},
    error::FromServerFnError,
    request::browser::BrowserRequest,
    response::browser::BrowserResponse,
};

/// See the [module documentation](self).
pub struct RealtimeClient;

impl<Error, InputStreamError, OutputStreamError> Client<Error, InputStreamError, OutputStreamError>
    for RealtimeClient
where
    Error: FromServerFnError,
    InputStreamError: FromServerFnError,
    OutputStreamError: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(request: Self::Request) -> impl Future<Output = Result<Self::Response, Error>> + Send {
        // Always set: the server tells a call whose tab has no connection
        // open from one that did not come through this client.
        let connection = super::runtime::current_connection().map_or_else(
            || crate::protocol::NO_CONNECTION.to_owned(),
            |id| id.to_string(),
        );
        request
            .headers()
            .set(crate::protocol::CONNECTION_HEADER, &connection);
        if let Some(tab) = super::runtime::current_tab() {
            request
                .headers()
                .set(crate::protocol::TAB_HEADER, &tab.to_string());
        }
        <BrowserClient as Client<Error, InputStreamError, OutputStreamError>>::send(request)
    }

    fn open_websocket(
        path: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
                impl Sink<Bytes> + Send + 'static,
            ),
            Error,
        >,
    > + Send {
        <BrowserClient as Client<Error, InputStreamError, OutputStreamError>>::open_websocket(path)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<Error, InputStreamError, OutputStreamError>>::spawn(future);
    }
}
