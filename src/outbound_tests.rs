use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn strict() -> OutboundPolicy {
    OutboundPolicy::default()
}

fn refused(policy: &OutboundPolicy, url: &str) -> bool {
    matches!(policy.check_url(url), Err(OutboundRefused::Address { .. }))
}

#[test]
fn literal_addresses_of_the_gateways_own_networks_are_refused() {
    let policy = strict();
    for url in [
        "http://127.0.0.1:8080/mcp",
        "http://127.8.9.10/",
        "http://[::1]/mcp",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://0.0.0.0:22/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        // WHATWG URL parsing reads these as 127.0.0.1 too.
        "http://0x7f.1/",
        "http://2130706433/",
    ] {
        assert!(refused(&policy, url), "{url} must be refused");
    }
}

#[test]
fn public_addresses_and_names_pass_the_url_check() {
    let policy = strict();
    for url in ["https://8.8.8.8/", "http://[2606:4700::1111]/mcp", "https://mcp.example.com/mcp", "http://localhost/"]
    {
        assert!(policy.check_url(url).is_ok(), "{url} must pass (names are checked when resolved)");
    }
}

#[test]
fn only_http_and_https_urls_are_called() {
    let policy = strict();
    for url in ["file:///etc/passwd", "gopher://example.com/", "not a url", "unix:/run/redis.sock"] {
        assert!(matches!(policy.check_url(url), Err(OutboundRefused::Url(_))), "{url}");
    }
}

#[test]
fn allow_private_opens_the_operators_network_but_never_metadata() {
    let policy = OutboundPolicy::new(true, &[]).unwrap();
    assert!(policy.check_url("http://127.0.0.1:9000/").is_ok());
    assert!(policy.check_url("http://10.0.0.7/").is_ok());
    assert!(policy.check_url("http://[fd12::7]/").is_ok());
    assert!(refused(&policy, "http://169.254.169.254/"));
    assert!(refused(&policy, "http://0.0.0.0/"));
}

#[test]
fn allowed_hosts_admit_exactly_what_they_name() {
    let policy =
        OutboundPolicy::new(false, &["10.20.0.0/16".into(), "127.0.0.1".into(), "Tools.Internal".into()]).unwrap();
    assert!(policy.check_url("http://10.20.3.4/").is_ok());
    assert!(refused(&policy, "http://10.21.0.1/"));
    assert!(policy.check_url("http://127.0.0.1:7000/").is_ok());
    assert!(refused(&policy, "http://127.0.0.2/"));
    let listed_name = policy.check_address("tools.internal", "10.99.0.1".parse().unwrap());
    assert!(listed_name.is_ok(), "a listed name may resolve anywhere");
    assert!(policy.check_address("other.internal", "10.99.0.1".parse().unwrap()).is_err());
}

#[test]
fn bad_allowed_hosts_entries_are_a_config_error() {
    for entry in ["", "has space", "10.0.0.0/33", "a..b", "x/y"] {
        assert!(OutboundPolicy::new(false, &[entry.into()]).is_err(), "`{entry}`");
    }
}

#[test]
fn token_endpoints_need_https_unless_their_host_is_listed() {
    let policy = OutboundPolicy::new(false, &["127.0.0.1".into(), "idp.internal".into()]).unwrap();
    assert!(policy.check_token_endpoint("https://github.com/login/oauth/access_token").is_ok());
    assert!(matches!(
        policy.check_token_endpoint("http://github.com/login/oauth/access_token"),
        Err(OutboundRefused::Plaintext { .. })
    ));
    assert!(policy.check_token_endpoint("http://127.0.0.1:8080/token").is_ok());
    assert!(policy.check_token_endpoint("http://idp.internal/token").is_ok());
}

#[tokio::test]
async fn a_name_resolving_only_to_loopback_is_refused_at_resolution() {
    let url = Url::parse("http://localhost:9/mcp").unwrap();
    assert!(matches!(check_resolved(&strict(), &url).await, Err(OutboundRefused::Address { .. })));
    let open = OutboundPolicy::new(true, &[]).unwrap();
    assert!(check_resolved(&open, &url).await.is_ok());
}

#[tokio::test]
async fn the_checked_client_does_not_connect_to_a_refused_name() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = Arc::new(strict()).client(reqwest::Client::builder()).unwrap();
    let outcome = client.get(format!("http://localhost:{port}/")).send().await;
    let error = outcome.expect_err("the resolver refuses loopback");
    let refusal = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
        .find_map(|e| e.downcast_ref::<OutboundRefused>());
    assert!(refusal.is_some(), "the refusal is the cause: {error:?}");
    let accepted = tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "nothing connected");
}

proptest! {
    /// Whatever the address, an IPv4 address and its mapped IPv6 form get the same verdict.
    #[test]
    fn mapped_addresses_get_the_verdict_of_their_ipv4_address(bits in any::<u32>()) {
        let v4 = std::net::Ipv4Addr::from(bits);
        let policy = strict();
        let direct = policy.check_address("h", IpAddr::V4(v4)).is_ok();
        let mapped = policy.check_address("h", IpAddr::V6(v4.to_ipv6_mapped())).is_ok();
        prop_assert_eq!(direct, mapped);
    }
}

#[test]
fn a_trusted_suffix_opens_names_under_it_on_that_policy_only() {
    let private: IpAddr = "10.96.4.2".parse().unwrap();
    let tenants = strict();
    let deployed = tenants.trusting_suffix(".svc.cluster.local");
    let service = "mcp-github.tenant-acme.svc.cluster.local";
    assert!(deployed.check_address(service, private).is_ok());
    assert!(matches!(tenants.check_address(service, private), Err(OutboundRefused::Address { .. })));
    // Neither an address, nor a name that only contains the suffix, nor the suffix without its dot.
    for host in ["10.96.4.2", "svc.cluster.local.evil.example", "xsvc.cluster.local"] {
        assert!(deployed.check_address(host, private).is_err(), "{host}");
    }
}
