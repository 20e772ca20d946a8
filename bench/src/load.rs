//! Closed-loop load: C keep-alive connections, each sending its next request as soon as the
//! previous answer is read. Responses completed inside the measurement window (after the
//! warm-up) are counted and their latencies, timed per request with `Instant`, kept. The
//! connections go to one server, or are dealt round robin over several ([`spread`]).
//! [`steady`] paces the same connections to a fixed total rate instead, to measure latency
//! below saturation. [`record`] runs closed-loop connections over the nodes of a [`Rotation`]
//! (a load balancer) until stopped and keeps every request's times and status, for windows
//! (before, during, after an event) cut afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::http1::Conn;
use crate::stats::Latencies;

#[derive(Debug, Default)]
pub(crate) struct LoadResult {
    /// 200 responses completed inside the window.
    pub(crate) ok: u64,
    /// Other statuses completed inside the window.
    pub(crate) non_200: u64,
    /// Connection errors (the connection is reopened) inside the window, or ever for reconnects.
    pub(crate) io_errors: u64,
    pub(crate) first_error: Option<String>,
    /// 200 responses over the whole run, warm-up included (for CPU time per request).
    pub(crate) completed: u64,
    /// Latencies of the 200 responses.
    pub(crate) latencies: Latencies,
    pub(crate) seconds: f64,
}

impl LoadResult {
    pub(crate) fn rps(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

/// The runtime of the load generator: `threads` workers, or a single-threaded one for 0 or 1.
pub(crate) fn client_runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name("loadgen").enable_all().build()
    }
    .map_err(|e| format!("client runtime: {e}"))
}

/// One server under load and the requests addressed to it (one per tenant).
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) requests: Arc<Vec<Vec<u8>>>,
}

