//! The secret and the address a node joins the cluster with (`CONNECTORS_CLUSTER_COOKIE`,
//! `--cluster-advertise`), checked before anything is bound or dialled.

use std::net::{IpAddr, SocketAddr};

/// Shortest cookie accepted: 32 random bytes encoded are longer, a guessable word is not.
pub const MIN_COOKIE_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterSettingsError {
    #[error(
        "cluster mode needs CONNECTORS_CLUSTER_COOKIE: a shared secret that every node of the cluster is given \
         (32 random bytes, e.g. `openssl rand -base64 32`)"
    )]
    MissingCookie,
    #[error(
        "CONNECTORS_CLUSTER_COOKIE has {0} characters; at least {MIN_COOKIE_CHARS} are needed \
         (32 random bytes, e.g. `openssl rand -base64 32`)"
    )]
    WeakCookie(usize),
    #[error("--cluster-advertise (CONNECTORS_CLUSTER_ADVERTISE) `{address}`: {reason}")]
    Advertise { address: String, reason: &'static str },
    #[error(
        "--cluster-listen (CONNECTORS_CLUSTER_LISTEN) {0} binds every interface, which is no address peers can \
         dial: set --cluster-advertise (CONNECTORS_CLUSTER_ADVERTISE) to the host:port they reach this node at"
    )]
    AdvertiseNeeded(SocketAddr),
}

/// The cookie, if it is long enough to be a secret.
pub fn cookie(value: Option<&str>) -> Result<String, ClusterSettingsError> {
    let value = value.map(str::trim).filter(|c| !c.is_empty()).ok_or(ClusterSettingsError::MissingCookie)?;
    let chars = value.chars().count();
    if chars < MIN_COOKIE_CHARS {
        return Err(ClusterSettingsError::WeakCookie(chars));
    }
    Ok(value.to_string())
}

/// The address peers are told to dial: the one given (`host:port`, the host a DNS name or an
/// IP, resolved by each peer when it dials), else `None` for the listen address itself, which
/// must then be one a peer can dial.
pub fn advertise(listen: SocketAddr, given: Option<&str>) -> Result<Option<String>, ClusterSettingsError> {
    let Some(address) = given else {
        return if listen.ip().is_unspecified() {
            Err(ClusterSettingsError::AdvertiseNeeded(listen))
        } else {
            Ok(None)
        };
    };
    let refuse = |reason| Err(ClusterSettingsError::Advertise { address: address.to_string(), reason });
    let Some((host, port)) = address.rsplit_once(':') else {
        return refuse("expected host:port");
    };
    if !port.parse::<u16>().is_ok_and(|port| port > 0) {
        return refuse("the port must be a number from 1 to 65535");
    }
    let ip = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse::<IpAddr>();
    match ip {
        Ok(ip) if ip.is_unspecified() => refuse("an unspecified address (0.0.0.0, [::]) is no address to dial"),
        Ok(IpAddr::V6(_)) if !host.starts_with('[') => refuse("write an IPv6 address in brackets: [addr]:port"),
        Ok(_) => Ok(Some(address.to_string())),
        Err(_) if is_dns_name(host) => Ok(Some(address.to_string())),
        Err(_) => refuse("the host is neither an IP address nor a DNS name"),
    }
}

fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
#[path = "cluster_settings_tests.rs"]
mod tests;
