//! The contract of the [`SecretStore`] port: what every adapter must do, written once.
//!
//! This file decides the observable behaviour the gateway may rely on (exact round trips, put
//! replacing, tenants never seeing each other's credentials, deletion of one credential or of a
//! whole tenant, durability across reopening). It does not test how an adapter protects the data
//! (tampering, key handling); each adapter tests that itself. It knows no adapter: an adapter's
//! test module implements [`Fixture`] and expands [`secret_store_contract_tests!`], which makes
//! one named `#[tokio::test]` per case below.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use connectors_actors::secret_store::{CredentialStatus, OAuthCredential, SecretStore};
use connectors_actors::tenant::TenantId;

/// Where one test's secrets live, for one adapter.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A store over this fixture's data, empty on the first call. After every earlier handle is
    /// dropped, opening again must show everything those handles committed.
    async fn open(&self) -> Arc<dyn SecretStore>;
}

/// Expands to one `#[tokio::test]` per contract case; `$fixture` makes a fresh [`Fixture`] for
/// each test.
macro_rules! secret_store_contract_tests {
    ($fixture:expr) => {
        $crate::backends::secret_store_contract::secret_store_contract_tests!(@cases $fixture;
            credentials_round_trip_exactly,
            put_replaces_the_credential,
            replace_writes_only_over_the_expected_credential,
            tenants_never_see_each_others_credentials,
            delete_removes_one_integration,
            delete_tenant_removes_everything_and_the_tenant_can_start_again,
            everything_put_survives_reopening,
        );
    };
    (@cases $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::backends::secret_store_contract::$case(&fixture).await;
            }
        )+
    };
}
pub(crate) use secret_store_contract_tests;

pub fn id(text: &str) -> TenantId {
    TenantId::parse(text).expect("test ids are valid")
}

/// A refreshable credential whose secrets are easy to look for in stored bytes.
pub fn credential() -> OAuthCredential {
    OAuthCredential {
        access_token: "gho_access-token-plaintext".into(),
        refresh_token: Some("ghr_refresh-token-plaintext".into()),
        expires_at: None,
        scopes: vec!["repo".into()],
        token_endpoint: Some("https://github.com/login/oauth/access_token".into()),
        client_id: Some("client-id".into()),
        client_secret: Some("client-secret-plaintext".into()),
        status: CredentialStatus::Active,
        last_refresh_at: None,
        refresh_generation: 0,
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + seconds, 123_456_789).unwrap()
}

/// Every field set, so that a round trip that drops or mangles one is caught.
fn full(token: &str) -> OAuthCredential {
    OAuthCredential {
        access_token: format!("at-{token}"),
        refresh_token: Some(format!("rt-{token}")),
        expires_at: Some(at(3600)),
        scopes: vec!["repo".into(), "read:org".into()],
        token_endpoint: Some("https://idp.example/oauth/token".into()),
        client_id: Some(format!("client-{token}")),
        client_secret: Some(format!("cs-{token}")),
        status: CredentialStatus::Refreshing,
        last_refresh_at: Some(at(0)),
        refresh_generation: 7,
    }
}

fn minimal(token: &str) -> OAuthCredential {
    OAuthCredential {
        access_token: format!("at-{token}"),
        refresh_token: None,
        expires_at: None,
        scopes: vec![],
        token_endpoint: None,
        client_id: None,
        client_secret: None,
        status: CredentialStatus::NeedsReauth,
        last_refresh_at: None,
        refresh_generation: 0,
    }
}

fn names(listed: &[(String, OAuthCredential)]) -> Vec<&str> {
    listed.iter().map(|(name, _)| name.as_str()).collect()
}

pub async fn credentials_round_trip_exactly(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    store.check().await.expect("a working store answers its health check");
    let acme = id("acme");
    assert_eq!(store.get(&acme, "github").await.unwrap(), None);
    assert_eq!(store.list(&acme).await.unwrap(), vec![]);

    store.put(&acme, "github", &full("one")).await.unwrap();
    store.put(&acme, "linear", &minimal("two")).await.unwrap();

    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(full("one")));
    assert_eq!(store.get(&acme, "linear").await.unwrap(), Some(minimal("two")));
    assert_eq!(store.get(&acme, "slack").await.unwrap(), None);
}

pub async fn replace_writes_only_over_the_expected_credential(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let (acme, globex) = (id("acme"), id("globex"));
    assert!(!store.replace(&acme, "github", &full("a"), &full("b")).await.unwrap(), "nothing to replace");
    assert_eq!(store.get(&acme, "github").await.unwrap(), None, "a failed replace writes nothing");

    store.put(&acme, "github", &full("a")).await.unwrap();
    store.put(&globex, "github", &full("a")).await.unwrap();
    assert!(!store.replace(&acme, "github", &minimal("a"), &full("b")).await.unwrap());
    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(full("a")), "another credential is stored");

    assert!(store.replace(&acme, "github", &full("a"), &full("b")).await.unwrap());
    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(full("b")));
    assert!(!store.replace(&acme, "github", &full("a"), &full("c")).await.unwrap(), "a stale expectation");
    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(full("b")));
    assert_eq!(store.get(&globex, "github").await.unwrap(), Some(full("a")), "other tenants are untouched");
}

