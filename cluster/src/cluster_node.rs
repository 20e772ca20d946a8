//! `ClusterNode`: the shell that runs this node's membership. Every heartbeat it feeds the
//! [`Membership`] state machine, carries out its effects against the [`MembershipStore`], and
//! hands each new view to the links (whom to connect to) and the router (which shards to serve),
//! and the lease the table gives to the router. It also runs the graceful exit: drain (hand every
//! shard off), then leave.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::membership::{Membership, MembershipEffect, MembershipInput, NodeStatus, View};
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
    /// Set by [`ClusterNode::drain`].
    draining: std::sync::atomic::AtomicBool,
    /// Woken once a newer incarnation of this node id took over: this process must exit.
    pub superseded: tokio::sync::Notify,
    /// Held while deciding and carrying out one batch of effects: a heartbeat decided before a
    /// drain must not land after the drain's write.
    turn: tokio::sync::Mutex<()>,
}

/// What `GET /api/v1/admin/cluster` and `/readyz` show.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub view: Option<Arc<View>>,
    pub shards_total: u16,
    pub shards_owned: usize,
    pub shards_served: usize,
    pub table_reachable: bool,
    /// This node is handing its shards off before it stops.
    pub draining: bool,
    /// This node is new and watches the cluster before it owns shards.
    pub joining: bool,
    /// The membership table still vouches for this node (its lease runs).
    pub leased: bool,
}

impl ClusterStatus {
    /// Ready: joined, the table answers and vouches for us, every owned shard is served here,
    /// and the node is not on its way out.
    pub fn ready(&self) -> bool {
        self.view.is_some()
            && self.table_reachable
            && self.leased
            && !self.draining
            && self.shards_served == self.shards_owned
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
            draining: std::sync::atomic::AtomicBool::new(false),
            superseded: tokio::sync::Notify::new(),
            turn: tokio::sync::Mutex::new(()),
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
            draining: self.draining.load(std::sync::atomic::Ordering::Relaxed),
            joining: self.view.load().as_ref().and_then(|view| view.member(ownership.me()).map(|me| me.status))
                == Some(NodeStatus::Joining),
            leased: crate::router::now_ms() < ownership.lease_until_ms(),
        }
    }

    /// Hands every shard of this node to the nodes that own them once it is `Draining`: its
    /// tenants' actors stop and write their state out, and each new owner confirms it has taken
    /// over. Returns whether that finished before `deadline` (if not, the remaining shards are
    /// recovered by their new owners from the store after this node leaves).
    /// Whether this node is handing its shards off before it stops.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn drain(&self, deadline: Duration) -> bool {
        self.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        {
            let _turn = self.turn.lock().await;
            let effects = self.lock().start_draining();
            self.carry_out(effects).await;
        }
        let started = std::time::Instant::now();
        loop {
            let shown = self.lock().view().is_some_and(|view| {
                view.member(self.router.table().snapshot().me()).is_some_and(|me| me.status == NodeStatus::Draining)
            });
            if shown && self.router.handed_off() {
                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "every shard handed off");
                return true;
            }
            if started.elapsed() >= deadline {
                tracing::warn!(
                    deadline_seconds = deadline.as_secs(),
                    "drain deadline passed before every new owner confirmed; leaving anyway"
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Leaves the view once this node's tenants are stopped and their state written out (on
    /// shutdown): the record says `Down`, so peers remove it at once and take over whatever is
    /// left without waiting for this node's lease to run out.
    pub async fn leave(&self) {
        self.leaving.store(true, std::sync::atomic::Ordering::Relaxed);
        let _turn = self.turn.lock().await;
        let effects = self.lock().leave();
        self.carry_out(effects).await;
        if self.reachable.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!("left the cluster view");
        } else {
            tracing::warn!("cannot leave the cluster view; peers will time this node out");
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
                MembershipEffect::WriteSelf { record, bump_epoch, min_epoch } => {
                    if let Err(error) = self.store.write_member(&record, bump_epoch, min_epoch).await {
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
                            tracing::info!(nodes = ?names, epoch = expected_epoch + 1, "removed nodes that left or stopped heartbeating");
                            queue.push_back(MembershipEffect::ReadTable);
                        }
                        Ok(false) => {}
                        Err(error) => queue.extend(self.unreachable(error.to_string())),
                    }
                }
                MembershipEffect::ViewChanged(view) => self.install(view),
            }
        }
        let (lease_until_ms, superseded) = {
            let membership = self.lock();
            (membership.lease_until_ms(), membership.is_superseded())
        };
        self.router.renew_lease(lease_until_ms);
        if superseded && !self.leaving.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(
                "another process started with this node id has taken its place in the cluster; this one stops serving"
            );
            self.superseded.notify_one();
        }
    }

    fn unreachable(&self, error: String) -> Vec<MembershipEffect> {
        if self.reachable.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(%error, "membership table unreachable; admitting only until this node's lease runs out");
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
        let takeover_not_before_ms = self.lock().takeover_not_before_ms();
        let members = members.into_iter().map(|(id, _)| id).collect();
        self.router.install(view.shard_map(), members, takeover_not_before_ms, view.fingerprint());
        self.view.store(Some(Arc::new(view)));
    }
}

async fn run(node: std::sync::Weak<ClusterNode>) {
    loop {
        let Some(current) = node.upgrade() else { return };
        if current.leaving.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        {
            let _turn = current.turn.lock().await;
            if current.router.table().take_conflict() {
                current.lock().view_conflict();
            }
            let effects = current.feed(MembershipInput::Tick);
            current.carry_out(effects).await;
        }
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
