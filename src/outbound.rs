//! Where the gateway may connect on behalf of tenants: MCP servers (shared integrations and tenants'
//! own `http` servers) and OAuth token endpoints.
//!
//! A URL that names the gateway's own host, its private network or a cloud metadata service would
//! let a tenant reach what belongs to the operator (server-side request forgery). So every address
//! is checked when a connection is made, after resolution, not only when the URL is registered: a
//! name that resolved to a public address at registration may resolve to 127.0.0.1 later (DNS
//! rebinding). [`OutboundPolicy::client`] builds an HTTP client whose resolver does this check, and
//! the URL checks refuse literal addresses, which no resolver sees.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a destination is refused. The text names the host and the rule, never a connection
/// outcome, so a tenant cannot learn which private ports are open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefused {
    #[error("`{host}` is {kind} address, which this gateway does not connect to (outbound.allowedHosts)")]
    Address { host: String, kind: &'static str },
    #[error("`{0}` is not a valid http(s) URL")]
    Url(String),
    #[error("token endpoints must use https (`{host}` is not on outbound.allowedHosts)")]
    Plaintext { host: String },
}

/// An operator's exception to the rules: a host name (every address it resolves to is allowed, and
/// plain http to it for token endpoints), or an address or network.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHost {
    Name(String),
    Net(IpNet),
}

/// `outbound.allowPrivate` and `outbound.allowedHosts`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundPolicy {
    allow_private: bool,
    allowed: Vec<AllowedHost>,
    /// Host names ending so are reached whatever their addresses: set only on the policy of the
    /// client for endpoints a deployer made ([`Self::trusting_suffix`]), never from the config.
    trusted_suffix: Option<String>,
}

impl OutboundPolicy {
    /// `allowed_hosts` entries are host names, addresses or CIDR networks.
    pub fn new(allow_private: bool, allowed_hosts: &[String]) -> Result<Self, String> {
        let allowed = allowed_hosts.iter().map(|entry| parse_allowed(entry)).collect::<Result<_, _>>()?;
        Ok(Self { allow_private, allowed, trusted_suffix: None })
    }

    /// This policy, also trusting host names that end with `suffix` (e.g. `.svc.cluster.local`,
    /// the Services of the Kubernetes deployer's servers). For the client of deployer-made
    /// endpoints only: a tenant's own URL naming such a host must stay refused, or a tenant could
    /// reach another tenant's servers, or the cluster's.
    pub fn trusting_suffix(&self, suffix: &str) -> Self {
        Self { trusted_suffix: Some(suffix.to_ascii_lowercase()), ..self.clone() }
    }

    /// Checks a URL the gateway will call: http(s), and no refused literal address.
    pub fn check_url(&self, url: &str) -> Result<Url, OutboundRefused> {
        let parsed = Url::parse(url).map_err(|_| OutboundRefused::Url(url.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundRefused::Url(url.to_owned()));
        }
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.check_address(&ip.to_string(), IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_address(&ip.to_string(), IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
            None => return Err(OutboundRefused::Url(url.to_owned())),
        }
        Ok(parsed)
    }

    /// Checks a token endpoint: as [`Self::check_url`], and https unless its host is allow-listed
    /// (a refresh token and a client secret must not cross a network in the clear).
    pub fn check_token_endpoint(&self, url: &str) -> Result<Url, OutboundRefused> {
        let parsed = self.check_url(url)?;
        let host = parsed.host_str().unwrap_or_default();
        if parsed.scheme() != "https" && !self.host_listed(host) {
            return Err(OutboundRefused::Plaintext { host: host.to_owned() });
        }
        Ok(parsed)
    }

    /// Whether the gateway may connect to `ip`, which `host` resolved to (or is).
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), OutboundRefused> {
        let Some(kind) = restricted_kind(ip) else { return Ok(()) };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if self.host_listed(bare)
            || self.host_trusted(bare)
            || self.allowed.iter().any(|entry| matches!(entry, AllowedHost::Net(net) if net.contains(&ip)))
        {
            return Ok(());
        }
        if self.allow_private && kind.private_network() {
            return Ok(());
        }
        Err(OutboundRefused::Address { host: host.to_owned(), kind: kind.describe() })
    }

    /// An HTTP client whose every connection goes only to addresses this policy allows, and which
    /// follows no redirects (a redirect would carry a tenant's token to another host).
    pub fn client(self: &Arc<Self>, builder: reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
        builder
            .dns_resolver(Arc::new(CheckedResolver { policy: Arc::clone(self) }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
    }

    /// Whether `host` is a name under the trusted suffix (an address never is).
    fn host_trusted(&self, host: &str) -> bool {
        self.trusted_suffix
            .as_deref()
            .is_some_and(|suffix| host.parse::<IpAddr>().is_err() && host.to_ascii_lowercase().ends_with(suffix))
    }

    fn host_listed(&self, host: &str) -> bool {
        self.allowed.iter().any(|entry| match entry {
            AllowedHost::Name(name) => name.eq_ignore_ascii_case(host),
            AllowedHost::Net(net) => host.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip)),
        })
    }
}

/// The policy with its checked HTTP client (one connection pool for every outbound call).
#[derive(Debug, Clone)]
pub struct CheckedHttp {
    policy: Arc<OutboundPolicy>,
    client: reqwest::Client,
}

