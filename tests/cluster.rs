//! End-to-end tests of cluster mode: three real `connectors` processes and a real
//! `redis-server`, all on loopback.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cluster_common::{COOKIE, Cluster, MASTER_KEY, id_owned_by_second_of_two, start_node};
use common::{Gateway, ensure_minute_room, eventually, free_port, metric, send};
use redis_server::RedisServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn tenants_created_through_one_node_are_served_through_every_node() {
    let cluster = Cluster::start(3).await;
    let first = &cluster.nodes[0];
    let mut tenants = Vec::new();
    for i in 0..9 {
        let id = format!("spread-{i}");
        tenants.push((id.clone(), first.create_limited(&id, 1000).await));
    }
    for node in &cluster.nodes {
        let view = node.admin(Method::GET, "/cluster", None).await.json();
        assert!(view["shards"]["owned"].as_u64().unwrap() > 100, "every node owns a fair share: {view}");
        for (id, key) in &tenants {
            let response = node.tenant_get(Some(id), Some(key)).await;
            assert_eq!(response.status, 200, "tenant {id} through {}: {}", node.url(""), response.text);
            assert_eq!(response.json()["id"], id.as_str());
            node.admin(Method::GET, &format!("/tenants/{id}"), None).await.expect(200);
        }
    }
}

#[tokio::test]
async fn concurrent_clients_on_every_node_admit_exactly_the_limit() {
    let cluster = Cluster::start(3).await;
    let tenants = cluster.create_tenants("exact", 2, 40).await;
    ensure_minute_room(20).await;
    let mut requests = Vec::new();
    for (id, key) in &tenants {
        for i in 0..120 {
            let node = &cluster.nodes[i % 3];
            requests.push(node.tenant_request(Some(id), Some(key)));
        }
    }
    let responses = send_all(requests).await;
    for (t, (id, _)) in tenants.iter().enumerate() {
        let mine = &responses[t * 120..(t + 1) * 120];
        let admitted = mine.iter().filter(|r| r.status == 200).count();
        let limited = mine.iter().filter(|r| r.status == 429).count();
        assert_eq!(admitted, 40, "tenant {id}: exactly the limit admitted across three nodes");
        assert_eq!(limited, 80, "tenant {id}: every other request rate limited");
    }
}

/// Requests for a tenant another node owns go to it in batches per peer, each answered as if alone.
#[tokio::test]
async fn requests_for_another_nodes_tenant_go_in_batches_and_each_gets_its_own_answer() {
    let cluster = Cluster::start(2).await;
    let (edge, owner) = (&cluster.nodes[0], &cluster.nodes[1]);
    let id = id_owned_by_second_of_two("batched");
    let key = edge.create_limited(&id, 150).await;
    let remote_asks = |sent: &'static str| async move {
        metric(&edge.metrics_text().await, "connectors_cluster_remote_asks_total", &[("sent", sent)]).unwrap_or(0.0)
    };
    ensure_minute_room(20).await;
    // The link asks its peer whether it reads batches once it is up; until then requests go alone.
    eventually("node-0 to send its requests to node-1 in batches", Duration::from_secs(10), || async {
        edge.tenant_get(Some(&id), Some(&key)).await.expect(200);
        if remote_asks("batched").await > 0.0 { Ok(()) } else { Err("no request batched yet".to_string()) }
    })
    .await;
    let before = (remote_asks("batched").await, remote_asks("alone").await);
    let used =
        owner.admin(Method::GET, &format!("/tenants/{id}/usage"), None).await.json()["apiCalls"].as_u64().unwrap();
    let requests = (0..150).map(|_| edge.tenant_request(Some(&id), Some(&key))).collect();
    let responses = send_all(requests).await;
    let admitted = responses.iter().filter(|r| r.status == 200).count() as u64;
    assert_eq!(admitted, 150 - used, "exactly the limit admitted through the batches");
    assert!(responses.iter().all(|r| r.status == 200 || r.status == 429), "only admissions and refusals");
    assert_eq!(remote_asks("batched").await - before.0, 150.0, "every request went in a batch");
    assert_eq!(remote_asks("alone").await, before.1, "none went alone");
    let batches = metric(&edge.metrics_text().await, "connectors_cluster_ask_batches_total", &[]).unwrap();
    assert!((1.0..=remote_asks("batched").await).contains(&batches), "{batches} batches");
}

