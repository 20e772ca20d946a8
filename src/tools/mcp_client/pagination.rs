//! Following `nextCursor` until the last page, without trusting the server to ever stop.

use std::collections::HashSet;

use super::McpError;

/// Most pages read for one listing: thousands of tools at any sane page size, and a bound on a
/// server whose cursors never end.
pub(crate) const MAX_PAGES: usize = 1_000;

/// Calls `fetch` with no cursor, then with each `nextCursor` it returned, and joins the pages. A
/// cursor seen before, or more than [`MAX_PAGES`] pages, is a protocol error rather than a loop.
pub(crate) async fn collect_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, McpError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), McpError>>,
{
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let (page, next) = fetch(cursor).await?;
        items.extend(page);
        match next {
            None => return Ok(items),
            Some(next) if !seen.insert(next.clone()) => {
                return Err(McpError::Protocol(format!("tools/list repeated the cursor `{next}`")));
            }
            Some(next) => cursor = Some(next),
        }
    }
    Err(McpError::Protocol(format!("tools/list did not end within {MAX_PAGES} pages")))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Serves `pages` by index, the cursor being the next page's index.
    async fn serve(pages: &[Vec<u32>], cursor: Option<String>) -> Result<(Vec<u32>, Option<String>), McpError> {
        let index: usize = cursor.map_or(0, |cursor| cursor.parse().expect("cursors are indices"));
        let next = (index + 1 < pages.len()).then(|| (index + 1).to_string());
        Ok((pages[index].clone(), next))
    }

    #[tokio::test]
    async fn joins_every_page_in_order() {
        let pages = vec![vec![1, 2], vec![3], vec![], vec![4, 5]];
        let asked = RefCell::new(Vec::new());
        let items = collect_pages(|cursor| {
            asked.borrow_mut().push(cursor.clone());
            serve(&pages, cursor)
        })
        .await
        .expect("pages join");
        assert_eq!(items, vec![1, 2, 3, 4, 5]);
        assert_eq!(asked.into_inner(), vec![None, Some("1".into()), Some("2".into()), Some("3".into())]);
    }

    #[tokio::test]
    async fn a_single_page_is_one_request() {
        let mut requests = 0;
        let items = collect_pages(|_| {
            requests += 1;
            async { Ok((vec!["only"], None)) }
        })
        .await
        .expect("one page");
        assert_eq!((items, requests), (vec!["only"], 1));
    }

    #[tokio::test]
    async fn a_repeated_cursor_is_a_protocol_error() {
        let outcome = collect_pages(|_| async { Ok((vec![0], Some("again".to_string()))) }).await;
        assert!(matches!(outcome, Err(McpError::Protocol(message)) if message.contains("again")));
    }

    #[tokio::test]
    async fn endless_fresh_cursors_stop_at_the_page_limit() {
        let mut next = 0;
        let outcome = collect_pages(|_| {
            next += 1;
            let cursor = next.to_string();
            async move { Ok((vec![()], Some(cursor))) }
        })
        .await;
        assert!(matches!(outcome, Err(McpError::Protocol(_))));
        assert_eq!(next, MAX_PAGES);
    }

    #[tokio::test]
    async fn a_failing_page_fails_the_listing() {
        let outcome: Result<Vec<u8>, _> = collect_pages(|cursor| async move {
            match cursor {
                None => Ok((vec![1], Some("2".to_string()))),
                Some(_) => Err(McpError::Timeout),
            }
        })
        .await;
        assert_eq!(outcome, Err(McpError::Timeout));
    }
}
