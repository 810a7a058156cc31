//! The wasm entry point: the JavaScript glue that cargo-leptos generates
//! calls [`hydrate`] once the bundle has loaded.
//!
//! ## Where things live
//!
//! - **Who may join a room**: the server decides (`app::join_rules`); the
//!   page asks with `realtime::use_room` and shows the answer.
//! - **What happens to a slow tab**: the server closes it with 4008; the
//!   runtime in `realtime/src/client/socket/` reconnects with backoff,
//!   re-joins its rooms, and `realtime::use_resumed` tells the pages to
//!   reload.
//! - **How an emit reaches another process**: on the server, through the
//!   backplane; a tab sees the same frames wherever it is connected.
//! - **Where the wire format is**: `realtime::protocol` and
//!   `docs/protocol.md`.

use wasm_bindgen::prelude::wasm_bindgen;

/// Takes over the server-rendered page: attaches event handlers and makes
/// it reactive, without rendering it again.
#[wasm_bindgen]
pub fn hydrate() {
    // A panic in the browser shows its message in the console, not just
    // "unreachable executed".
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
