//! Connectors Gateway: the HTTP edge, configuration, adapters of the ports, and the running
//! gateway that ties them to the tenant actors of `connectors-actors`.

pub mod admin_cli;
pub mod app;
pub mod audit_follow;
pub mod backends;
pub mod billing;
pub mod billing_webhook;
pub mod cli;
pub mod cluster_settings;
pub mod cluster_status;
pub mod config;
pub mod http;
pub mod keys;
pub mod log_filter;
pub mod metrics;
pub mod migrate;
pub mod oauth_client;
pub mod otel;
pub mod outbound;
pub mod tenant_logs;
pub mod tools;
