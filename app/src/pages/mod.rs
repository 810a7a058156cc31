//! One module per page of the application.

mod auth_forms;
mod home;
mod not_found;
mod realtime_lab;
mod room;

pub use auth_forms::{LogInPage, SignUpPage};
pub use home::HomePage;
pub use not_found::NotFoundPage;
pub use realtime_lab::RealtimeLab;
pub use room::RoomPage;
