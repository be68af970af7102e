//! Loading from a snapshot must give exactly the state of a full replay, for any history
//! and any snapshot interval. (cqrs-es 0.5.0 fails this: it applies the new events twice
//! before snapshotting.)

use std::sync::Arc;

use eventshop_core::{CommandHandler, EventStore, InMemoryEventStore, Metadata, SnapshotPolicy};
use proptest::prelude::*;
use store_conformance::fixtures::{Account, AccountCommand};
use uuid::Uuid;

fn command() -> impl Strategy<Value = AccountCommand> {
    prop_oneof![
        3 => (1..500_i64).prop_map(|amount| AccountCommand::Deposit { amount }),
        2 => (1..800_i64).prop_map(|amount| AccountCommand::Withdraw { amount }),
        1 => Just(AccountCommand::Open { owner: "again".into() }),
        1 => (-5..=0_i64).prop_map(|amount| AccountCommand::Deposit { amount }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn snapshot_load_equals_full_replay(
        commands in prop::collection::vec(command(), 0..80),
        every in 1..12_u64,
        cached in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
            let account = Uuid::now_v7();
            let writer = CommandHandler::<Account>::new(store.clone())
                .with_snapshots(SnapshotPolicy::Every(every))
                .with_cache_capacity(if cached { 100 } else { 0 });
            let mut expected = Account::default();
            let open = AccountCommand::Open { owner: "ada".into() };
            for command in std::iter::once(&open).chain(&commands) {
                if let Ok(executed) = writer.execute(account, command, Metadata::new_transaction(None)).await {
                    expected = executed.state;
                }
            }
            let from_snapshot = CommandHandler::<Account>::new(store.clone())
                .with_snapshots(SnapshotPolicy::Every(every))
                .with_cache_capacity(0)
                .load(account)
                .await
                .expect("load from snapshot");
            let replayed = CommandHandler::<Account>::new(store.clone())
                .with_cache_capacity(0)
                .load(account)
                .await
                .expect("full replay");
            prop_assert_eq!(&from_snapshot.state, &replayed.state);
            prop_assert_eq!(from_snapshot.version, replayed.version);
            prop_assert_eq!(&replayed.state, &expected, "the handler's answer is the replayed state");
            prop_assert_eq!(replayed.state.transactions, replayed.version, "each event applied exactly once");
            Ok(())
        })?;
    }
}