/// For adapters whose `replace` is atomic (all but Vault's KV version 1): of replaces racing from
/// the same expectation, exactly one wins, and what is stored is the winner's.
pub async fn racing_replaces_from_one_expectation_let_exactly_one_win(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let acme = id("acme");
    store.put(&acme, "github", &full("start")).await.unwrap();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let (store, acme) = (store.clone(), acme.clone());
            tokio::spawn(async move {
                let won = store.replace(&acme, "github", &full("start"), &full(&format!("racer-{i}"))).await.unwrap();
                won.then_some(i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get(&acme, "github").await.unwrap();
    assert_eq!(stored, Some(full(&format!("racer-{}", winners[0]))));
}

pub async fn put_replaces_the_credential(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let acme = id("acme");
    store.put(&acme, "github", &full("old")).await.unwrap();
    store.put(&acme, "github", &minimal("new")).await.unwrap();

    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(minimal("new")));
    assert_eq!(store.list(&acme).await.unwrap(), vec![("github".to_string(), minimal("new"))]);
}

pub async fn tenants_never_see_each_others_credentials(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    // `acme` sorts right before `acme-2`, which a prefix scan would wrongly include.
    let (acme, acme2) = (id("acme"), id("acme-2"));
    store.put(&acme, "slack", &full("acme-slack")).await.unwrap();
    store.put(&acme, "github", &full("acme-github")).await.unwrap();
    store.put(&acme, "linear", &minimal("acme-linear")).await.unwrap();
    store.put(&acme2, "github", &full("acme2-github")).await.unwrap();
    assert_eq!(store.tenants().await.unwrap(), vec![acme.clone(), acme2.clone()], "each tenant once, in id order");

    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(full("acme-github")));
    assert_eq!(store.get(&acme2, "github").await.unwrap(), Some(full("acme2-github")));
    assert_eq!(store.get(&acme2, "slack").await.unwrap(), None);

    let listed = store.list(&acme).await.unwrap();
    assert_eq!(names(&listed), ["github", "linear", "slack"], "by integration name, ascending");
    assert_eq!(listed[0].1, full("acme-github"));
    assert_eq!(listed[1].1, minimal("acme-linear"));
    assert_eq!(listed[2].1, full("acme-slack"));
    assert_eq!(store.list(&acme2).await.unwrap(), vec![("github".to_string(), full("acme2-github"))]);
    assert_eq!(store.list(&id("globex")).await.unwrap(), vec![]);

    assert!(!store.delete(&acme2, "slack").await.unwrap(), "one tenant cannot delete another's credential");
    store.delete_tenant(&acme2).await.unwrap();
    assert_eq!(store.get(&acme2, "github").await.unwrap(), None);
    assert_eq!(names(&store.list(&acme).await.unwrap()), ["github", "linear", "slack"]);
    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(full("acme-github")));
}

pub async fn delete_removes_one_integration(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let acme = id("acme");
    store.put(&acme, "github", &full("github")).await.unwrap();
    store.put(&acme, "linear", &full("linear")).await.unwrap();

    assert!(store.delete(&acme, "github").await.unwrap());
    assert!(!store.delete(&acme, "github").await.unwrap(), "a second delete finds nothing");
    assert!(!store.delete(&id("globex"), "linear").await.unwrap());
    assert_eq!(store.get(&acme, "github").await.unwrap(), None);
    assert_eq!(store.list(&acme).await.unwrap(), vec![("linear".to_string(), full("linear"))]);
}

pub async fn delete_tenant_removes_everything_and_the_tenant_can_start_again(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let acme = id("acme");
    store.put(&acme, "github", &full("github")).await.unwrap();
    store.put(&acme, "linear", &full("linear")).await.unwrap();
    // A tenant sorting after `acme` keeps credentials: listing `acme` must not trip over them.
    store.put(&id("globex"), "github", &full("globex")).await.unwrap();
    assert_eq!(store.list(&id("aardvark")).await.unwrap(), vec![]);

    store.delete_tenant(&acme).await.unwrap();
    assert_eq!(store.get(&acme, "github").await.unwrap(), None);
    assert_eq!(store.get(&acme, "linear").await.unwrap(), None);
    assert_eq!(store.list(&acme).await.unwrap(), vec![]);
    assert_eq!(store.tenants().await.unwrap(), vec![id("globex")]);
    store.delete_tenant(&acme).await.unwrap();
    store.delete_tenant(&id("initech")).await.expect("deleting an unknown tenant is not an error");
    assert_eq!(store.get(&id("globex"), "github").await.unwrap(), Some(full("globex")));

    store.put(&acme, "github", &minimal("again")).await.unwrap();
    assert_eq!(store.get(&acme, "github").await.unwrap(), Some(minimal("again")));
    assert_eq!(store.list(&acme).await.unwrap(), vec![("github".to_string(), minimal("again"))]);
}

pub async fn everything_put_survives_reopening(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let (acme, globex) = (id("acme"), id("globex"));
    store.put(&acme, "github", &full("github")).await.unwrap();
    store.put(&acme, "linear", &minimal("linear")).await.unwrap();
    store.put(&globex, "github", &full("globex")).await.unwrap();
    store.put(&globex, "slack", &full("slack")).await.unwrap();
    assert!(store.delete(&acme, "linear").await.unwrap());
    store.delete_tenant(&globex).await.unwrap();
    drop(store);

    let store = fixture.open().await;
    assert_eq!(store.list(&acme).await.unwrap(), vec![("github".to_string(), full("github"))]);
    assert_eq!(store.list(&globex).await.unwrap(), vec![]);
    store.put(&acme, "slack", &full("after")).await.unwrap();
    assert_eq!(names(&store.list(&acme).await.unwrap()), ["github", "slack"]);
}
