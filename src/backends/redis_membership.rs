//! The membership table in Redis (adapter of the cluster's `MembershipStore` port).
//!
//! Keys: `<prefix>cluster:epoch` (the view epoch, an integer that only grows) and
//! `<prefix>cluster:members` (a hash: node id → the member record as JSON). Every change that
//! alters the view bumps the epoch in the same atomic step (MULTI or a script), so all nodes
//! agree on which membership an epoch stands for.

use std::collections::HashMap;

use async_trait::async_trait;
use connectors_cluster::membership::{MemberRecord, MembershipTable};
use connectors_cluster::membership_store::{MembershipStore, MembershipStoreError};
use connectors_cluster::shard_map::NodeId;
use redis::aio::ConnectionManager;

pub struct RedisMembership {
    connection: ConnectionManager,
    cookie_key: String,
    epoch_key: String,
    members_key: String,
    write: redis::Script,
    remove: redis::Script,
}

/// A heartbeat (no bump) only refreshes a record that is still there: a node removed as dead
/// must rejoin with a bump, or it would be back under an epoch the others read without it. A bump
/// sets the epoch to at least ARGV[4] (a node rejoining after the table went backwards). A record
/// of a newer incarnation of the node id (a later start; the cluster address breaks a tie) is
/// never replaced by an older one: the older process reads it back and knows it was superseded.
const WRITE_MEMBER: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local theirs = cjson.decode(current)
  local ours = cjson.decode(ARGV[2])
  if theirs.startedMs > ours.startedMs
    or (theirs.startedMs == ours.startedMs and theirs.clusterAddr > ours.clusterAddr) then
    return 0
  end
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  local epoch = redis.call('INCR', KEYS[2])
  if epoch < tonumber(ARGV[4]) then redis.call('SET', KEYS[2], ARGV[4]) end
elseif redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
";

/// Removes members only if the epoch is the one the caller decided on.
const REMOVE_IF_EPOCH: &str = r"
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch ~= tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
redis.call('INCR', KEYS[1])
return 1
";

fn failed(error: redis::RedisError) -> MembershipStoreError {
    MembershipStoreError(error.to_string())
}

impl RedisMembership {
    /// Makes sure every node of the cluster at this prefix was given the same cookie: the first
    /// node records a digest of it, the others must match. A node with another cookie stops at
    /// start-up instead of joining a view whose peers would refuse its links (its shards would
    /// then be served by nobody).
    pub async fn claim_cookie(&self, cookie: &str) -> Result<(), MembershipStoreError> {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(format!("connectors-cluster-cookie:{cookie}")));
        let mut connection = self.connection.clone();
        let _: bool = redis::cmd("SET")
            .arg(&self.cookie_key)
            .arg(&digest)
            .arg("NX")
            .query_async::<Option<String>>(&mut connection)
            .await
            .map(|set| set.is_some())
            .map_err(failed)?;
        let recorded: Option<String> =
            redis::cmd("GET").arg(&self.cookie_key).query_async(&mut connection).await.map_err(failed)?;
        if recorded.as_deref() == Some(digest.as_str()) {
            Ok(())
        } else {
            Err(MembershipStoreError(format!(
                "the cluster at this Redis prefix was started with another CONNECTORS_CLUSTER_COOKIE \
                 (its digest is in `{}`; delete that key only when every node changes its cookie)",
                self.cookie_key
            )))
        }
    }

    pub fn new(connection: ConnectionManager, prefix: &str) -> Self {
        Self {
            connection,
            cookie_key: format!("{prefix}cluster:cookie-check"),
            epoch_key: format!("{prefix}cluster:epoch"),
            members_key: format!("{prefix}cluster:members"),
            write: redis::Script::new(WRITE_MEMBER),
            remove: redis::Script::new(REMOVE_IF_EPOCH),
        }
    }
}

#[async_trait]
impl MembershipStore for RedisMembership {
    async fn write_member(
        &self,
        record: &MemberRecord,
        bump_epoch: bool,
        min_epoch: u64,
    ) -> Result<(), MembershipStoreError> {
        let json = serde_json::to_string(record).map_err(|e| MembershipStoreError(e.to_string()))?;
        let mut invocation = self.write.key(&self.members_key);
        invocation.key(&self.epoch_key).arg(record.id.as_str()).arg(json).arg(if bump_epoch { "1" } else { "0" });
        invocation.arg(min_epoch);
        invocation.invoke_async::<i64>(&mut self.connection.clone()).await.map(drop).map_err(failed)
    }

