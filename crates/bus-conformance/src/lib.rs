//! The conformance suite of eventshop's buses.
//!
//! The in-process bus and the NATS JetStream bus run the same cases, so that services
//! behave the same embedded and distributed. A bus's test crate writes
//!
//! ```ignore
//! async fn open() -> Option<bus_conformance::TestBus> { /* two handles on one fresh bus, or None to skip */ }
//! bus_conformance::bus_conformance!(open);
//! ```

pub mod cases;

use std::sync::Arc;

use eventshop_core::bus::Bus;

/// Two handles on one fresh bus, as two processes of a deployment would hold: for the
/// in-process bus the same one twice, for NATS two connections. Everything a case
/// creates on it is private to the case.
#[derive(Debug, Clone)]
pub struct TestBus {
    pub first: Arc<dyn Bus>,
    pub second: Arc<dyn Bus>,
}

/// Generates one test per conformance case, each on a fresh bus from `$open`.
#[macro_export]
macro_rules! bus_conformance {
    ($open:path) => {
        $crate::bus_conformance_cases!($open:
            a_request_gets_its_reply,
            the_context_travels_with_a_request,
            a_rejection_is_an_answer,
            a_slow_service_times_out,
            a_missing_service_has_no_responders,
            instances_share_the_requests,
            running_instances_are_discovered,
            typed_calls_round_trip,
            events_arrive_in_order_per_stream,
            a_consumer_sees_only_its_event_types,
            live_events_arrive,
            a_restarted_consumer_resumes_without_loss,
            a_redelivered_event_has_its_effect_once,
            a_failing_handler_is_retried,
            dead_letters_block_their_stream_only,
            an_undecodable_event_is_dead_lettered_and_the_rest_flows,
            a_panicking_handler_dead_letters_the_event_and_goes_on,
            a_dead_letter_can_be_discarded,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! bus_conformance_cases {
    ($open:path: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(bus) = $open().await else { return };
                $crate::cases::$case(bus).await;
            }
        )*
    };
}
