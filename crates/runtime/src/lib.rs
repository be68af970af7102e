//! Hosting eventshop services: what a service is given ([`ServiceContext`]), how it
//! answers requests ([`OperationRouter`]) and keeps read models ([`LiveView`]); the
//! in-process bus of the embedded deployment and its settings file.

pub mod admin;
pub mod in_process;
pub mod reaction;
pub mod service;
pub mod settings;
pub mod view;

pub use in_process::InProcessBus;
pub use reaction::{Recorded, caused_append, record_reaction};
pub use service::{
    OperationRouter, RunningService, ServiceContext, StartError, command_rejection, forwarded, internal,
};
pub use settings::load_settings_file;
pub use view::{LiveView, View};
