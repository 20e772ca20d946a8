//! The names of the objects the Kubernetes deployer makes, safe for every tenant id and server
//! name: DNS-1035 labels (lowercase letters, digits and inner hyphens, starting with a letter, at
//! most 63 characters), which every kind it makes accepts (a Service needs the leading letter).

use connectors_actors::deployer::ServerName;
use connectors_actors::tenant::TenantId;
use sha2::{Digest, Sha256};

/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// A tenant's namespace. Tenant ids have at most 56 characters, so this always fits.
pub fn namespace(tenant: &TenantId) -> String {
    format!("tenant-{tenant}")
}

/// A server's Deployment and Service.
pub fn server_object(name: &ServerName) -> String {
    label("mcp-", name, "")
}

/// The Job that builds a server's `github` source.
pub fn build_job(name: &ServerName) -> String {
    label("mcp-", name, "-build")
}

/// `prefix + name + suffix`, or, when that is too long, the name cut short and followed by a hash
/// of the whole name, so that two names of one tenant never share an object.
fn label(prefix: &str, name: &ServerName, suffix: &str) -> String {
    let name = name.as_str();
    if prefix.len() + name.len() + suffix.len() <= MAX_LABEL {
        return format!("{prefix}{name}{suffix}");
    }
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
    let room = MAX_LABEL - prefix.len() - suffix.len() - hash.len() - 1;
    // Server names are ASCII: any byte index is a character boundary.
    let head = name[..room].trim_end_matches('-');
    format!("{prefix}{head}-{hash}{suffix}")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::backends::kubernetes::settings::is_dns_label;

    /// A DNS-1035 label.
    fn is_dns_1035(text: &str) -> bool {
        is_dns_label(text) && text.as_bytes()[0].is_ascii_lowercase()
    }

    fn server_name() -> impl Strategy<Value = ServerName> {
        "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?".prop_map(|text| ServerName::parse(&text).expect("a valid server name"))
    }

    fn tenant_id() -> impl Strategy<Value = TenantId> {
        "[a-z0-9]([a-z0-9-]{0,54}[a-z0-9])?".prop_map(|text| TenantId::parse(&text).expect("a valid tenant id"))
    }

    proptest! {
        #[test]
        fn every_name_is_a_dns_label_and_names_one_server_only(
            tenant in tenant_id(),
            a in server_name(),
            b in server_name(),
        ) {
            let namespace = namespace(&tenant);
            prop_assert!(is_dns_1035(&namespace), "{namespace}");
            for name in [server_object(&a), build_job(&a), server_object(&b), build_job(&b)] {
                prop_assert!(is_dns_1035(&name), "{name}");
            }
            prop_assert_ne!(server_object(&a), build_job(&a));
            if a != b {
                prop_assert_ne!(server_object(&a), server_object(&b));
                prop_assert_ne!(build_job(&a), build_job(&b));
            }
        }
    }

    #[test]
    fn long_names_are_cut_and_hashed() {
        let long = ServerName::parse(&format!("{}-x", "a".repeat(61))).unwrap();
        let other = ServerName::parse(&format!("{}-y", "a".repeat(61))).unwrap();
        assert_eq!(server_object(&long).len(), 63);
        assert_ne!(server_object(&long), server_object(&other));
        assert!(build_job(&long).ends_with("-build"));
        assert_eq!(server_object(&ServerName::parse("0day").unwrap()), "mcp-0day");
    }
}
