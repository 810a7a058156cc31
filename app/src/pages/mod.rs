//! One module per page of the application.

mod auth_forms;
mod home;
mod not_found;
mod room;

pub use auth_forms::{LogInPage, SignUpPage};
pub use home::HomePage;
pub use not_found::NotFoundPage;
pub use room::RoomPage;
