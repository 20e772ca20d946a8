//! The tenant actor's MCP-session shell: it feeds the tenant's [`McpSessions`] and carries out
//! what they decide with the [`Store`](crate::store::Store) (collection `mcp-sessions:<tenant>`,
//! one JSON entry per session), before the call is answered.
//!
//! Sessions are read from the store at the first call after the actor starts (activation,
//! restart, hand-off to this node), so a session opened on one owner continues on the next. A
//! write that fails leaves memory ahead of the store: the shell then reloads from the store
//! before the next call, and the call that failed is answered with the error.

use serde::{Deserialize, Serialize};

use crate::mcp_sessions::{McpSession, McpSessions, Replay, SessionEffect, SessionLimits, SessionView};
use crate::tenant::TenantId;
use crate::tenant_actor::{TenantEnv, TenantError};

/// The store collection of a tenant's MCP sessions.
pub fn collection(tenant: &TenantId) -> String {
    format!("mcp-sessions:{tenant}")
}

/// What the edge asks about a tenant's MCP sessions. Matched by name on the wire: add
/// variants, never rename one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum McpSessionCall {
    Open { id: String, protocol_version: String },
    Touch { id: String },
    Initialized { id: String },
    CatalogSeen { id: String, fingerprint: String },
    Record { id: String, stream: String, message: String },
    Replay { id: String, after: u64 },
    Close { id: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum McpSessionAnswer {
    Done,
    Session(SessionView),
    Recorded { event_id: u64 },
    Replayed(Replay),
}

pub struct TenantMcpSessions {
    sessions: McpSessions,
    loaded: bool,
}

impl TenantMcpSessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self { sessions: McpSessions::new(limits), loaded: false }
    }

    pub async fn call(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        call: McpSessionCall,
    ) -> Result<McpSessionAnswer, TenantError> {
        let now = env.clock.now();
        if !self.loaded {
            self.load(env, tenant).await?;
        }
        let sessions = &mut self.sessions;
        let answer = match call {
            McpSessionCall::Open { id, protocol_version } => {
                sessions.open(now, id, protocol_version).map(|()| McpSessionAnswer::Done)
            }
            McpSessionCall::Touch { id } => sessions.touch(now, &id).map(McpSessionAnswer::Session),
            McpSessionCall::Initialized { id } => sessions.initialized(now, &id).map(|()| McpSessionAnswer::Done),
            McpSessionCall::CatalogSeen { id, fingerprint } => {
                sessions.catalog_seen(now, &id, fingerprint).map(|()| McpSessionAnswer::Done)
            }
            McpSessionCall::Record { id, stream, message } => {
                sessions.record(now, &id, stream, message).map(|event_id| McpSessionAnswer::Recorded { event_id })
            }
            McpSessionCall::Replay { id, after } => sessions.replay(now, &id, after).map(McpSessionAnswer::Replayed),
            McpSessionCall::Close { id } => sessions.close(now, &id).map(|()| McpSessionAnswer::Done),
        };
        self.carry_out(env, tenant).await?;
        answer.map_err(TenantError::McpSession)
    }

    async fn load(&mut self, env: &TenantEnv, tenant: &TenantId) -> Result<(), TenantError> {
        let entries = env.store.entries(&collection(tenant)).await?;
        let mut restored = Vec::new();
        for (id, bytes) in entries {
            match serde_json::from_slice::<McpSession>(&bytes) {
                Ok(session) => restored.push(session),
                Err(error) => tracing::error!(%tenant, session = %id, %error, "unreadable MCP session; skipped"),
            }
        }
        self.sessions.restore(env.clock.now(), restored);
        self.loaded = true;
        // Expired sessions restored are forgotten in the store too.
        self.carry_out(env, tenant).await
    }

    async fn carry_out(&mut self, env: &TenantEnv, tenant: &TenantId) -> Result<(), TenantError> {
        let collection = collection(tenant);
        for effect in self.sessions.drain_effects() {
            let written = match &effect {
                SessionEffect::Persist(session) => match serde_json::to_vec(session) {
                    Ok(bytes) => env.store.put_entry(&collection, &session.id, &bytes).await,
                    Err(error) => Err(crate::store::StoreError::Corrupt(error.to_string())),
                },
                SessionEffect::Forget(id) => env.store.delete_entry(&collection, id).await.map(|_| ()),
            };
            if let Err(error) = written {
                tracing::warn!(%tenant, %error, "cannot write an MCP session; reloading before the next call");
                self.sessions.drain_effects();
                self.loaded = false;
                return Err(error.into());
            }
        }
        Ok(())
    }
}
