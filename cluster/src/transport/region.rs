//! `ShardRegion`: the one actor per node that peers talk to. It answers tenant calls for the
//! shards this node serves, release confirmations, audit events of its tenants, hand-offs of
//! tenants it takes over and pings. It is found by peers through a
//! process group named after the node, which ractor_cluster mirrors across node links.
//!
//! Each question (or batch of questions) is answered on its own task, so one slow tenant never
//! holds up the others beyond its batch.

use std::sync::Arc;

use async_trait::async_trait;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::shard_map::NodeId;
use connectors_actors::reply::Answer;

/// Variants are matched by name on the wire: add new ones, never rename or remove one.
/// Payloads are versioned bytes (see [`super::wire`]).
#[derive(RactorClusterMessage)]
pub enum RegionMsg {
    /// A `TenantRequest`, answered with a `TenantAnswer`.
    #[rpc]
    Ask(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A `ReleaseRequest`, answered with a `ReleaseAnswer`.
    #[rpc]
    Release(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// The sender's view epoch; answered with the receiver's.
    #[rpc]
    Ping(u64, RpcReplyPort<u64>),
    /// An `AuditBatch` (compact to a peer that reads compact batches of requests, JSON to
    /// others), answered with an `AuditAnswer`. (Added after the first version: an older node
    /// drops it, the sender's call times out and it records the events itself.)
    #[rpc]
    Audit(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A `HandOffBatch`, answered with a `HandOffAnswer`. (Added after `Audit`: an older node
    /// drops it, and the new owner of those tenants reads their state from the store.)
    #[rpc]
    HandOff(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// `TenantRequest`s to this node in one message (`compact::encode_batch`; a JSON
    /// array from a node of the version before it), answered with their `TenantAnswer`s in
    /// order, in the same form. (Added after `HandOff`: an older node drops it, so a sender asks
    /// with an empty batch first and sends `Ask`s one by one to a node that does not answer in
    /// the compact form.)
    #[rpc]
    AskBatch(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// What the region does with what arrives (the shard router, on a real node).
#[async_trait]
pub trait RegionHandler: Send + Sync + 'static {
    async fn ask(&self, payload: Vec<u8>) -> Vec<u8>;
    /// A batch is answered when its last request is: each request's own deadline bounds that.
    async fn ask_batch(&self, payload: Vec<u8>) -> Vec<u8>;
    async fn release(&self, payload: Vec<u8>) -> Vec<u8>;
    async fn audit(&self, payload: Vec<u8>) -> Vec<u8>;
    async fn hand_off(&self, payload: Vec<u8>) -> Vec<u8>;
    fn epoch(&self) -> u64;
}

/// The process group through which peers find node `node`'s region.
pub fn region_group(node: &NodeId) -> String {
    format!("connectors.region.{node}")
}

pub struct ShardRegion;

pub struct RegionArgs {
    pub me: NodeId,
    pub handler: Arc<dyn RegionHandler>,
}

impl ShardRegion {
    pub async fn start(args: RegionArgs) -> Result<ActorRef<RegionMsg>, ractor::SpawnErr> {
        let (region, _) = Actor::spawn(None, ShardRegion, args).await?;
        Ok(region)
    }
}

impl Actor for ShardRegion {
    type Msg = RegionMsg;
    type State = Arc<dyn RegionHandler>;
    type Arguments = RegionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RegionMsg>,
        args: RegionArgs,
    ) -> Result<Arc<dyn RegionHandler>, ActorProcessingErr> {
        ractor::pg::join(region_group(&args.me), vec![myself.get_cell()]);
        Ok(args.handler)
    }

    async fn handle(
        &self,
        _: ActorRef<RegionMsg>,
        message: RegionMsg,
        handler: &mut Arc<dyn RegionHandler>,
    ) -> Result<(), ActorProcessingErr> {
        let handler = handler.clone();
        match message {
            RegionMsg::Ask(payload, reply) => {
                tokio::spawn(async move {
                    reply.answer(handler.ask(payload).await);
                });
            }
            RegionMsg::AskBatch(payload, reply) => {
                tokio::spawn(async move {
                    reply.answer(handler.ask_batch(payload).await);
                });
            }
            RegionMsg::Release(payload, reply) => {
                tokio::spawn(async move {
                    reply.answer(handler.release(payload).await);
                });
            }
            RegionMsg::Audit(payload, reply) => {
                tokio::spawn(async move {
                    reply.answer(handler.audit(payload).await);
                });
            }
            RegionMsg::HandOff(payload, reply) => {
                tokio::spawn(async move {
                    reply.answer(handler.hand_off(payload).await);
                });
            }
            RegionMsg::Ping(_, reply) => {
                reply.answer(handler.epoch());
            }
        }
        Ok(())
    }
}
