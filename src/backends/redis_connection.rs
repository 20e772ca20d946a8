//! The connection the Redis adapters (`redis_store`, `redis_rate_counter`) share the shape of:
//! how it is opened (failing fast at start-up), how it is kept (it reconnects by itself, and no
//! call waits forever) and how Redis' failures become [`StoreError`]s. It knows no key.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use connectors_actors::store::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError};

/// How long start-up waits for Redis: a gateway whose store is down says so at once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command may take before the call fails instead of waiting.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per reconnection, 100 ms to 1 s apart. Few, because every later call that finds the
/// connection broken starts a new round: calls fail quickly while Redis is down, and the first
/// call after it is back reconnects.
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// The server code of the errors our Lua scripts raise on data they cannot read.
pub(crate) const CORRUPT_CODE: &str = "CORRUPT";

/// A multiplexed connection that reconnects by itself; cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisConnection {
    manager: ConnectionManager,
    /// The URL without credentials, for messages.
    url: Arc<str>,
}

impl RedisConnection {
    /// Connects to `url`, or fails within [`CONNECT_TIMEOUT`] with a message naming the URL
    /// (without its password).
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = redacted(url);
        let cannot_connect =
            |reason: &dyn Display| StoreError::Backend(format!("cannot connect to Redis at `{shown}`: {reason}"));
        // rediss:// builds its TLS settings from the process's default crypto provider, which a
        // build with more than one provider compiled in does not choose by itself.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err: another thread installed one first, which serves as well.
            rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
        }
        let client = redis::Client::open(url).map_err(|err| cannot_connect(&err))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        // The manager retries a refused connection; the outer bound also covers a server that
        // accepts the socket but never answers.
        let manager = tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| cannot_connect(&format_args!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|err| cannot_connect(&err))?;
        Ok(Self { manager, url: shown.into() })
    }

    /// A handle for one call; all handles share the one connection.
    pub(crate) fn handle(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Maps a failed call: data Redis holds but we cannot read (a value that does not convert,
    /// a key of another type, what our scripts call corrupt) is [`StoreError::Corrupt`];
    /// everything else (connection, timeout, protocol, server refusing) is
    /// [`StoreError::Backend`].
    pub(crate) fn failure(&self, err: RedisError) -> StoreError {
        let unreadable =
            err.kind() == ErrorKind::UnexpectedReturnType || matches!(err.code(), Some("WRONGTYPE" | CORRUPT_CODE));
        if unreadable {
            StoreError::Corrupt(format!("Redis at `{}` holds data this gateway cannot read: {err}", self.url))
        } else {
            StoreError::Backend(format!("Redis at `{}` failed: {err}", self.url))
        }
    }
}

/// `url` with the password (and any query string, which can carry one) replaced by `***`.
fn redacted(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((url, _)) => (url, "?***"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we can take apart; say nothing of it rather than risk showing a secret.
        return "<unparsable URL>".to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None if userinfo.is_empty() => format!("@{host}"),
            // `redis://secret@host` is a password alone in redis-rs' reading.
            None => format!("***@{host}"),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{path}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_passwords() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
            ("redis://:s3cret@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
            ("rediss://gateway:s3cret@redis.internal", "rediss://gateway:***@redis.internal"),
            ("redis://s3cret@redis.internal", "redis://***@redis.internal"),
            ("redis+unix:///run/redis.sock?db=1&pass=s3cret", "redis+unix:///run/redis.sock?***"),
            ("s3cret", "<unparsable URL>"),
        ];
        for (url, shown) in cases {
            assert_eq!(redacted(url), shown, "{url}");
        }
    }
}
