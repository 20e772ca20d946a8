//! `ClusterNode`: the shell that runs this node's membership. Every heartbeat it feeds the
//! [`Membership`] state machine, carries out its effects against the [`MembershipStore`], and
//! hands each new view to the links (whom to connect to) and the router (which shards to serve).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::membership::{Membership, MembershipEffect, MembershipInput, View};
use crate::membership_store::MembershipStore;
use crate::router::ShardRouter;
use crate::shard_map::SHARDS;
use crate::transport::links::Links;

pub struct ClusterNode {
    membership: Mutex<Membership>,
    store: Arc<dyn MembershipStore>,
    links: Arc<Links>,
    router: Arc<ShardRouter>,
    view: ArcSwapOption<View>,
    heartbeat: Duration,
    reachable: std::sync::atomic::AtomicBool,
    /// Set by [`ClusterNode::leave`]: no more heartbeats (they would rejoin).
    leaving: std::sync::atomic::AtomicBool,
}

/// What `GET /api/v1/admin/cluster` and `/readyz` show.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub view: Option<Arc<View>>,
    pub shards_total: u16,
    pub shards_owned: usize,
    pub shards_served: usize,
    pub table_reachable: bool,
}

impl ClusterStatus {
    /// Ready: joined, the table answers, and every owned shard is served here.
    pub fn ready(&self) -> bool {
        self.view.is_some() && self.table_reachable && self.shards_served == self.shards_owned
    }
}

impl ClusterNode {
    pub fn start(
        membership: Membership,
        store: Arc<dyn MembershipStore>,
        links: Arc<Links>,
        router: Arc<ShardRouter>,
        heartbeat: Duration,
    ) -> Arc<Self> {
        let node = Arc::new(Self {
            membership: Mutex::new(membership),
            store,
            links,
            router,
            view: ArcSwapOption::empty(),
            heartbeat,
            reachable: std::sync::atomic::AtomicBool::new(false),
            leaving: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(run(Arc::downgrade(&node)));
        node
    }

    pub fn status(&self) -> ClusterStatus {
        let ownership = self.router.table().snapshot();
        ClusterStatus {
            view: self.view.load_full(),
            shards_total: SHARDS,
            shards_owned: ownership.map().count_owned_by(ownership.me()),
            shards_served: ownership.active_count(),
            table_reachable: self.reachable.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Takes this node out of the table once its tenants' state is written out (on shutdown),
    /// so peers take its shards over at once instead of waiting for its heartbeat to time out.
    pub async fn leave(&self) {
        self.leaving.store(true, std::sync::atomic::Ordering::Relaxed);
        let me = self.router.table().snapshot().me().clone();
        for _ in 0..5 {
            let table = match self.store.read_table().await {
                Ok(table) => table,
                Err(error) => {
                    tracing::warn!(%error, "cannot leave the cluster view; peers will time this node out");
                    return;
                }
            };
            match self.store.remove_members(std::slice::from_ref(&me), table.epoch).await {
                Ok(true) => {
                    tracing::info!(epoch = table.epoch + 1, "left the cluster view");
                    return;
                }
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot leave the cluster view; peers will time this node out");
                    return;
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn feed(&self, input: MembershipInput) -> Vec<MembershipEffect> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.lock().handle(now_ms, input)
    }

    async fn carry_out(&self, effects: Vec<MembershipEffect>) {
        let mut queue = std::collections::VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            match effect {
                MembershipEffect::WriteSelf { .. } if self.leaving.load(std::sync::atomic::Ordering::Relaxed) => {}
                MembershipEffect::WriteSelf { record, bump_epoch } => {
                    if let Err(error) = self.store.write_member(&record, bump_epoch).await {
                        queue.extend(self.unreachable(error.to_string()));
                    }
                }
                MembershipEffect::ReadTable => match self.store.read_table().await {
                    Ok(table) => {
                        self.set_reachable(true);
                        queue.extend(self.feed(MembershipInput::TableRead(table)));
                    }
                    Err(error) => queue.extend(self.unreachable(error.to_string())),
                },
                MembershipEffect::RemoveMembers { ids, expected_epoch } => {
                    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
                    match self.store.remove_members(&ids, expected_epoch).await {
                        Ok(true) => {
                            tracing::warn!(nodes = ?names, epoch = expected_epoch + 1, "removed nodes that stopped heartbeating");
                            queue.push_back(MembershipEffect::ReadTable);
                        }
                        Ok(false) => {}
                        Err(error) => queue.extend(self.unreachable(error.to_string())),
                    }
                }
                MembershipEffect::ViewChanged(view) => self.install(view),
            }
        }
    }

    fn unreachable(&self, error: String) -> Vec<MembershipEffect> {
        if self.reachable.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(%error, "membership table unreachable; serving owned tenants from memory");
        }
        self.feed(MembershipInput::TableUnreachable)
    }

    fn set_reachable(&self, reachable: bool) {
        if !self.reachable.swap(reachable, std::sync::atomic::Ordering::Relaxed) && reachable {
            tracing::info!("membership table reachable");
        }
    }

    fn install(&self, view: View) {
        let members: Vec<_> = view.members.iter().map(|m| (m.id.clone(), m.cluster_addr.clone())).collect();
        tracing::info!(
            epoch = view.epoch,
            nodes = ?members.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
            "new cluster view"
        );
        self.links.sync(&members);
        self.router.install(view.shard_map());
        self.view.store(Some(Arc::new(view)));
    }
}

async fn run(node: std::sync::Weak<ClusterNode>) {
    loop {
        let Some(current) = node.upgrade() else { return };
        if current.leaving.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let effects = current.feed(MembershipInput::Tick);
        current.carry_out(effects).await;
        let heartbeat = current.heartbeat;
        let table = current.router.table().clone();
        drop(current);
        tokio::select! {
            () = tokio::time::sleep(heartbeat) => {}
            // A peer has a newer view: read the table now, but not more than 20 times a second.
            () = table.behind.notified() => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
