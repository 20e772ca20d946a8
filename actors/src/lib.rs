//! The tenant domain of Connectors Gateway.
//!
//! Everything that must be consistent for one tenant is decided here: its configuration
//! ([`tenant`]), authentication ([`auth`], [`api_key`], [`allow_list`]), rate windows
//! ([`rate_windows`]) and quotas ([`quotas`]). Those decisions are plain state machines with the
//! time passed in; [`tenant_actor`] is the ractor shell that owns one tenant's state, and
//! [`supervisor`] activates, restarts and passivates those actors. The traits the actors need
//! from the outside world ([`store::Store`], [`clock::Clock`]) are ports: this crate names no
//! adapter, no HTTP and no network.

pub mod absent_tenants;
pub mod admission;
pub mod allow_list;
pub mod api_key;
pub mod audit;
pub mod auth;
pub mod auth_failures;
pub mod backoff;
pub mod clock;
mod commit_round;
pub mod crash_backoff;
pub mod deployer;
pub mod deployments;
pub mod hand_off;
pub mod mcp_sessions;
pub mod policy;
pub mod quarantine;
pub mod quotas;
pub mod rate_windows;
pub mod recorder;
mod recorder_pending;
pub mod recorder_status;
pub mod refresh_schedule;
pub mod refusal_audit;
pub mod reply;
pub mod secret_store;
pub mod server_tools;
mod shedding;
pub mod store;
pub mod supervisor;
pub mod tenant;
pub mod tenant_actor;
pub mod tenant_call;
pub mod tenant_core;
pub mod tenant_mcp_sessions;
pub mod tenant_oauth;
pub mod tenant_servers;
pub mod tick_due;
pub mod token_endpoint;
pub mod unique_id;
pub mod usage;
