//! Hosting eventshop services.
//!
//! For now: [`InProcessBus`], the bus of the embedded deployment, where every service
//! runs in one process and no broker is needed.

pub mod in_process;

pub use in_process::InProcessBus;
