//! A Bolt stand-in for Neo4j, for the tests of the Neo4j tool graph where no Neo4j can run: a
//! TCP server speaking Bolt 4.1 (and 4.0) — the handshake, chunked PackStream messages HELLO, RUN,
//! PULL, DISCARD, BEGIN, COMMIT, ROLLBACK, RESET, GOODBYE, answered with SUCCESS, RECORD,
//! FAILURE or IGNORED — written from the Bolt and PackStream specifications, independently of
//! `neo4rs`. It is not a Cypher engine: it knows the adapter's few statements by their exact
//! text (anything else is a syntax FAILURE, as Neo4j would answer a statement it cannot run) and
//! carries each out on an in-memory graph with the meaning the statement has in Cypher.
//!
//! Transactions are serializable: BEGIN takes the graph's lock until COMMIT, ROLLBACK, RESET or
//! the connection's end, and their statements apply to a copy installed only at COMMIT. An
//! auto-commit statement is atomic on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex as StdMutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;

use super::neo4j_tool_graph::cypher;

/// A PackStream value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    String(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
    Struct(u8, Vec<Value>),
}

impl Value {
    fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(key, _)| key == name).map(|(_, value)| value),
            _ => None,
        }
    }
}

fn string(text: &str) -> Value {
    Value::String(text.to_string())
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(key, value)| (key.to_string(), value.clone())).collect())
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    fn sized(out: &mut Vec<u8>, len: usize, tiny: u8, markers: [u8; 3]) {
        if len < 16 && tiny != 0 {
            out.push(tiny | len as u8);
        } else if len <= 0xFF {
            out.extend([markers[0], len as u8]);
        } else if len <= 0xFFFF {
            out.push(markers[1]);
            out.extend((len as u16).to_be_bytes());
        } else {
            out.push(markers[2]);
            out.extend((len as u32).to_be_bytes());
        }
    }
    match value {
        Value::Null => out.push(0xC0),
        Value::Bool(false) => out.push(0xC2),
        Value::Bool(true) => out.push(0xC3),
        Value::Int(n) if (-16..128).contains(n) => out.push(*n as i8 as u8),
        Value::Int(n) if i8::try_from(*n).is_ok() => out.extend([0xC8, *n as i8 as u8]),
        Value::Int(n) if i16::try_from(*n).is_ok() => {
            out.push(0xC9);
            out.extend((*n as i16).to_be_bytes());
        }
        Value::Int(n) if i32::try_from(*n).is_ok() => {
            out.push(0xCA);
            out.extend((*n as i32).to_be_bytes());
        }
        Value::Int(n) => {
            out.push(0xCB);
            out.extend(n.to_be_bytes());
        }
        Value::Float(x) => {
            out.push(0xC1);
            out.extend(x.to_be_bytes());
        }
        Value::Bytes(bytes) => {
            sized(out, bytes.len(), 0, [0xCC, 0xCD, 0xCE]);
            out.extend(bytes);
        }
        Value::String(text) => {
            sized(out, text.len(), 0x80, [0xD0, 0xD1, 0xD2]);
            out.extend(text.as_bytes());
        }
        Value::List(items) => {
            sized(out, items.len(), 0x90, [0xD4, 0xD5, 0xD6]);
            items.iter().for_each(|item| encode(item, out));
        }
        Value::Map(entries) => {
            sized(out, entries.len(), 0xA0, [0xD8, 0xD9, 0xDA]);
            for (key, value) in entries {
                encode(&Value::String(key.clone()), out);
                encode(value, out);
            }
        }
        Value::Struct(signature, fields) => {
            out.extend([0xB0 | fields.len() as u8, *signature]);
            fields.iter().for_each(|field| encode(field, out));
        }
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.bytes.len() < n {
            return Err("the message ends inside a value".into());
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn size(&mut self, width: usize) -> Result<usize, String> {
        Ok(self.take(width)?.iter().fold(0usize, |size, byte| size << 8 | usize::from(*byte)))
    }

    fn value(&mut self) -> Result<Value, String> {
        let marker = self.take(1)?[0];
        let int = |bytes: &[u8]| bytes.iter().skip(1).fold(i64::from(bytes[0] as i8), |n, b| n << 8 | i64::from(*b));
        let len = match marker {
            0x00..=0x7F | 0xF0..=0xFF => return Ok(Value::Int(i64::from(marker as i8))),
            0xC0 => return Ok(Value::Null),
            0xC2 | 0xC3 => return Ok(Value::Bool(marker == 0xC3)),
            0xC1 => return Ok(Value::Float(f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes taken")))),
            0xC8..=0xCB => {
                let width = 1 << (marker - 0xC8);
                return Ok(Value::Int(int(self.take(width)?)));
            }
            0x80..=0xBF => usize::from(marker & 0x0F),
            0xCC | 0xD0 | 0xD4 | 0xD8 => self.size(1)?,
            0xCD | 0xD1 | 0xD5 | 0xD9 => self.size(2)?,
            0xCE | 0xD2 | 0xD6 | 0xDA => self.size(4)?,
            other => return Err(format!("unknown PackStream marker {other:#04x}")),
        };
        Ok(match marker {
            0xCC..=0xCE => Value::Bytes(self.take(len)?.to_vec()),
            0x80..=0x8F | 0xD0..=0xD2 => Value::String(
                String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a string is not UTF-8".to_string())?,
            ),
            0x90..=0x9F | 0xD4..=0xD6 => Value::List((0..len).map(|_| self.value()).collect::<Result<_, _>>()?),
            0xA0..=0xAF | 0xD8..=0xDA => Value::Map(
                (0..len)
                    .map(|_| match self.value()? {
                        Value::String(key) => Ok((key, self.value()?)),
                        other => Err(format!("a map key is not a string: {other:?}")),
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => {
                let signature = self.take(1)?[0];
                Value::Struct(signature, (0..len).map(|_| self.value()).collect::<Result<_, _>>()?)
            }
        })
    }
}

/// The graph the statements work on: exactly what the adapter's schema holds.
#[derive(Debug, Clone, Default)]
struct Graph {
    /// Tenant id → `recorded`.
    tenants: BTreeMap<String, i64>,
    /// `(:ServedQuery)` nodes: (tenant, number) → (query, tools).
    served: BTreeMap<(String, i64), (String, Vec<String>)>,
    tools: BTreeSet<String>,
    /// `(:Tenant)-[:USED]->(:Tool)`: (tenant, tool) → queries.
    used: BTreeMap<(String, String), i64>,
    /// `(:Tool)-[:OFTEN_USED_WITH {tenant}]->(:Tool)`: (from, to, tenant) → coOccurrences.
    co: BTreeMap<(String, String, String), i64>,
    schema: BTreeSet<String>,
}

/// A statement's FAILURE: Neo4j's status code and message.
struct Failure(&'static str, String);

/// The columns and rows of a statement.
type Answer = (Vec<&'static str>, Vec<Vec<Value>>);

struct Params<'a>(&'a Value);

impl Params<'_> {
    fn get(&self, name: &str) -> Result<&Value, Failure> {
        self.0.field(name).ok_or_else(|| {
            Failure("Neo.ClientError.Statement.ParameterMissing", format!("Expected parameter(s): {name}"))
        })
    }

    fn text(&self, name: &str) -> Result<String, Failure> {
        match self.get(name)? {
            Value::String(text) => Ok(text.clone()),
            other => Err(type_error(name, other)),
        }
    }

    fn int(&self, name: &str) -> Result<i64, Failure> {
        match self.get(name)? {
            Value::Int(n) => Ok(*n),
            other => Err(type_error(name, other)),
        }
    }

    fn texts(&self, name: &str) -> Result<Vec<String>, Failure> {
        match self.get(name)? {
            Value::List(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    other => Err(type_error(name, other)),
                })
                .collect(),
            other => Err(type_error(name, other)),
        }
    }

    /// A string, or `None` for null.
    fn optional_text(&self, name: &str) -> Result<Option<String>, Failure> {
        match self.get(name)? {
            Value::Null => Ok(None),
            _ => self.text(name).map(Some),
        }
    }
}

fn type_error(name: &str, value: &Value) -> Failure {
    Failure("Neo.ClientError.Statement.TypeError", format!("parameter `{name}` has the wrong type: {value:?}"))
}

impl Graph {
    fn execute(&mut self, statement: &str, params: &Params<'_>) -> Result<Answer, Failure> {
        if cypher::SCHEMA.contains(&statement) {
            self.schema.insert(statement.to_string());
            return Ok((vec![], vec![]));
        }
        match statement {
            cypher::RECORD_QUERY => {
                let (tenant, kept) = (params.text("tenant")?, params.int("kept")?);
                let (query, tools) = (params.text("query")?, params.texts("tools")?);
                let recorded = self.tenants.entry(tenant.clone()).or_insert(0);
                *recorded += 1;
                let number = *recorded;
                self.served.insert((tenant.clone(), number), (query, tools));
                self.served.retain(|(owner, old), _| *owner != tenant || *old > number - kept);
                Ok((vec![], vec![]))
            }
            cypher::RECORD_USAGE => {
                let (tenant, tools) = (params.text("tenant")?, params.texts("tools")?);
                if self.tenants.contains_key(&tenant) {
                    for tool in tools {
                        self.tools.insert(tool.clone());
                        *self.used.entry((tenant.clone(), tool)).or_default() += 1;
                    }
                }
                Ok((vec![], vec![]))
            }
            cypher::RECORD_CO_OCCURRENCES => {
                let (tenant, tools) = (params.text("tenant")?, params.texts("tools")?);
                // One row per matched node, however often its id is listed.
                let nodes: BTreeSet<&String> = tools.iter().filter(|id| self.tools.contains(*id)).collect();
                for a in &nodes {
                    for b in nodes.iter().filter(|b| *b != a) {
                        *self.co.entry((a.to_string(), b.to_string(), tenant.clone())).or_default() += 1;
                    }
                }
                Ok((vec![], vec![]))
            }
            cypher::HISTORY => {
                let (tenant, after, limit) = (params.text("tenant")?, params.int("after")?, params.int("limit")?);
                let rows = self
                    .served
                    .iter()
                    .rev()
                    .filter(|((owner, number), _)| *owner == tenant && *number > after)
                    .take(usize::try_from(limit).unwrap_or(0))
                    .map(|((_, number), (query, tools))| {
                        vec![Value::Int(*number), string(query), Value::List(tools.iter().map(|t| string(t)).collect())]
                    })
                    .collect();
                Ok((vec!["number", "query", "tools"], rows))
            }
            cypher::VERSION => Ok((vec!["version"], vec![vec![Value::Int(self.tenants.values().sum())]])),
            cypher::USAGE => {
                let tool = params.optional_text("tool")?;
                let rows = self
                    .used
                    .iter()
                    .filter(|((_, used), _)| tool.as_ref().is_none_or(|tool| tool == used))
                    .map(|((tenant, used), queries)| vec![string(used), string(tenant), Value::Int(*queries)])
                    .collect();
                Ok((vec!["tool", "tenant", "queries"], rows))
            }
            cypher::CO_OCCURRENCES => {
                let tool = params.optional_text("tool")?;
                let rows = self
                    .co
                    .iter()
                    .filter(|((from, _, _), _)| tool.as_ref().is_none_or(|tool| tool == from))
                    .map(|((from, to, tenant), queries)| {
                        vec![string(from), string(to), string(tenant), Value::Int(*queries)]
                    })
                    .collect();
                Ok((vec!["tool", "other", "tenant", "queries"], rows))
            }
            other => Err(Failure(
                "Neo.ClientError.Statement.SyntaxError",
                format!("the stand-in does not know this statement: {other}"),
            )),
        }
    }
}

/// A running stand-in; stops when dropped.
pub(crate) struct BoltStandIn {
    port: u16,
    /// Every request message's name, in arrival order (all connections).
    seen: Arc<StdMutex<Vec<&'static str>>>,
    task: JoinHandle<()>,
}

impl BoltStandIn {
    /// Listens on a free loopback port, accepting `user` with `password` only.
    pub(crate) async fn start(user: &str, password: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port can be bound");
        let port = listener.local_addr().expect("a bound socket has an address").port();
        let graph = Arc::new(Mutex::new(Graph::default()));
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let credentials = Arc::new((user.to_string(), password.to_string()));
        let connections = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let session = Session {
                    graph: graph.clone(),
                    seen: connections.clone(),
                    transaction: None,
                    pending: Vec::new(),
                    failed: false,
                };
                tokio::spawn(session.serve(socket, credentials.clone()));
            }
        });
        Self { port, seen, task }
    }

    pub(crate) fn uri(&self) -> String {
        format!("bolt://127.0.0.1:{}", self.port)
    }

    /// The request messages received so far, by name.
    pub(crate) fn seen(&self) -> Vec<&'static str> {
        self.seen.lock().expect("no panic holds this lock").clone()
    }
}

impl Drop for BoltStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection's state.
struct Session {
    graph: Arc<Mutex<Graph>>,
    seen: Arc<StdMutex<Vec<&'static str>>>,
    /// An open transaction: the graph's lock and the copy its statements change.
    transaction: Option<(OwnedMutexGuard<Graph>, Graph)>,
    /// Rows of the last RUN not yet pulled.
    pending: Vec<Vec<Value>>,
    /// A FAILURE was sent: everything but RESET is IGNORED until then.
    failed: bool,
}

const SUCCESS: u8 = 0x70;
const RECORD: u8 = 0x71;
const IGNORED: u8 = 0x7E;
const FAILURE: u8 = 0x7F;

impl Session {
    async fn serve(mut self, mut socket: TcpStream, credentials: Arc<(String, String)>) {
        if handshake(&mut socket).await.is_err() {
            return;
        }
        while let Ok(message) = read_message(&mut socket).await {
            let Ok(Value::Struct(signature, fields)) = (Decoder { bytes: &message }).value() else { return };
            let replies = match self.handle(signature, &fields, &credentials).await {
                Some(replies) => replies,
                None => return,
            };
            for (signature, fields) in replies {
                if write_message(&mut socket, &Value::Struct(signature, fields)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// The replies to one request; `None` closes the connection.
    async fn handle(
        &mut self,
        signature: u8,
        fields: &[Value],
        credentials: &(String, String),
    ) -> Option<Vec<(u8, Vec<Value>)>> {
        let name = match signature {
            0x01 => "HELLO",
            0x02 => "GOODBYE",
            0x0F => "RESET",
            0x10 => "RUN",
            0x11 => "BEGIN",
            0x12 => "COMMIT",
            0x13 => "ROLLBACK",
            0x2F => "DISCARD",
            0x3F => "PULL",
            _ => "UNKNOWN",
        };
        self.seen.lock().expect("no panic holds this lock").push(name);
        let success = |meta: Value| Some(vec![(SUCCESS, vec![meta])]);
        match name {
            "GOODBYE" | "UNKNOWN" => return None,
            "RESET" => {
                self.transaction = None;
                self.pending.clear();
                self.failed = false;
                return success(map(&[]));
            }
            _ if self.failed => return Some(vec![(IGNORED, vec![])]),
            _ => {}
        }
        let failure = |this: &mut Self, Failure(code, message): Failure| {
            this.failed = true;
            this.pending.clear();
            Some(vec![(FAILURE, vec![map(&[("code", string(code)), ("message", string(&message))])])])
        };
        match name {
            "HELLO" => {
                let extra = fields.first()?;
                let given = (extra.field("principal"), extra.field("credentials"));
                if given == (Some(&string(&credentials.0)), Some(&string(&credentials.1))) {
                    success(map(&[("server", string("Neo4j/4.4.0")), ("connection_id", string("bolt-stand-in"))]))
                } else {
                    let message = Failure(
                        "Neo.ClientError.Security.Unauthorized",
                        "The client is unauthorized due to authentication failure.".into(),
                    );
                    failure(self, message)
                }
            }
            "BEGIN" => {
                let guard = self.graph.clone().lock_owned().await;
                let copy = guard.clone();
                self.transaction = Some((guard, copy));
                success(map(&[]))
            }
            "COMMIT" | "ROLLBACK" => match self.transaction.take() {
                Some((mut guard, copy)) => {
                    if name == "COMMIT" {
                        *guard = copy;
                    }
                    success(map(&[("bookmark", string("stand-in:1"))]))
                }
                None => {
                    failure(self, Failure("Neo.ClientError.Request.Invalid", format!("{name} outside a transaction")))
                }
            },
            "RUN" => {
                let (Some(Value::String(statement)), Some(params)) = (fields.first(), fields.get(1)) else {
                    return failure(
                        self,
                        Failure("Neo.ClientError.Request.Invalid", "RUN needs a statement and parameters".into()),
                    );
                };
                let answer = match &mut self.transaction {
                    Some((_, copy)) => copy.execute(statement, &Params(params)),
                    None => {
                        let mut graph = self.graph.lock().await;
                        let mut copy = graph.clone();
                        let answer = copy.execute(statement, &Params(params));
                        if answer.is_ok() {
                            *graph = copy;
                        }
                        answer
                    }
                };
                match answer {
                    Ok((columns, rows)) => {
                        self.pending = rows;
                        let fields = Value::List(columns.into_iter().map(string).collect());
                        success(map(&[("fields", fields), ("t_first", Value::Int(0))]))
                    }
                    Err(error) => failure(self, error),
                }
            }
            "PULL" => {
                let n = match fields.first().and_then(|extra| extra.field("n")) {
                    Some(Value::Int(n)) if *n >= 0 => usize::try_from(*n).unwrap_or(usize::MAX),
                    _ => usize::MAX,
                };
                let batch: Vec<Vec<Value>> = self.pending.drain(..n.min(self.pending.len())).collect();
                let mut replies: Vec<(u8, Vec<Value>)> =
                    batch.into_iter().map(|row| (RECORD, vec![Value::List(row)])).collect();
                let done = if self.pending.is_empty() {
                    map(&[("type", string("rw")), ("t_last", Value::Int(0))])
                } else {
                    map(&[("has_more", Value::Bool(true))])
                };
                replies.push((SUCCESS, vec![done]));
                Some(replies)
            }
            "DISCARD" => {
                self.pending.clear();
                success(map(&[("type", string("rw")), ("t_last", Value::Int(0))]))
            }
            _ => None,
        }
    }
}

/// Bolt's handshake: the magic preamble, four proposed versions; 4.1 or 4.0 is chosen.
async fn handshake(socket: &mut TcpStream) -> std::io::Result<()> {
    let mut hello = [0u8; 20];
    socket.read_exact(&mut hello).await?;
    if hello[..4] != [0x60, 0x60, 0xB0, 0x17] {
        return Err(std::io::Error::other("not Bolt"));
    }
    let chosen = hello[4..]
        .chunks(4)
        .find_map(|proposal| match (proposal[3], proposal[2]) {
            (4, minor @ (0 | 1)) => Some([0, 0, minor, 4]),
            _ => None,
        })
        .unwrap_or([0; 4]);
    socket.write_all(&chosen).await?;
    if chosen == [0; 4] { Err(std::io::Error::other("no common version")) } else { Ok(()) }
}

/// One message: chunks (a 16-bit size, then the bytes) up to an empty one.
async fn read_message(socket: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut message = Vec::new();
    loop {
        let size = usize::from(socket.read_u16().await?);
        if size == 0 {
            // Empty chunks before a message are keep-alives (NOOP).
            if message.is_empty() {
                continue;
            }
            return Ok(message);
        }
        let start = message.len();
        message.resize(start + size, 0);
        socket.read_exact(&mut message[start..]).await?;
    }
}

async fn write_message(socket: &mut TcpStream, value: &Value) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    encode(value, &mut bytes);
    let mut framed = Vec::with_capacity(bytes.len() + 4);
    for chunk in bytes.chunks(0xFFFF) {
        framed.extend((chunk.len() as u16).to_be_bytes());
        framed.extend(chunk);
    }
    framed.extend([0, 0]);
    socket.write_all(&framed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packstream_round_trips_every_size_class() {
        let long = "x".repeat(70_000);
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(-16),
            Value::Int(-17),
            Value::Int(127),
            Value::Int(128),
            Value::Int(-40_000),
            Value::Int(3_000_000_000),
            Value::Float(0.75),
            Value::Bytes(vec![1, 2, 3]),
            string("tiny"),
            string(&"y".repeat(300)),
            string(&long),
            Value::List((0..20).map(Value::Int).collect()),
            map(&[("n", Value::Int(-1)), ("qid", Value::Int(-1))]),
            Value::Struct(0x10, vec![string("RETURN 1"), map(&[]), map(&[("db", string("neo4j"))])]),
        ];
        for value in values {
            let mut bytes = Vec::new();
            encode(&value, &mut bytes);
            let mut decoder = Decoder { bytes: &bytes };
            assert_eq!(decoder.value().unwrap(), value);
            assert!(decoder.bytes.is_empty());
        }
        // Known encodings from the PackStream specification.
        let mut bytes = Vec::new();
        encode(&Value::Int(-16), &mut bytes);
        encode(&string("a"), &mut bytes);
        encode(&Value::Int(1234), &mut bytes);
        assert_eq!(bytes, [0xF0, 0x81, b'a', 0xC9, 0x04, 0xD2]);
    }
}
