//! One module per page of the application.

mod auth_forms;
mod home;
mod not_found;
mod people;
mod realtime_lab;
// @chat-begin
mod room;
// @chat-end

pub use auth_forms::{LogInPage, SignUpPage};
pub use home::HomePage;
pub use not_found::NotFoundPage;
pub use people::PeoplePage;
pub use realtime_lab::RealtimeLab;
// @chat-begin
pub use room::RoomPage;
// @chat-end
