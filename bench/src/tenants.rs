//! Tenants through the admin API, requests as a tenant, and small status probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::http1::{self, Conn};
use crate::stats::Latencies;

/// The id of the `index`-th registered tenant.
pub(crate) fn tenant_id(index: usize) -> String {
    format!("t{:05}", index + 1)
}

/// `GET /api/v1/tenant` as tenant `id` with its key, addressed to `target`.
pub(crate) fn tenant_request(target: SocketAddr, id: &str, key: &str) -> Vec<u8> {
    let bearer = format!("Bearer {key}");
    http1::request("GET", target, "/api/v1/tenant", &[("X-Tenant-ID", id), ("Authorization", &bearer)], None)
}

/// `GET path` (with the admin key when given): the status and the body as JSON (`Null` when it
/// is not JSON).
pub(crate) async fn get_json(addr: SocketAddr, path: &str, admin_key: Option<&str>) -> Result<(u16, Value), String> {
    let bearer = admin_key.map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    let mut conn = Conn::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let (status, body) = conn
        .send(&http1::request("GET", addr, path, &headers, None))
        .await
        .map_err(|e| format!("GET {path} on {addr}: {e}"))?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Registers `count` tenants with `concurrency` keep-alive connections, dealt round robin over
/// `addrs` (the nodes of one cluster, or one gateway); returns their keys.
pub(crate) async fn register(
    addrs: &[SocketAddr],
    admin_key: &str,
    count: usize,
    concurrency: usize,
) -> Result<(Vec<String>, Latencies), String> {
    if addrs.is_empty() {
        return Err("no gateway to register tenants with".into());
    }
    let next = Arc::new(AtomicUsize::new(0));
    let bearer = format!("Bearer {admin_key}");
    let mut tasks = Vec::new();
    for task in 0..concurrency.max(1) {
        let addr = addrs[task % addrs.len()];
        let next = next.clone();
        let bearer = bearer.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
            let mut keys = Vec::new();
            let mut latency = Latencies::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok::<_, String>((keys, latency));
                }
                let id = tenant_id(index);
                let body = json!({
                    "id": id,
                    "name": format!("Bench tenant {id}"),
                    "plan": "enterprise",
                    "limits": {"requestsPerMinute": 100_000_000, "requestsPerHour": 100_000_000, "requestsPerDay": 100_000_000},
                })
                .to_string();
                let request = http1::request("POST", addr, "/api/v1/admin/tenants", &[("Authorization", &bearer)], Some(body.as_bytes()));
                let sent = Instant::now();
                let (status, reply) = conn.send(&request).await.map_err(|e| format!("POST /api/v1/admin/tenants ({id}): {e}"))?;
                latency.record(sent.elapsed());
                if status != 201 {
                    return Err(format!("creating tenant {id} answered {status}: {}", String::from_utf8_lossy(&reply)));
                }
                let reply: Value = serde_json::from_slice(&reply).map_err(|e| format!("create reply: {e}"))?;
                let key = reply["apiKey"].as_str().ok_or("the create reply has no apiKey")?;
                keys.push((index, key.to_string()));
            }
        }));
    }
    let mut keys = vec![String::new(); count];
    let mut latency = Latencies::default();
    for task in tasks {
        let (part, lat) = task.await.map_err(|e| format!("registration task: {e}"))??;
        for (index, key) in part {
            keys[index] = key;
        }
        latency.extend(lat);
    }
    Ok((keys, latency))
}

/// Sends the requests one at a time on one connection, timing each; all must answer 200.
pub(crate) async fn sequential(addr: SocketAddr, requests: &[Vec<u8>]) -> Result<Latencies, String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let mut latency = Latencies::default();
    for request in requests {
        let sent = Instant::now();
        let (status, body) = conn.send(request).await.map_err(|e| format!("GET /api/v1/tenant: {e}"))?;
        latency.record(sent.elapsed());
        if status != 200 {
            return Err(format!("GET /api/v1/tenant answered {status}: {}", String::from_utf8_lossy(&body)));
        }
    }
    Ok(latency)
}

/// Sends the requests over `concurrency` connections, each one at a time (the requests are
/// dealt to the connections in turn); all must answer 200. The latencies of every request.
pub(crate) async fn concurrent(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    concurrency: usize,
) -> Result<Latencies, String> {
    let concurrency = concurrency.clamp(1, requests.len().max(1));
    let mut tasks = Vec::with_capacity(concurrency);
    for k in 0..concurrency {
        let mine: Vec<Vec<u8>> = requests.iter().skip(k).step_by(concurrency).cloned().collect();
        tasks.push(tokio::spawn(async move { sequential(addr, &mine).await }));
    }
    let mut latency = Latencies::default();
    for task in tasks {
        latency.extend(task.await.map_err(|e| format!("request task: {e}"))??);
    }
    Ok(latency)
}

/// The text of `GET /metrics`.
pub(crate) async fn metrics_text(addr: SocketAddr) -> Result<String, String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (status, body) = conn
        .send(&http1::request("GET", addr, "/metrics", &[], None))
        .await
        .map_err(|e| format!("GET /metrics: {e}"))?;
    if status != 200 {
        return Err(format!("GET /metrics answered {status}"));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The value of the sample `series` (the name with its labels exactly as rendered, e.g.
/// `connectors_requests_held_total{outcome="held"}`) in a `/metrics` text.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// The `connectors_tenant_actors_active` gauge.
pub(crate) async fn active_actors(addr: SocketAddr) -> Result<u64, String> {
    metric(&metrics_text(addr).await?, "connectors_tenant_actors_active")
        .map(|v| v as u64)
        .ok_or_else(|| "no connectors_tenant_actors_active gauge in /metrics".into())
}
