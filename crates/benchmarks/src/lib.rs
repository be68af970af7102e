//! The shared harness of eventshop's criterion benches (`benches/`): the aggregate they
//! run, concurrent writers timed by wall clock, the raw-sqlx baselines on PostgreSQL and
//! SQLite, the projection replayed by the rebuild benches, and the reader of criterion's
//! output behind `bench-report`.
//!
//! Nothing here is used by the shop. It is a library so that the bench files stay short
//! and so that `cargo test -p benchmarks` checks the baselines do what they claim.

pub mod account;
pub mod baseline;
pub mod harness;
pub mod postgres;
pub mod projection;
pub mod report;
pub mod sqlite;
