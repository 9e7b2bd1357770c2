//! Helpers shared by the server's integration tests.

#[allow(dead_code)] // each test file uses its own part
pub mod postgres;
