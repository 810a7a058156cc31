//! Rebuilds the server when a migration changes: `sqlx::migrate!` embeds the
//! migrations at compile time, and cargo would not notice a new file alone.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