    async fn read_table(&self) -> Result<MembershipTable, MembershipStoreError> {
        let (epoch, members): (Option<u64>, HashMap<String, String>) = redis::pipe()
            .atomic()
            .get(&self.epoch_key)
            .hgetall(&self.members_key)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        let mut records = Vec::with_capacity(members.len());
        for (id, json) in members {
            match serde_json::from_str::<MemberRecord>(&json) {
                Ok(record) => records.push(record),
                // A record this build cannot read (a newer node's?) must not stop the cluster.
                Err(error) => tracing::warn!(node = %id, %error, "unreadable membership record; ignored"),
            }
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(MembershipTable { epoch: epoch.unwrap_or(0), members: records })
    }

    async fn remove_members(&self, ids: &[NodeId], expected_epoch: u64) -> Result<bool, MembershipStoreError> {
        let mut invocation = self.remove.key(&self.epoch_key);
        invocation.key(&self.members_key).arg(expected_epoch);
        for id in ids {
            invocation.arg(id.as_str());
        }
        let removed: i64 = invocation.invoke_async(&mut self.connection.clone()).await.map_err(failed)?;
        Ok(removed == 1)
    }
}

#[cfg(test)]
mod tests {
    use connectors_cluster::membership::NodeStatus;

    use super::*;
    use crate::backends::redis_connection::RedisConnection;
    use crate::backends::redis_server::RedisServer;

    fn record(name: &str, heartbeat_ms: i64) -> MemberRecord {
        MemberRecord {
            id: NodeId::from(name),
            http_addr: "127.0.0.1:3000".into(),
            cluster_addr: "127.0.0.1:4000".into(),
            status: NodeStatus::Up,
            heartbeat_ms,
            started_ms: 1,
        }
    }

    async fn table(server: &RedisServer) -> RedisMembership {
        let connection = RedisConnection::connect(&server.url()).await.expect("connect");
        RedisMembership::new(connection.handle(), "test:")
    }

    #[tokio::test]
    async fn joins_bump_the_epoch_and_heartbeats_do_not() {
        let server = RedisServer::start();
        let store = table(&server).await;
        assert_eq!(store.read_table().await.unwrap(), MembershipTable { epoch: 0, members: vec![] });
        store.write_member(&record("b", 10), true, 0).await.unwrap();
        store.write_member(&record("a", 10), true, 0).await.unwrap();
        store.write_member(&record("a", 20), false, 0).await.unwrap();
        let read = store.read_table().await.unwrap();
        assert_eq!(read.epoch, 2);
        assert_eq!(read.members, vec![record("a", 20), record("b", 10)], "sorted by id, heartbeat updated");
        // After a reset a node rejoins above every epoch it has seen.
        store.write_member(&record("a", 30), true, 40).await.unwrap();
        assert_eq!(store.read_table().await.unwrap().epoch, 40);
        store.write_member(&record("a", 40), true, 7).await.unwrap();
        assert_eq!(store.read_table().await.unwrap().epoch, 41, "a minimum below the epoch is a plain bump");
    }

    #[tokio::test]
    async fn removal_is_a_compare_and_set_on_the_epoch_and_a_heartbeat_never_recreates() {
        let server = RedisServer::start();
        let store = table(&server).await;
        store.write_member(&record("a", 10), true, 0).await.unwrap();
        store.write_member(&record("b", 10), true, 0).await.unwrap();
        assert!(!store.remove_members(&[NodeId::from("b")], 1).await.unwrap(), "stale epoch: nothing removed");
        assert!(store.remove_members(&[NodeId::from("b")], 2).await.unwrap());
        let read = store.read_table().await.unwrap();
        assert_eq!((read.epoch, read.members), (3, vec![record("a", 10)]));
        // The removed node's late heartbeat must not bring it back unannounced.
        store.write_member(&record("b", 30), false, 0).await.unwrap();
        assert_eq!(store.read_table().await.unwrap().members, vec![record("a", 10)]);
    }

    #[tokio::test]
    async fn an_older_incarnation_never_overwrites_a_newer_one() {
        let server = RedisServer::start();
        let store = table(&server).await;
        let newer = MemberRecord { started_ms: 5, ..record("a", 50) };
        store.write_member(&newer, true, 0).await.unwrap();
        let older = MemberRecord { started_ms: 4, ..record("a", 60) };
        store.write_member(&older, true, 0).await.unwrap();
        store.write_member(&older, false, 0).await.unwrap();
        let read = store.read_table().await.unwrap();
        assert_eq!((read.epoch, read.members), (1, vec![newer.clone()]), "the newer record stays, no bump");
        // Same start, the address decides; the newer one itself heartbeats as usual.
        let twin = MemberRecord { cluster_addr: "127.0.0.1:3999".into(), started_ms: 5, ..record("a", 70) };
        store.write_member(&twin, true, 0).await.unwrap();
        let heartbeat = MemberRecord { started_ms: 5, ..record("a", 80) };
        store.write_member(&heartbeat, false, 0).await.unwrap();
        assert_eq!(store.read_table().await.unwrap().members, vec![heartbeat]);
    }

    #[tokio::test]
    async fn an_unreachable_table_is_an_error_not_a_hang() {
        let mut server = RedisServer::start();
        let store = table(&server).await;
        server.kill();
        assert!(store.read_table().await.is_err());
        assert!(store.write_member(&record("a", 1), false, 0).await.is_err());
        server.restart();
        let mut recovered = false;
        for _ in 0..50 {
            if store.read_table().await.is_ok() {
                recovered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(recovered, "the table is read again once Redis is back");
    }
}
