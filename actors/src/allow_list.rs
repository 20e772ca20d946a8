//! IP allow-lists: which client addresses may call a tenant's API.
//!
//! Entries are CIDRs or single addresses, IPv4 or IPv6. An empty list allows every address.
//! Parsing rejects malformed entries with the entry named, so a bad list is refused when it is
//! set (PATCH) rather than discovered on a request.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not an IP address or CIDR (e.g. 203.0.113.0/24, 2001:db8::/32, 198.51.100.7)")]
pub struct BadAllowListEntry {
    pub entry: String,
}

/// A parsed allow-list. Matching is a linear scan: lists are short (a handful of office and
/// egress ranges), and a scan of a few nets costs less than building a trie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowList {
    nets: Vec<IpNet>,
}

impl IpAllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadAllowListEntry> {
        let nets = entries.iter().map(|entry| parse_entry(entry.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` may call. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack
    /// socket reports for an IPv4 peer) are matched as the IPv4 address they carry.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

fn parse_entry(entry: &str) -> Result<IpNet, BadAllowListEntry> {
    let trimmed = entry.trim();
    let bad = || BadAllowListEntry { entry: entry.to_string() };
    if trimmed.contains('/') {
        let net: IpNet = trimmed.parse().map_err(|_| bad())?;
        // `10.0.0.1/8` is almost certainly a typo for a network; store the network it names.
        Ok(canonical_net(net.trunc()))
    } else {
        let ip: IpAddr = trimmed.parse().map_err(|_| bad())?;
        Ok(IpNet::from(ip.to_canonical()))
    }
}

/// `::ffff:10.0.0.0/104` means the IPv4 network `10.0.0.0/8`.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
#[path = "allow_list_tests.rs"]
mod tests;
