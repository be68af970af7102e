//! The conformance suite of eventshop's event stores.
//!
//! Every backend runs the same cases, so that SQLite, PostgreSQL and the in-memory
//! reference cannot drift apart. A backend's test crate writes
//!
//! ```ignore
//! async fn open() -> Option<Arc<MyStore>> { /* a fresh, empty store, or None to skip */ }
//! store_conformance::event_store_conformance!(open);
//! ```
//!
//! and gets one `#[tokio::test]` per case. `MyStore` implements both `EventStore` and
//! `ConsumerStorage`: a service's database keeps its events, its inbox and its consumers'
//! positions and dead letters. `open` returns `None` only when the backend's
//! server is unreachable outside CI; it must print why.

pub mod cases;
pub mod fixtures;

/// Generates one test per conformance case, each on a fresh store from `$open`.
#[macro_export]
macro_rules! event_store_conformance {
    ($open:path) => {
        $crate::conformance_cases!($open:
            appends_to_a_new_stream,
            keeps_every_envelope_field,
            expected_version_no_stream,
            expected_version_exact,
            expected_version_any,
            a_refused_append_writes_nothing,
            reads_a_stream_after_a_version,
            appends_to_several_streams_atomically,
            refuses_malformed_appends,
            refuses_a_duplicate_event_id,
            reads_all_in_global_order_in_pages,
            an_empty_store_reads_nothing,
            only_one_of_racing_writers_wins,
            concurrent_appends_with_any_version_lose_nothing,
            tailing_reader_sees_every_event_once_in_order,
            keeps_the_newest_snapshot,
            wakes_waiters_on_append,
            catch_up_subscription_follows_live_appends,
            command_handler_retries_conflicts,
            snapshot_load_equals_full_replay,
            projection_rebuild_reproduces_the_read_model,
            records_a_handled_event_once,
            a_refused_handled_append_records_nothing,
            racing_deliveries_of_one_event_record_it_once,
        );
        $crate::consumer_storage_cases!($open:
            keeps_consumer_positions,
            keeps_dead_letters_in_stream_order,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($open:path: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(store) = $open().await else { return };
                let store: std::sync::Arc<dyn eventshop_core::EventStore> = store;
                $crate::cases::$case(store).await;
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! consumer_storage_cases {
    ($open:path: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(store) = $open().await else { return };
                let storage: std::sync::Arc<dyn eventshop_core::consumer::ConsumerStorage> = store;
                $crate::cases::$case(storage).await;
            }
        )*
    };
}
