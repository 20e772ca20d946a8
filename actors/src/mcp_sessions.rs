//! `McpSessions`: the MCP sessions of one tenant (the gateway's own MCP endpoint, `/mcp`), as
//! a pure state machine owned by the tenant's actor.
//!
//! It decides which sessions exist, when one has expired (idle longer than the limit), whether
//! one more fits (a bounded number per tenant), and keeps each session's bounded log of the
//! messages sent on its SSE streams, so that a client that lost a stream resumes it with
//! `Last-Event-ID` on any node. It does no I/O: every change it makes is handed out as an
//! [`SessionEffect`] (persist a session, forget one) that the actor's shell carries out before
//! answering, so that sessions survive a restart and a hand-off of their tenant. It does not
//! speak MCP or HTTP: which messages go on which stream is the edge's business.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The bounds of one tenant's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions a tenant holds at once; opening one more is refused.
    pub max_sessions: usize,
    /// A session unused this long has expired.
    pub idle_timeout: Duration,
    /// Messages kept per session for resumption; older ones are dropped first.
    pub max_events: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { max_sessions: 100, idle_timeout: Duration::hours(1), max_events: 256 }
    }
}

/// One message sent on a session's stream, kept for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Increasing within the session, across all its streams.
    pub id: u64,
    /// Which stream it was sent on (one per POST answered as SSE, one for the GET stream).
    pub stream: String,
    /// The JSON-RPC message, as sent.
    pub message: String,
}

/// One session, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpSession {
    pub id: String,
    pub protocol_version: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// The client said `notifications/initialized`.
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub events: VecDeque<SessionEvent>,
    #[serde(default)]
    pub next_event_id: u64,
    /// A fingerprint of the tool list this session was last told about (for `list_changed`).
    #[serde(default)]
    pub catalog_seen: Option<String>,
}

/// What the edge learns of a live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub protocol_version: String,
    pub initialized: bool,
    pub catalog_seen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SessionError {
    /// Unknown, closed or expired: the client must initialize again (HTTP 404).
    #[error("session not found or expired")]
    NotFound,
    #[error("the tenant already holds {limit} MCP sessions")]
    TooMany { limit: usize },
    #[error("a session with this id exists")]
    Exists,
    /// The event named is no longer kept (or never was): the stream cannot be resumed.
    #[error("event {0} is not in the session's log")]
    UnknownEvent(u64),
}

/// What the shell must do, in order, before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEffect {
    Persist(McpSession),
    Forget(String),
}

/// Events of one stream after a given one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    pub stream: String,
    pub events: Vec<SessionEvent>,
}

#[derive(Debug, Default)]
pub struct McpSessions {
    limits: SessionLimits,
    sessions: BTreeMap<String, McpSession>,
    /// When each session's `last_used_at` was last persisted: a use is persisted only when
    /// that is old, so that a session's requests do not each cost a store write.
    persisted_use: BTreeMap<String, DateTime<Utc>>,
    effects: Vec<SessionEffect>,
}