/// Runs the load against one server. Connection `i` sends `requests[i]`, `requests[i + C]`,
/// ... so the requests (one per tenant) are used round robin.
pub(crate) async fn closed_loop(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<LoadResult, String> {
    spread(&[Target { addr, requests }], connections, warmup, duration).await
}

/// Runs the load against several servers: connection `i` goes to `targets[i % T]` and uses
/// that target's requests round robin, like [`closed_loop`] does with one.
pub(crate) async fn spread(
    targets: &[Target],
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<LoadResult, String> {
    run(targets, connections, None, warmup, duration).await
}

/// Like [`spread`], but each connection sends on a fixed schedule so that all of them together
/// send `rate` requests per second (as long as answers come back in time).
pub(crate) async fn steady(
    targets: &[Target],
    connections: usize,
    rate: u64,
    warmup: Duration,
    duration: Duration,
) -> Result<LoadResult, String> {
    let period = Duration::from_secs_f64(connections as f64 / rate.max(1) as f64);
    run(targets, connections, Some(period), warmup, duration).await
}

async fn run(
    targets: &[Target],
    connections: usize,
    pace: Option<Duration>,
    warmup: Duration,
    duration: Duration,
) -> Result<LoadResult, String> {
    if targets.is_empty() || targets.iter().any(|t| t.requests.is_empty()) {
        return Err("no requests to send".into());
    }
    // Open every connection before the clock starts.
    let mut conns = Vec::with_capacity(connections);
    for index in 0..connections {
        let addr = targets[index % targets.len()].addr;
        conns.push(Conn::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?);
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut workers = Vec::with_capacity(connections);
    for (index, conn) in conns.into_iter().enumerate() {
        let target = &targets[index % targets.len()];
        // The connections of one target: index / T is this one's rank among them.
        let stride = connections / targets.len() + usize::from(index % targets.len() < connections % targets.len());
        let (addr, requests) = (target.addr, target.requests.clone());
        // Paced connections start staggered over one period, so sends spread evenly.
        let schedule = pace.map(|period| (start + period.mul_f64(index as f64 / connections as f64), period));
        let window = (measure_from, end);
        workers.push(tokio::spawn(worker(addr, conn, requests, index / targets.len(), stride, schedule, window)));
    }
    let mut total = LoadResult { seconds: duration.as_secs_f64(), ..Default::default() };
    for worker in workers {
        let part = worker.await.map_err(|e| format!("load worker failed: {e}"))?;
        total.ok += part.ok;
        total.non_200 += part.non_200;
        total.io_errors += part.io_errors;
        total.completed += part.completed;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
        total.latencies.extend(part.latencies);
    }
    Ok(total)
}

async fn worker(
    addr: SocketAddr,
    mut conn: Conn,
    requests: Arc<Vec<Vec<u8>>>,
    mut next: usize,
    stride: usize,
    mut schedule: Option<(Instant, Duration)>,
    (measure_from, end): (Instant, Instant),
) -> LoadResult {
    let mut result = LoadResult::default();
    let expected = ((end - measure_from).as_secs_f64() * 4000.0) as usize;
    result.latencies.reserve(expected.min(1 << 20));
    loop {
        if let Some((due, period)) = schedule.as_mut() {
            tokio::time::sleep_until((*due).into()).await;
            *due += *period;
        }
        let request = &requests[next % requests.len()];
        next += stride;
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let outcome = conn.status(request).await;
        let done = Instant::now();
        let counted = done >= measure_from && done <= end;
        if let Ok(200) = outcome {
            result.completed += 1;
        }
        match outcome {
            Ok(200) if counted => {
                result.ok += 1;
                result.latencies.record(done - sent);
            }
            Ok(status) if counted && status != 200 => {
                result.non_200 += 1;
                result.first_error.get_or_insert_with(|| format!("HTTP status {status}"));
            }
            Ok(_) => {}
            Err(error) => {
                result.io_errors += 1;
                result.first_error.get_or_insert_with(|| format!("connection error: {error}"));
                // Reopen; give up on this connection only when the server is gone.
                loop {
                    match Conn::connect(addr).await {
                        Ok(fresh) => {
                            conn = fresh;
                            break;
                        }
                        Err(_) if Instant::now() < end => tokio::time::sleep(Duration::from_millis(10)).await,
                        Err(_) => return result,
                    }
                }
            }
        }
    }
    result
}

/// What a load balancer does: nodes in rotation, each request to the next one in turn. A node
/// taken out ([`Rotation::remove`]) gets no new request, and is given up once the requests it
/// was sent are answered; its connections are reopened when it is back.
pub(crate) struct Rotation {
    /// One per node (slot): its address and its requests (one per tenant).
    targets: Vec<Target>,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    in_rotation: AtomicBool,
    in_flight: AtomicUsize,
    /// Bumped when the node is taken out: connections opened before are not used again.
    generation: AtomicU64,
}

impl Rotation {
    /// Every target in rotation.
    pub(crate) fn new(targets: Vec<Target>) -> Arc<Self> {
        let slots: Vec<Slot> = targets.iter().map(|_| Slot::default()).collect();
        for slot in &slots {
            slot.in_rotation.store(true, Ordering::SeqCst);
        }
        Arc::new(Self { targets, slots, next: AtomicUsize::new(0) })
    }

    /// Takes the node in `slot` out of rotation and waits (up to `timeout`) until it has
    /// answered the requests it was sent.
    pub(crate) async fn remove(&self, slot: usize, timeout: Duration) -> Result<(), String> {
        self.slots[slot].in_rotation.store(false, Ordering::SeqCst);
        self.slots[slot].generation.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        while self.slots[slot].in_flight.load(Ordering::SeqCst) > 0 {
            if Instant::now() > deadline {
                return Err(format!("node slot {slot} still has requests in flight after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Puts the node in `slot` back in rotation.
    pub(crate) fn add(&self, slot: usize) {
        self.slots[slot].in_rotation.store(true, Ordering::SeqCst);
    }

    /// The next node in rotation, counted in flight (the caller must call `done`).
    fn pick(&self) -> Option<usize> {
        for _ in 0..self.slots.len() {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
            // Counted before the check: `remove` clears the flag before it reads the count.
            self.slots[slot].in_flight.fetch_add(1, Ordering::SeqCst);
            if self.slots[slot].in_rotation.load(Ordering::SeqCst) {
                return Some(slot);
            }
            self.done(slot);
        }
        None
    }

    fn done(&self, slot: usize) {
        self.slots[slot].in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One request of a [`record`]ed run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) sent: Instant,
    pub(crate) done: Instant,
    /// The HTTP status; 0 for a connection error (no answer).
    pub(crate) status: u16,
    /// The node (rotation slot) it was sent to.
    pub(crate) slot: usize,
    /// The index of the request in that target's list (the tenant).
    pub(crate) request: usize,
}

impl Sample {
    pub(crate) fn latency(&self) -> Duration {
        self.done - self.sent
    }
}

/// A closed-loop load running until [`Recording::finish`], every request recorded with its
/// times, so that windows (before, during, after an event) can be cut afterwards.
pub(crate) struct Recording {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
    pub(crate) started: Instant,
}

/// Starts `connections` closed-loop workers sending to the nodes of `rotation` in turn: each
/// request goes to the next node in rotation, and worker `i` uses the requests `i`, `i + C`, ...
/// (round robin over the tenants) of whichever node it sends to.
pub(crate) fn record(rotation: &Arc<Rotation>, connections: usize) -> Recording {
    let stop = Arc::new(AtomicBool::new(false));
    let workers = (0..connections)
        .map(|index| tokio::spawn(recording_worker(rotation.clone(), stop.clone(), index, connections.max(1))))
        .collect();
    Recording { stop, workers, started: Instant::now() }
}

impl Recording {
    /// Stops the workers (each after its request in flight) and returns every sample.
    pub(crate) async fn finish(self) -> Result<Vec<Sample>, String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples = Vec::new();
        for worker in self.workers {
            samples.extend(worker.await.map_err(|e| format!("load worker failed: {e}"))?);
        }
        samples.sort_by_key(|s| s.sent);
        Ok(samples)
    }
}

async fn recording_worker(
    rotation: Arc<Rotation>,
    stop: Arc<AtomicBool>,
    mut next: usize,
    stride: usize,
) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(64 * 1024);
    // This worker's connection to each node, with the generation it was opened in.
    let mut conns: Vec<Option<(u64, Conn)>> = rotation.targets.iter().map(|_| None).collect();
    while !stop.load(Ordering::Relaxed) {
        let Some(slot) = rotation.pick() else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let target = &rotation.targets[slot];
        let request = next % target.requests.len();
        next += stride;
        let generation = rotation.slots[slot].generation.load(Ordering::SeqCst);
        let sent = Instant::now();
        if !matches!(&conns[slot], Some((g, _)) if *g == generation) {
            conns[slot] = Conn::connect(target.addr).await.ok().map(|conn| (generation, conn));
        }
        let status = match conns[slot].as_mut() {
            Some((_, conn)) => conn.status(&target.requests[request]).await.unwrap_or(0),
            None => 0,
        };
        rotation.done(slot);
        let done = Instant::now();
        if status == 0 {
            conns[slot] = None;
        }
        samples.push(Sample { sent, done, status, slot, request });
        if status == 0 {
            // The node is gone or refused the connection: do not spin on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    samples
}
