//! An axum server in this process on a runtime of its own, whose threads carry its name so that
//! its CPU time is told apart from the load generator's: the bare handler and the floors.

use std::future::Future;
use std::net::SocketAddr;

pub(crate) struct LocalServer {
    pub(crate) addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl LocalServer {
    /// Binds a loopback port, then builds the app on the server's own runtime (so that what the
    /// app spawns, actors and tasks, runs on the server's threads) and serves it.
    pub(crate) fn start<F>(thread_name: &'static str, threads: usize, app: F) -> Result<Self, String>
    where
        F: Future<Output = Result<axum::Router, String>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(thread_name)
            .enable_all()
            .build()
            .map_err(|e| format!("{thread_name} runtime: {e}"))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("{thread_name} bind: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        runtime.spawn(async move {
            let served = async {
                let app = app.await?;
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
                axum::serve(listener, app).await.map_err(|e| e.to_string())
            };
            if let Err(error) = served.await {
                eprintln!("bench: {thread_name}: {error}");
            }
        });
        Ok(Self { addr, runtime: Some(runtime) })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
