//! Retries of 429 and 503, against a stand-in HTTP server on loopback that answers the given
//! responses in order (the real gateway's answers are tested in the connectors package's
//! tests/rust_client.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use connectors_client::{AdminApi, Error, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
    x-request-id: r-503\r\nconnection: close\r\ncontent-length: 91\r\n\r\n\
    {\"error\":\"the service is temporarily unavailable\",\"code\":\"unavailable\",\"requestId\":\"r-503\"}";

const CLUSTER: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 109\r\n\r\n\
    {\"nodeId\":\"n1\",\"epoch\":3,\"nodes\":[{\"id\":\"n1\",\"addr\":\"a\",\"status\":\"up\"}],\"shards\":{\"total\":1024,\"owned\":1024}}";

/// Serves `answers` in order, one per connection; returns its base URL and the count of
/// requests it read.
async fn stand_in(answers: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
    for answer in &answers {
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
        assert_eq!(length, body.len(), "the stand-in's content-length must be right: {body}");
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        for answer in answers {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap() == 1 {
                head.push(byte[0]);
            }
            count.fetch_add(1, Ordering::SeqCst);
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.ok();
        }
    });
    (url, served)
}

#[tokio::test]
async fn a_503_is_retried_after_the_wait_the_server_asks_for() {
    let (url, served) = stand_in(vec![UNAVAILABLE, CLUSTER]).await;
    let view = AdminApi::new(&url, "k").unwrap().cluster().await.unwrap();
    assert_eq!((view.node_id.as_str(), view.epoch), ("n1", 3));
    assert_eq!(served.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_retries_the_error_carries_code_request_id_and_retry_after() {
    let (url, served) = stand_in(vec![UNAVAILABLE]).await;
    let error = AdminApi::new(&url, "k").unwrap().with_retry(RetryPolicy::none()).cluster().await.unwrap_err();
    assert_eq!(error.code(), Some("unavailable"));
    assert_eq!(error.request_id(), Some("r-503"));
    assert_eq!(error.retry_after(), Some(1));
    assert_eq!(error.status(), Some(503));
    assert!(matches!(error, Error::Api(_)));
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retries_stop_after_the_policys_count() {
    let (url, served) = stand_in(vec![UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]).await;
    let policy = RetryPolicy { max_retries: 2, ..RetryPolicy::default() };
    let error = AdminApi::new(&url, "k").unwrap().with_retry(policy).cluster().await.unwrap_err();
    assert_eq!(error.code(), Some("unavailable"));
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

#[test]
fn a_base_url_that_is_not_http_is_refused() {
    assert!(matches!(AdminApi::new("ftp://example.com", "k"), Err(Error::InvalidSetting(_))));
    assert!(matches!(AdminApi::new("not a url", "k"), Err(Error::InvalidSetting(_))));
}