impl CheckedHttp {
    pub fn new(policy: Arc<OutboundPolicy>, builder: reqwest::ClientBuilder) -> reqwest::Result<Self> {
        let client = policy.client(builder)?;
        Ok(Self { policy, client })
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

fn parse_allowed(entry: &str) -> Result<AllowedHost, String> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(AllowedHost::Net(net));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(AllowedHost::Net(IpNet::from(ip)));
    }
    let valid_name = !entry.is_empty()
        && entry.len() <= 253
        && entry.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid_name {
        Ok(AllowedHost::Name(entry.to_ascii_lowercase()))
    } else {
        Err(format!("`{entry}` is neither a host name, an address nor a CIDR network"))
    }
}

/// The kinds of address a tenant must not reach by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restricted {
    Loopback,
    Private,
    UniqueLocal,
    SharedNat,
    LinkLocal,
    Unspecified,
    Multicast,
    Reserved,
}

impl Restricted {
    /// Part of an operator's own network, which `outbound.allowPrivate` opens. Link-local stays shut
    /// even then: it is where cloud metadata services answer with the node's credentials.
    fn private_network(self) -> bool {
        matches!(self, Self::Loopback | Self::Private | Self::UniqueLocal | Self::SharedNat)
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback",
            Self::Private => "a private",
            Self::UniqueLocal => "a unique-local",
            Self::SharedNat => "a shared (carrier NAT)",
            Self::LinkLocal => "a link-local (metadata service)",
            Self::Unspecified => "an unspecified",
            Self::Multicast => "a multicast",
            Self::Reserved => "a reserved",
        }
    }
}

fn restricted_kind(ip: IpAddr) -> Option<Restricted> {
    match ip {
        IpAddr::V4(ip) => restricted_v4(ip),
        IpAddr::V6(ip) => restricted_v6(ip),
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<Restricted> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some(Restricted::Loopback)
    } else if ip.is_private() {
        Some(Restricted::Private)
    } else if a == 100 && (64..128).contains(&b) {
        Some(Restricted::SharedNat)
    } else if ip.is_link_local() {
        Some(Restricted::LinkLocal)
    } else if a == 0 {
        Some(Restricted::Unspecified)
    } else if ip.is_multicast() {
        Some(Restricted::Multicast)
    } else if a >= 240 || (a == 192 && b == 0 && ip.octets()[2] == 0) || (a == 198 && (b == 18 || b == 19)) {
        // 240/4 and broadcast, IETF protocol assignments, benchmarking.
        Some(Restricted::Reserved)
    } else {
        None
    }
}

fn restricted_v6(ip: Ipv6Addr) -> Option<Restricted> {
    // An IPv4 address inside IPv6 (mapped, NAT64, 6to4) reaches that IPv4 address.
    if let Some(v4) = embedded_v4(ip) {
        return restricted_v4(v4);
    }
    if ip.is_loopback() {
        Some(Restricted::Loopback)
    } else if ip.is_unspecified() {
        Some(Restricted::Unspecified)
    } else if ip.is_unique_local() {
        Some(Restricted::UniqueLocal)
    } else if ip.is_unicast_link_local() || (ip.segments()[0] & 0xffc0) == 0xfec0 {
        // fe80::/10, and the deprecated site-local fec0::/10.
        Some(Restricted::LinkLocal)
    } else if ip.is_multicast() {
        Some(Restricted::Multicast)
    } else {
        None
    }
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d, deprecated).
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] | [0, 0, 0, 0, 0, 0, high, low] if high != 0 => Some(from(high, low)),
        // 6to4 (2002:a.b.c.d::/48).
        [0x2002, high, low, ..] => Some(from(high, low)),
        _ => None,
    }
}

/// Resolves names for an HTTP client, keeping only the addresses the policy allows.
struct CheckedResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            match resolve_allowed(&policy, name.as_str(), 0).await {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as Addrs),
                Err(Unresolved::Lookup(error)) => Err(error.into()),
                Err(Unresolved::Refused(refused)) => {
                    tracing::warn!(host = name.as_str(), %refused, "outbound connection refused");
                    Err(refused.into())
                }
            }
        })
    }
}

enum Unresolved {
    Lookup(std::io::Error),
    Refused(OutboundRefused),
}

/// The addresses of `host` the policy allows; refused when every address it has is refused.
async fn resolve_allowed(policy: &OutboundPolicy, host: &str, port: u16) -> Result<Vec<SocketAddr>, Unresolved> {
    let resolved = tokio::net::lookup_host((host, port)).await.map_err(Unresolved::Lookup)?;
    let mut refusal = None;
    let allowed: Vec<SocketAddr> = resolved
        .filter(|address| match policy.check_address(host, address.ip()) {
            Ok(()) => true,
            Err(refused) => {
                refusal = Some(refused);
                false
            }
        })
        .collect();
    match refusal {
        Some(refused) if allowed.is_empty() => Err(Unresolved::Refused(refused)),
        _ => Ok(allowed),
    }
}

/// Resolves the URL's host as a connection would and checks its addresses: the early, typed form
/// of the check that [`OutboundPolicy::client`]'s resolver makes again at connect time. A name that
/// does not resolve breaks no rule; the connection reports it.
pub async fn check_resolved(policy: &OutboundPolicy, url: &Url) -> Result<(), OutboundRefused> {
    let Some(url::Host::Domain(host)) = url.host() else { return Ok(()) };
    match resolve_allowed(policy, host, url.port_or_known_default().unwrap_or(0)).await {
        Err(Unresolved::Refused(refused)) => Err(refused),
        Ok(_) | Err(Unresolved::Lookup(_)) => Ok(()),
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