impl McpSessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// Replaces every session with those read back from the store (after an activation, a
    /// restart, a hand-off or a failed write); expired ones are forgotten.
    pub fn restore(&mut self, now: DateTime<Utc>, sessions: Vec<McpSession>) {
        self.sessions.clear();
        self.persisted_use.clear();
        self.effects.clear();
        for session in sessions {
            self.persisted_use.insert(session.id.clone(), session.last_used_at);
            self.sessions.insert(session.id.clone(), session);
        }
        self.expire(now);
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// What the shell must carry out now.
    pub fn drain_effects(&mut self) -> Vec<SessionEffect> {
        std::mem::take(&mut self.effects)
    }

    /// A new session, after a successful `initialize`.
    pub fn open(&mut self, now: DateTime<Utc>, id: String, protocol_version: String) -> Result<(), SessionError> {
        self.expire(now);
        if self.sessions.contains_key(&id) {
            return Err(SessionError::Exists);
        }
        if self.sessions.len() >= self.limits.max_sessions {
            return Err(SessionError::TooMany { limit: self.limits.max_sessions });
        }
        let session = McpSession {
            id: id.clone(),
            protocol_version,
            created_at: now,
            last_used_at: now,
            initialized: false,
            events: VecDeque::new(),
            next_event_id: 1,
            catalog_seen: None,
        };
        self.persisted_use.insert(id.clone(), now);
        self.effects.push(SessionEffect::Persist(session.clone()));
        self.sessions.insert(id, session);
        Ok(())
    }

    /// A request of session `id`: answers what the edge needs and keeps the session alive.
    pub fn touch(&mut self, now: DateTime<Utc>, id: &str) -> Result<SessionView, SessionError> {
        self.expire(now);
        let session = self.sessions.get_mut(id).ok_or(SessionError::NotFound)?;
        session.last_used_at = now;
        let view = SessionView {
            protocol_version: session.protocol_version.clone(),
            initialized: session.initialized,
            catalog_seen: session.catalog_seen.clone(),
        };
        let persisted = self.persisted_use.get(id).copied().unwrap_or(session.created_at);
        if now - persisted >= self.limits.idle_timeout / 10 {
            self.persisted_use.insert(id.to_string(), now);
            self.effects.push(SessionEffect::Persist(session.clone()));
        }
        Ok(view)
    }

    /// The client sent `notifications/initialized`.
    pub fn initialized(&mut self, now: DateTime<Utc>, id: &str) -> Result<(), SessionError> {
        self.change(now, id, |session| session.initialized = true)
    }

    /// The session was told about the tool list with this fingerprint.
    pub fn catalog_seen(&mut self, now: DateTime<Utc>, id: &str, fingerprint: String) -> Result<(), SessionError> {
        self.change(now, id, |session| session.catalog_seen = Some(fingerprint))
    }

    /// A message about to be sent on `stream`: logged, and its event id answered.
    pub fn record(
        &mut self,
        now: DateTime<Utc>,
        id: &str,
        stream: String,
        message: String,
    ) -> Result<u64, SessionError> {
        let max_events = self.limits.max_events.max(1);
        let mut event_id = 0;
        self.change(now, id, |session| {
            event_id = session.next_event_id;
            session.next_event_id += 1;
            session.events.push_back(SessionEvent { id: event_id, stream, message });
            while session.events.len() > max_events {
                session.events.pop_front();
            }
        })?;
        Ok(event_id)
    }

    /// The messages of the stream that event `after` was sent on, after it (`Last-Event-ID`).
    pub fn replay(&mut self, now: DateTime<Utc>, id: &str, after: u64) -> Result<Replay, SessionError> {
        self.touch(now, id)?;
        let session = self.sessions.get(id).ok_or(SessionError::NotFound)?;
        let stream = session
            .events
            .iter()
            .find(|event| event.id == after)
            .map(|event| event.stream.clone())
            .ok_or(SessionError::UnknownEvent(after))?;
        let events =
            session.events.iter().filter(|event| event.id > after && event.stream == stream).cloned().collect();
        Ok(Replay { stream, events })
    }

    /// The client ended the session (HTTP DELETE).
    pub fn close(&mut self, now: DateTime<Utc>, id: &str) -> Result<(), SessionError> {
        self.expire(now);
        self.sessions.remove(id).ok_or(SessionError::NotFound)?;
        self.persisted_use.remove(id);
        self.effects.push(SessionEffect::Forget(id.to_string()));
        Ok(())
    }

    /// A persisted change to one live session.
    fn change(
        &mut self,
        now: DateTime<Utc>,
        id: &str,
        apply: impl FnOnce(&mut McpSession),
    ) -> Result<(), SessionError> {
        self.expire(now);
        let session = self.sessions.get_mut(id).ok_or(SessionError::NotFound)?;
        session.last_used_at = now;
        apply(session);
        self.persisted_use.insert(id.to_string(), now);
        self.effects.push(SessionEffect::Persist(session.clone()));
        Ok(())
    }

    /// Forgets every session idle for the limit or longer.
    fn expire(&mut self, now: DateTime<Utc>) {
        let timeout = self.limits.idle_timeout;
        let expired: Vec<String> = self
            .sessions
            .values()
            .filter(|session| now - session.last_used_at >= timeout)
            .map(|session| session.id.clone())
            .collect();
        for id in expired {
            self.sessions.remove(&id);
            self.persisted_use.remove(&id);
            self.effects.push(SessionEffect::Forget(id));
        }
    }
}

#[cfg(test)]
#[path = "mcp_sessions_tests.rs"]
mod tests;