#[tokio::test]
async fn rotation_and_limit_changes_through_one_node_apply_at_once_on_the_others() {
    let cluster = Cluster::start(3).await;
    let tenants = cluster.create_tenants("change", 3, 1000).await;
    for (id, old_key) in &tenants {
        let rotated = cluster.nodes[1].admin(Method::POST, &format!("/tenants/{id}/rotate-key"), None).await;
        let new_key = rotated.json()["apiKey"].as_str().unwrap().to_string();
        for node in &cluster.nodes {
            node.tenant_get(Some(id), Some(old_key)).await.expect_error(401, "unauthorized");
            node.tenant_get(Some(id), Some(&new_key)).await.expect(200);
        }
        cluster.nodes[2].patch_tenant(id, json!({"status": "suspended"})).await.expect(200);
        for node in &cluster.nodes {
            node.tenant_get(Some(id), Some(&new_key)).await.expect_error(403, "tenant_suspended");
        }
        cluster.nodes[0].patch_tenant(id, json!({"status": "active"})).await.expect(200);
        cluster.nodes[0].tenant_get(Some(id), Some(&new_key)).await.expect(200);
        // Edges that already hold the tenant's record see every change of it on the next request.
        let name = format!("{id} renamed");
        let patch = json!({"name": name, "security": {"allowedIPs": ["127.0.0.0/8"]}});
        cluster.nodes[1].patch_tenant(id, patch).await.expect(200);
        for node in &cluster.nodes {
            let view = node.tenant_get(Some(id), Some(&new_key)).await.expect(200).json();
            assert_eq!(view["name"], name.as_str(), "through {}", node.url(""));
            assert_eq!(view["security"]["allowedIPs"], json!(["127.0.0.0/8"]), "through {}", node.url(""));
        }
    }
}

#[tokio::test]
async fn a_killed_node_is_replaced_within_seconds_and_rejoins() {
    let mut cluster = Cluster::start(3).await;
    let tenants = cluster.create_tenants("failover", 12, 1000).await;
    cluster.nodes[2].kill9();
    let killed_at = std::time::Instant::now();
    for (id, key) in &tenants {
        for node in &cluster.nodes[..2] {
            eventually(&format!("{id} served after node-2 died"), Duration::from_secs(15), || async {
                let response = node.tenant_get(Some(id), Some(key)).await;
                if response.status == 200 { Ok(()) } else { Err(format!("{} {}", response.status, response.text)) }
            })
            .await;
        }
    }
    let failover = killed_at.elapsed();
    assert!(failover < Duration::from_secs(15), "took {failover:?}");
    eprintln!("every tenant served by the survivors {failover:?} after kill -9");
    let survivors = &cluster.nodes[..2];
    eventually("the view without node-2", Duration::from_secs(10), || async {
        let view = survivors[0].admin(Method::GET, "/cluster", None).await.json();
        let ids: Vec<&str> = view["nodes"].as_array().unwrap().iter().filter_map(|n| n["id"].as_str()).collect();
        if ids == ["node-0", "node-1"] { Ok(()) } else { Err(view.to_string()) }
    })
    .await;

    cluster.nodes[2].start_again().await;
    cluster.wait_converged(3, Duration::from_secs(20)).await;
    for (id, key) in &tenants {
        for node in &cluster.nodes {
            node.tenant_get(Some(id), Some(key)).await.expect(200);
        }
    }
}

