use super::*;

const STRONG: &str = "0123456789abcdef0123456789abcdef";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn a_cookie_of_32_characters_is_taken_trimmed() {
    assert_eq!(cookie(Some(&format!(" {STRONG}\n"))), Ok(STRONG.to_string()));
}

#[test]
fn a_missing_or_blank_cookie_is_refused() {
    assert_eq!(cookie(None), Err(ClusterSettingsError::MissingCookie));
    assert_eq!(cookie(Some("  ")), Err(ClusterSettingsError::MissingCookie));
}

#[test]
fn a_short_cookie_is_refused_naming_the_variable() {
    let error = cookie(Some(&STRONG[1..])).unwrap_err();
    assert_eq!(error, ClusterSettingsError::WeakCookie(31));
    assert!(error.to_string().contains("CONNECTORS_CLUSTER_COOKIE"), "{error}");
}

#[test]
fn without_an_advertised_address_peers_dial_the_listen_address() {
    assert_eq!(advertise(addr("10.1.2.3:4700"), None), Ok(None));
    assert_eq!(advertise(addr("[::1]:4700"), None), Ok(None));
}

#[test]
fn listening_on_every_interface_needs_an_advertised_address() {
    for listen in ["0.0.0.0:4700", "[::]:4700"] {
        let error = advertise(addr(listen), None).unwrap_err();
        assert_eq!(error, ClusterSettingsError::AdvertiseNeeded(addr(listen)));
        assert!(error.to_string().contains("CONNECTORS_CLUSTER_ADVERTISE"), "{error}");
    }
}

#[test]
fn dns_names_and_ips_are_advertised_as_given() {
    for given in ["pod-0.peers.ns.svc.cluster.local:4700", "localhost:1", "10.0.0.7:4700", "[fd00::7]:4700"] {
        assert_eq!(advertise(addr("0.0.0.0:4700"), Some(given)), Ok(Some(given.to_string())), "{given}");
    }
}

#[test]
fn advertised_addresses_peers_cannot_dial_are_refused() {
    for given in [
        "pod-0",
        "pod-0:0",
        "pod-0:99999",
        ":4700",
        "0.0.0.0:4700",
        "[::]:4700",
        "fd00::7:4700",
        "bad_host:1",
        "-a.b:1",
    ] {
        let refused = advertise(addr("127.0.0.1:4700"), Some(given));
        assert!(matches!(refused, Err(ClusterSettingsError::Advertise { .. })), "{given}: {refused:?}");
    }
}
