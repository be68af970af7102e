//! Hosting eventshop services.
//!
//! For now: [`InProcessBus`], the bus of the embedded deployment, where every service
//! runs in one process and no broker is needed, and its live settings, read from the
//! config file.

pub mod in_process;
pub mod settings;

pub use in_process::InProcessBus;
pub use settings::load_settings_file;
