//! `SimTable`: the shared membership table (Redis in production) with the semantics of the
//! production scripts, and the faults Redis has: a flush (the epoch key and every record gone)
//! and a failover to a replica that lost the last writes (an older state comes back).

use std::collections::{BTreeMap, VecDeque};

use connectors_cluster::membership::{MemberRecord, MembershipTable};
use connectors_cluster::shard_map::NodeId;

/// A request to the table, as the membership shell sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableOp {
    Write { record: MemberRecord, bump_epoch: bool, min_epoch: u64 },
    Read,
    Remove { ids: Vec<NodeId>, expected_epoch: u64 },
}

/// The table's answer; `Unreachable` is what the shell's store call returns as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableAnswer {
    /// The write script ran: `false` when it refused to write over a newer incarnation's
    /// record (production answers both alike; the flag is for traces).
    Written(bool),
    Read(MembershipTable),
    Removed(bool),
    Unreachable,
}

/// How many past states a failover can go back to.
const HISTORY: usize = 32;

#[derive(Debug, Clone, Default)]
pub(crate) struct SimTable {
    epoch: u64,
    members: BTreeMap<NodeId, MemberRecord>,
    /// States before each of the latest changes, oldest first.
    history: VecDeque<(u64, BTreeMap<NodeId, MemberRecord>)>,
}

impl SimTable {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Carries out `op` atomically, like the production Lua scripts.
    pub(crate) fn apply(&mut self, op: TableOp) -> TableAnswer {
        match op {
            TableOp::Write { record, bump_epoch, min_epoch } => {
                // `WRITE_MEMBER`: never over the record of a newer incarnation of the node id
                // (a later start; the address breaks a tie), and then no bump either.
                if self.members.get(&record.id).is_some_and(|current| {
                    (current.started_ms, &current.cluster_addr) > (record.started_ms, &record.cluster_addr)
                }) {
                    return TableAnswer::Written(false);
                }
                if bump_epoch {
                    self.remember();
                    self.members.insert(record.id.clone(), record);
                    self.epoch = (self.epoch + 1).max(min_epoch);
                } else if self.members.contains_key(&record.id) {
                    // HEXISTS by node id: a heartbeat only refreshes a record that is there.
                    self.remember();
                    self.members.insert(record.id.clone(), record);
                }
                TableAnswer::Written(true)
            }
            TableOp::Read => TableAnswer::Read(MembershipTable {
                epoch: self.epoch,
                members: self.members.values().cloned().collect(),
            }),
            TableOp::Remove { ids, expected_epoch } => {
                if self.epoch != expected_epoch {
                    return TableAnswer::Removed(false);
                }
                self.remember();
                for id in &ids {
                    self.members.remove(id);
                }
                self.epoch += 1;
                TableAnswer::Removed(true)
            }
        }
    }

    /// `FLUSHALL`: the epoch key reads as 0 again and no record is left.
    pub(crate) fn flush(&mut self) {
        self.remember();
        self.epoch = 0;
        self.members.clear();
    }

    /// A failover to a replica that missed the last `lost_writes` changes. Returns how many
    /// were actually lost (no more than the history holds).
    pub(crate) fn fail_over(&mut self, lost_writes: usize) -> usize {
        let lost = lost_writes.min(self.history.len());
        if lost == 0 {
            return 0;
        }
        let (epoch, members) = self.history[self.history.len() - lost].clone();
        self.history.truncate(self.history.len() - lost);
        self.epoch = epoch;
        self.members = members;
        lost
    }

    fn remember(&mut self) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((self.epoch, self.members.clone()));
    }
}

#[cfg(test)]
mod tests {
    use connectors_cluster::membership::NodeStatus;

    use super::*;

    fn record(name: &str, heartbeat_ms: i64) -> MemberRecord {
        MemberRecord {
            id: NodeId::from(name),
            http_addr: String::new(),
            cluster_addr: format!("{name}:1"),
            status: NodeStatus::Up,
            heartbeat_ms,
            started_ms: 0,
        }
    }

    fn members(table: &mut SimTable) -> Vec<MemberRecord> {
        match table.apply(TableOp::Read) {
            TableAnswer::Read(read) => read.members,
            other => panic!("a read answered {other:?}"),
        }
    }

    fn write(record: MemberRecord, bump_epoch: bool) -> TableOp {
        TableOp::Write { record, bump_epoch, min_epoch: 0 }
    }

    #[test]
    fn a_heartbeat_only_refreshes_a_record_that_is_there() {
        let mut table = SimTable::default();
        table.apply(write(record("a", 1), false));
        assert_eq!((table.epoch(), members(&mut table).len()), (0, 0));
        table.apply(write(record("a", 1), true));
        table.apply(write(record("a", 2), false));
        assert_eq!(table.epoch(), 1);
        assert_eq!(members(&mut table).iter().map(|m| m.heartbeat_ms).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_bump_honours_the_minimum_epoch_and_removal_is_a_compare_and_set() {
        let mut table = SimTable::default();
        table.apply(TableOp::Write { record: record("a", 1), bump_epoch: true, min_epoch: 9 });
        table.apply(write(record("b", 1), true));
        assert_eq!(table.epoch(), 10);
        let stale = TableOp::Remove { ids: vec![NodeId::from("a")], expected_epoch: 9 };
        assert_eq!(table.apply(stale), TableAnswer::Removed(false));
        let current = TableOp::Remove { ids: vec![NodeId::from("a")], expected_epoch: 10 };
        assert_eq!(table.apply(current), TableAnswer::Removed(true));
        assert_eq!(table.epoch(), 11);
        assert_eq!(members(&mut table).iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn a_write_never_replaces_a_newer_incarnation() {
        let mut table = SimTable::default();
        let newer = MemberRecord { started_ms: 5, ..record("a", 1) };
        table.apply(write(newer.clone(), true));
        for older in [record("a", 9), MemberRecord { started_ms: 5, cluster_addr: "a:0".into(), ..record("a", 9) }] {
            assert_eq!(table.apply(write(older.clone(), true)), TableAnswer::Written(false));
            assert_eq!(table.apply(write(older, false)), TableAnswer::Written(false));
        }
        assert_eq!((table.epoch(), members(&mut table)), (1, vec![newer.clone()]));
        // The same incarnation, or a newer one, writes as before.
        let beat = MemberRecord { heartbeat_ms: 7, ..newer };
        assert_eq!(table.apply(write(beat.clone(), false)), TableAnswer::Written(true));
        let newest = MemberRecord { started_ms: 6, ..record("a", 1) };
        assert_eq!(table.apply(write(newest.clone(), true)), TableAnswer::Written(true));
        assert_eq!((table.epoch(), members(&mut table)), (2, vec![newest]));
    }

    #[test]
    fn flush_and_failover_take_the_table_back() {
        let mut table = SimTable::default();
        table.apply(write(record("a", 1), true));
        table.apply(write(record("b", 1), true));
        table.apply(write(record("b", 2), false));
        assert_eq!(table.fail_over(2), 2);
        assert_eq!(table.epoch(), 1);
        assert_eq!(members(&mut table).len(), 1);
        table.flush();
        assert_eq!((table.epoch(), members(&mut table).len()), (0, 0));
        assert_eq!(table.fail_over(99), 2);
        assert_eq!(table.epoch(), 0);
    }
}
