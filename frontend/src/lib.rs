//! The wasm entry point: the JavaScript glue that cargo-leptos generates
//! calls [`hydrate`] once the bundle has loaded.

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