#[tokio::test]
async fn losing_redis_stops_admission_when_the_lease_runs_out_and_loses_nothing() {
    let mut cluster = Cluster::start(3).await;
    let tenants = cluster.create_tenants("outage", 3, 1000).await;
    let mut admitted = vec![0u64; tenants.len()];
    call_every_tenant_through_every_node(&cluster.nodes, &tenants, &mut admitted).await;

    cluster.redis.kill();
    // No node can tell whether the others still count it in: each admits until its lease runs
    // out (failure timeout less a heartbeat), then answers 503 with Retry-After.
    for (t, (id, key)) in tenants.iter().enumerate() {
        for node in &cluster.nodes {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let response = node.tenant_get(Some(id), Some(key)).await;
                match response.status {
                    200 => admitted[t] += 1,
                    503 => {
                        assert!(response.header("retry-after").is_some(), "{}", response.text);
                        break;
                    }
                    other => panic!("{other} {}", response.text),
                }
                assert!(std::time::Instant::now() < deadline, "{id} still admitted through {}", node.url(""));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    for node in &cluster.nodes {
        assert_eq!(node.get("/readyz").await.status, 503);
    }

    cluster.redis.restart();
    cluster.wait_converged(3, Duration::from_secs(20)).await;
    call_every_tenant_through_every_node(&cluster.nodes, &tenants, &mut admitted).await;
    for (t, (id, _)) in tenants.iter().enumerate() {
        let expected = admitted[t];
        eventually(&format!("usage of {id} to count every admitted call"), Duration::from_secs(10), || async {
            let usage = cluster.nodes[0].admin(Method::GET, &format!("/tenants/{id}/usage"), None).await.json();
            if usage["apiCalls"].as_u64() == Some(expected) {
                Ok(())
            } else {
                Err(format!("{usage}, expected {expected}"))
            }
        })
        .await;
    }
}

#[tokio::test]
async fn a_node_with_the_wrong_cookie_is_refused_and_the_cluster_is_undisturbed() {
    let redis = RedisServer::start_persistent();
    let good = start_node(&redis, "node-a", COOKIE).await;
    good.wait_ready(Duration::from_secs(15)).await;
    let (_, key) = good.create_tenant(json!({"id": "steady", "name": "Steady"})).await;
    let url = redis.url();
    let listen = format!("127.0.0.1:{}", free_port());
    let args: Vec<String> =
        ["--listen", "127.0.0.1:0", "--redis-url", &url, "--node-id", "node-b", "--cluster-listen", &listen]
            .iter()
            .map(|a| a.to_string())
            .collect();
    let env = [
        ("CONNECTORS_CLUSTER_COOKIE", "another-cookie-of-32-characters-or-more"),
        ("CONNECTORS_MASTER_KEY", MASTER_KEY),
    ];
    let refused = common::run_args_expecting_exit(&args, &env, Duration::from_secs(15)).await;
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("another CONNECTORS_CLUSTER_COOKIE"), "{}", refused.stderr);
    let view = good.admin(Method::GET, "/cluster", None).await.json();
    assert_eq!(view["nodes"].as_array().unwrap().len(), 1, "the intruder never joined: {view}");
    good.tenant_get(Some("steady"), Some(&key)).await.expect(200);
}

/// One request per tenant through every node, each expected to be admitted; counts them.
async fn call_every_tenant_through_every_node(nodes: &[Gateway], tenants: &[(String, String)], admitted: &mut [u64]) {
    for (t, (id, key)) in tenants.iter().enumerate() {
        for node in nodes {
            let response = node.tenant_get(Some(id), Some(key)).await;
            assert_eq!(response.status, 200, "tenant {id} through {}: {}", node.url(""), response.text);
            admitted[t] += 1;
        }
    }
}

/// Runs the requests concurrently; answers in the order given.
async fn send_all(requests: Vec<reqwest::RequestBuilder>) -> Vec<common::Resp> {
    let handles: Vec<_> = requests.into_iter().map(|request| tokio::spawn(send(request))).collect();
    let mut responses = Vec::with_capacity(handles.len());
    for handle in handles {
        responses.push(handle.await.expect("request task"));
    }
    responses
}

#[tokio::test]
async fn bad_cluster_settings_stop_start_up_with_a_clear_message() {
    let unreachable = format!("redis://127.0.0.1:{}/", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let cluster_args = |redis: &str, node: Option<&str>, cluster_listen: Option<&str>| {
        let mut args = vec!["--listen".to_string(), "127.0.0.1:0".into(), "--redis-url".into(), redis.to_string()];
        if let Some(node) = node {
            args.extend(["--node-id".to_string(), node.to_string()]);
        }
        if let Some(listen) = cluster_listen {
            args.extend(["--cluster-listen".to_string(), listen.to_string()]);
        }
        args
    };
    let cookie = [("CONNECTORS_CLUSTER_COOKIE", COOKIE)];
    let redis = RedisServer::start();
    type Case<'a> = (Vec<String>, &'a [(&'a str, &'a str)], &'a str);
    let cases: Vec<Case> = vec![
        (cluster_args(&redis.url(), None, None), &[], "CONNECTORS_MASTER_KEY"),
        (cluster_args(&unreachable, None, None), &[], "cannot connect to Redis"),
        (cluster_args(&unreachable, Some("n1"), Some(&listen)), &cookie, "cannot connect to Redis"),
        (cluster_args(&unreachable, Some("n1"), None), &cookie, "--node-id needs --cluster-listen"),
        (cluster_args(&unreachable, None, Some(&listen)), &cookie, "--cluster-listen needs --node-id"),
        (cluster_args(&unreachable, Some("n1"), Some(&listen)), &[], "CONNECTORS_CLUSTER_COOKIE"),
        (
            cluster_args(&unreachable, Some("n1"), Some(&listen)),
            &[("CONNECTORS_CLUSTER_COOKIE", " ")],
            "CONNECTORS_CLUSTER_COOKIE",
        ),
        (
            cluster_args(&unreachable, Some("n1"), Some(&listen)),
            &[("CONNECTORS_CLUSTER_COOKIE", "e2e-cluster-cookie")],
            "CONNECTORS_CLUSTER_COOKIE has 18 characters; at least 32",
        ),
        (cluster_args(&unreachable, Some("bad name!"), Some(&listen)), &cookie, "--node-id"),
        (cluster_args(&unreachable, Some("n1"), Some("0.0.0.0:0")), &cookie, "CONNECTORS_CLUSTER_ADVERTISE"),
        (
            vec!["--listen".into(), "127.0.0.1:0".into()],
            &[("RATE_LIMIT_STORE", "redis")],
            "RATE_LIMIT_STORE=redis needs a Redis URL",
        ),
    ];
    for (args, env, expected) in cases {
        let failed = common::run_args_expecting_exit(&args, env, Duration::from_secs(15)).await;
        assert!(!failed.status.success(), "{args:?} {env:?} started");
        assert!(failed.stderr.contains(expected), "{args:?} {env:?}: expected `{expected}` in:\n{}", failed.stderr);
    }
}

#[tokio::test]
async fn the_redis_counter_mode_limits_like_the_original_design() {
    let redis = RedisServer::start();
    let url = redis.url();
    let node = Gateway::start(
        common::FAST,
        &[("REDIS_URL", url.as_str()), ("RATE_LIMIT_STORE", "redis"), ("CONNECTORS_MASTER_KEY", MASTER_KEY)],
    )
    .await;
    let key = node.create_limited("counted", 5).await;
    ensure_minute_room(10).await;
    for remaining in (0..5).rev() {
        let response = node.tenant_get(Some("counted"), Some(&key)).await;
        response.expect(200);
        assert_eq!(response.header_u64("x-ratelimit-limit"), 5);
        assert_eq!(response.header_u64("x-ratelimit-remaining"), remaining);
    }
    let limited = node.tenant_get(Some("counted"), Some(&key)).await;
    let body = limited.expect_error(429, "rate_limited");
    assert!(body["retryAfter"].as_u64().is_some_and(|s| (1..=60).contains(&s)), "{body}");
    assert!(limited.header("retry-after").is_some());
    // Authentication still belongs to the tenant actor.
    node.tenant_get(Some("counted"), Some("wrong-key")).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn after_a_crash_the_new_owner_continues_from_the_last_checkpoint() {
    let mut cluster = Cluster::start(2).await;
    // A tenant owned by node-1, whose windows node-0 has never held.
    let id = id_owned_by_second_of_two("ckpt");
    let key = cluster.nodes[0].create_limited(&id, 20).await;
    ensure_minute_room(20).await;
    for _ in 0..12 {
        cluster.nodes[0].tenant_get(Some(&id), Some(&key)).await.expect(200);
    }
    // Reading usage has the owner write out its usage and rate checkpoint and waits until both are
    // committed: from here the checkpoint holds all 12.
    let usage = cluster.nodes[0].admin(Method::GET, &format!("/tenants/{id}/usage"), None).await.json();
    assert_eq!(usage["apiCalls"], 12, "{usage}");
    cluster.nodes[1].kill9();
    let mut admitted = 0;
    eventually("node-0 to take the tenant over", Duration::from_secs(15), || async {
        let response = cluster.nodes[0].tenant_get(Some(&id), Some(&key)).await;
        match response.status {
            200 => Ok(()),
            status => Err(format!("{status} {}", response.text)),
        }
    })
    .await;
    admitted += 1;
    loop {
        let response = cluster.nodes[0].tenant_get(Some(&id), Some(&key)).await;
        if response.status != 200 {
            response.expect_error(429, "rate_limited");
            break;
        }
        admitted += 1;
        assert!(admitted <= 20, "the new owner forgot the checkpointed count");
    }
    assert_eq!(admitted, 8, "12 admitted before the crash were checkpointed; 8 remained of 20");
}

#[tokio::test]
async fn oauth_credentials_follow_their_tenant_to_a_new_owner() {
    let mut cluster = Cluster::start(2).await;
    let id = id_owned_by_second_of_two("cred");
    cluster.nodes[0].create_limited(&id, 1000).await;
    let credential =
        json!({"accessToken": "at-cluster-secret-1", "scopes": ["repo"], "expiresAt": "2099-01-01T00:00:00Z"});
    cluster.nodes[0].admin(Method::PUT, &format!("/tenants/{id}/oauth/github"), Some(credential)).await.expect(200);
    cluster.nodes[1].kill9();
    let listed = eventually("node-0 to list the credential after node-1 died", Duration::from_secs(15), || async {
        let response = cluster.nodes[0].admin(Method::GET, &format!("/tenants/{id}/oauth"), None).await;
        if response.status == 200 { Ok(response.json()) } else { Err(format!("{} {}", response.status, response.text)) }
    })
    .await;
    assert_eq!(listed["integrations"][0]["integration"], "github", "{listed}");
    assert_eq!(listed["integrations"][0]["status"], "active", "{listed}");
    assert!(!listed.to_string().contains("at-cluster-secret-1"));
}

/// How many audit events a node has forwarded `way` ("sent", "received" or "kept").
async fn forwarded(node: &Gateway, way: &str) -> f64 {
    metric(&node.metrics_text().await, "connectors_audit_events_forwarded_total", &[("way", way)])
        .expect("the forwarding counter is exported")
}

#[tokio::test]
async fn audit_events_go_back_to_the_owner_and_none_is_lost() {
    let cluster = Cluster::start(2).await;
    // node-0 serves every request; node-1 owns the tenant and records its events.
    let id = id_owned_by_second_of_two("audit");
    let key = cluster.nodes[0].create_limited(&id, 1000).await;
    for _ in 0..5 {
        cluster.nodes[0].tenant_get(Some(&id), Some(&key)).await.expect(200);
    }
    let events =
        cluster.nodes[0].wait_audit(&id, "the creation and five tenant.get events", |events| events.len() == 6).await;
    assert_eq!(events.iter().filter(|e| e["action"] == "tenant.get").count(), 5);
    eventually("the owner's count of received events", Duration::from_secs(3), || async {
        let (sent, received) =
            (forwarded(&cluster.nodes[0], "sent").await, forwarded(&cluster.nodes[1], "received").await);
        if (sent, received) == (6.0, 6.0) { Ok(()) } else { Err(format!("sent {sent}, received {received}")) }
    })
    .await;
    assert_eq!(forwarded(&cluster.nodes[0], "kept").await, 0.0);
    assert_eq!(forwarded(&cluster.nodes[1], "sent").await, 0.0, "node-1 served no request");

    // The owner stops answering (SIGSTOP): an event for one of its tenants is recorded by the
    // node that made it once the owner does not take it, and is not lost.
    let frozen = cluster.nodes[1].pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill").args([name, frozen.as_str()]).status().expect("kill runs");
        assert!(status.success(), "kill {name} {frozen}");
    };
    signal("-STOP");
    let late = id_owned_by_second_of_two("audit-late");
    cluster.nodes[0].create_limited(&late, 1000).await;
    // After the link's deadline (2 s by default) node-0 records it itself.
    let created = eventually("the creation event, recorded by node-0", Duration::from_secs(10), || async {
        let events = cluster.nodes[0].audit_events(&late, &[]).await;
        if events.len() == 1 { Ok(events) } else { Err(format!("{events:?}")) }
    })
    .await;
    assert_eq!(created[0]["action"], "admin.tenant.create");
    assert_eq!(forwarded(&cluster.nodes[0], "kept").await, 1.0);
    signal("-CONT");
}

/// Fault injection is obeyed by the node that owns the tenant, not by the one that was asked: a
/// node with it on cannot crash the tenants of a node that has it off.
#[tokio::test]
async fn a_peer_with_fault_injection_on_cannot_crash_another_nodes_tenants() {
    let redis = RedisServer::start_persistent();
    let faulty =
        cluster_common::start_node_at(&redis.url(), "node-0", COOKIE, &[("CONNECTORS_FAULT_INJECTION", "1")]).await;
    let careful = start_node(&redis, "node-1", COOKIE).await;
    cluster_common::wait_converged(&[&faulty, &careful], 2, Duration::from_secs(20)).await;
    let elsewhere = id_owned_by_second_of_two("guarded");
    let key = faulty.create_limited(&elsewhere, 100).await;

    let refused = faulty.admin(Method::POST, &format!("/tenants/{elsewhere}/crash"), None).await;
    refused.expect_error(403, "forbidden");
    assert!(refused.text.contains("fault injection is off"), "{}", refused.text);
    let stall = format!("/tenants/{elsewhere}/stall");
    let refused = faulty.admin(Method::POST, &stall, Some(json!({"millis": 10}))).await;
    refused.expect_error(403, "forbidden");
    faulty.admin(Method::POST, &stall, Some(json!({"millis": 60_001}))).await.expect_error(400, "invalid_request");
    careful.admin(Method::POST, &stall, Some(json!({"millis": 10}))).await.expect_error(404, "not_found");
    careful.tenant_get(Some(&elsewhere), Some(&key)).await.expect(200);
    let restarts = metric(&careful.metrics_text().await, "connectors_tenant_actor_restarts_total", &[]);
    assert_eq!(restarts, Some(0.0), "nothing crashed");
}

/// An owner that counts an admission but answers only after the asking node stopped waiting (as
/// when paused between the two): the client is told 503, and the admission it was billed for is
/// in the audit log, once, as `owner_answered_late`, when the answer comes.
#[tokio::test]
async fn an_admission_answered_after_the_deadline_is_audited_as_billed() {
    let redis = RedisServer::start_persistent();
    let edge = start_node(&redis, "node-0", COOKIE).await;
    let owner =
        cluster_common::start_node_at(&redis.url(), "node-1", COOKIE, &[("CONNECTORS_FAULT_INJECTION", "1")]).await;
    cluster_common::wait_converged(&[&edge, &owner], 2, Duration::from_secs(20)).await;
    let id = id_owned_by_second_of_two("late");
    let key = edge.create_limited(&id, 1000).await;
    // Late answers are awaited for requests sent in batches: once the link has found out that
    // its peer reads them.
    let admitted = AtomicU64::new(0);
    eventually("node-0 to send its requests to node-1 in batches", Duration::from_secs(10), || async {
        edge.tenant_get(Some(&id), Some(&key)).await.expect(200);
        admitted.fetch_add(1, Ordering::Relaxed);
        let batched =
            metric(&edge.metrics_text().await, "connectors_cluster_remote_asks_total", &[("sent", "batched")]);
        if batched > Some(0.0) { Ok(()) } else { Err("no request batched yet".to_string()) }
    })
    .await;
    let admitted = admitted.into_inner();

    // The link's deadline is 2 s.
    owner.admin(Method::POST, &format!("/tenants/{id}/stall"), Some(json!({"millis": 3_000}))).await.expect(202);
    let late = send(edge.tenant_request(Some(&id), Some(&key)).header("X-Request-Id", "answered-late")).await;
    late.expect_error(503, "unavailable");

    let events = eventually("the late admission's audit event", Duration::from_secs(10), || async {
        let events = edge.audit_events(&id, &[]).await;
        let late: Vec<_> = events.iter().filter(|e| e["requestId"] == "answered-late").cloned().collect();
        if late.is_empty() { Err(serde_json::to_string_pretty(&events).unwrap()) } else { Ok(late) }
    })
    .await;
    assert_eq!(events.len(), 1, "audited once: {events:?}");
    assert_eq!(events[0]["action"], "tenant.get");
    assert_eq!(events[0]["result"], "error");
    assert_eq!(events[0]["params"]["error"], "owner_answered_late");
    let metrics = edge.metrics_text().await;
    assert_eq!(metric(&metrics, "connectors_cluster_remote_asks_timed_out_total", &[]), Some(1.0));
    assert_eq!(metric(&metrics, "connectors_cluster_remote_asks_answered_late_total", &[]), Some(1.0));
    // Billed: every request admitted before, and the late one.
    owner.wait_usage_api_calls(&id, admitted + 1).await;
    let events = edge.audit_events(&id, &[]).await;
    let success = events.iter().filter(|e| e["action"] == "tenant.get" && e["result"] == "success").count();
    assert_eq!(success as u64, admitted, "the audit log's admissions and the bill agree");
}
