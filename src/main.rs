//! `connectors`: the Connectors Gateway binary.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use connectors::app::{ClusterIdentity, Gateway, StartOptions};
use connectors::cli::{Cli, ClusterCommand, Command, EvalSelectionArgs, MigrateCommand, ServeArgs, SingleToMultiArgs};
use connectors::config::{Config, Env, ProcessEnv};
use connectors::http;
use connectors::log_filter::LogFilter;
use connectors::tenant_logs::TenantLogs;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tenant_logs = TenantLogs::default();
    let (otel_layer, traces) = match connectors::otel::from_env(&ProcessEnv) {
        Ok(Some((layer, traces))) => (Some(layer), Some(traces)),
        Ok(None) => (None, None),
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let log_filter = LogFilter::from_directives(std::env::var("RUST_LOG").ok().as_deref());
    let formatted = log_filter.for_formatting();
    tracing_subscriber::registry()
        .with(log_filter.layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a terminal: a log file or collector gets plain text.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(tracing_subscriber::filter::filter_fn(formatted)),
        )
        .with(tenant_logs.clone())
        .with(otel_layer)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args, &tenant_logs)),
        Command::EvalSelection(args) => runtime.block_on(eval_selection(args)),
        Command::Cluster(ClusterCommand::Status(args)) => runtime.block_on(async {
            let text = connectors::cluster_status::run(&args).await?;
            let _ = writeln!(std::io::stdout(), "{text}");
            Ok(())
        }),
        Command::Migrate(MigrateCommand::SingleToMulti(args)) => runtime.block_on(migrate_single_to_multi(args)),
        Command::Admin(args) => runtime.block_on(connectors::admin_cli::run(args)),
        Command::Openapi => {
            let _ = write!(std::io::stdout(), "{}", http::openapi::document_json());
            Ok(())
        }
    };
    if let Some(traces) = traces {
        traces.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs, tenant_logs: &TenantLogs) -> Result<(), String> {
    let env = ProcessEnv;
    let config_path = args.config_path();
    let config = Config::load(config_path.as_deref(), &env).map_err(|e| e.to_string())?;
    if config.separate_logs {
        let dir = args.data_dir.join("logs");
        tenant_logs
            .enable(&dir)
            .map_err(|e| format!("cannot create the tenant log directory {}: {e}", dir.display()))?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let cluster = match args.cluster()? {
        None => None,
        Some(cluster) => {
            let cookie = connectors::cluster_settings::cookie(env.var("CONNECTORS_CLUSTER_COOKIE").as_deref())
                .map_err(|e| e.to_string())?;
            Some(ClusterIdentity {
                node_id: cluster.node_id,
                listen: cluster.listen,
                advertise: cluster.advertise,
                cookie,
            })
        }
    };
    let options = StartOptions {
        data_dir: &args.data_dir,
        admin_key: env.var("ADMIN_API_KEY"),
        master_key: env.var("CONNECTORS_MASTER_KEY"),
        fault_injection: env.var("CONNECTORS_FAULT_INJECTION").is_some_and(|v| v == "1" || v == "true"),
        http_addr: listener.local_addr().unwrap_or(args.listen),
        redis_url: args.redis_url.clone(),
        cluster,
    };
    let open_metrics = config.metrics_token.is_none() && !args.listen.ip().is_loopback();
    let gateway = Gateway::start(config, options).await.map_err(|e| e.to_string())?;
    if open_metrics {
        tracing::warn!(
            listen = %args.listen,
            "/metrics names every tenant and is open to anyone who reaches this address: set METRICS_TOKEN"
        );
    }
    tracing::info!(
        listen = %args.listen,
        data_dir = %args.data_dir.display(),
        config = %config_path.as_ref().map_or("(built-in defaults)".into(), |p| p.display().to_string()),
        "Connectors Gateway serving"
    );
    let app = http::router(gateway.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // Sent, or the sender dropped as `main` returns: either way, stop accepting.
                stopped.await.ok();
            })
            .into_future(),
    );
    let mut superseded = false;
    let served = tokio::select! {
        result = &mut server => result,
        () = replaced(&gateway) => {
            superseded = true;
            // The server task may have ended already: then it accepts nothing anyway.
            stop_accepting.send(()).ok();
            server.abort();
            Ok(Ok(()))
        }
        () = shutdown_signal() => {
            if let Some(cluster) = &gateway.cluster {
                // Load balancers see /readyz turn 503 from here on; requests that still arrive
                // are forwarded to the shards' new owners.
                tracing::info!("draining: handing this node's shards to the others");
                cluster.drain(gateway.config.cluster.drain_deadline).await;
            }
            tracing::info!("shutting down: finishing in-flight requests");
            // The server task may have ended already: then it accepts nothing anyway.
            stop_accepting.send(()).ok();
            let grace = gateway.config.shutdown_grace;
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    // A stalled client must not block a restart forever.
                    tracing::warn!(grace_seconds = grace.as_secs(), "connections still open after the grace period; closing them");
                    server.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    tracing::info!("stopping tenant actors and flushing state");
    gateway.shutdown().await;
    if superseded {
        return Err(format!(
            "another process started with node id `{}` has taken this one's place in the cluster",
            gateway.node_id
        ));
    }
    match served {
        Ok(result) => result.map_err(|e| format!("server error: {e}")),
        Err(join) => Err(format!("server task failed: {join}")),
    }
}

async fn eval_selection(args: EvalSelectionArgs) -> Result<(), String> {
    let input = connectors::tools::evaluation::EvalInput {
        catalog: &args.catalog,
        queries: &args.queries,
        history: args.history.as_deref(),
        output: args.output.as_deref(),
        embedding_model: args.embedding_model.as_deref(),
    };
    let report = connectors::tools::evaluation::run(&input).await.map_err(|e| e.to_string())?;
    // A closed pipe (`| head`) is not an error of the evaluation.
    let _ = writeln!(std::io::stdout(), "{report}");
    Ok(())
}

async fn migrate_single_to_multi(args: SingleToMultiArgs) -> Result<(), String> {
    let env = ProcessEnv;
    let config_path = connectors::cli::config_path(args.config.clone());
    let config = Config::load(config_path.as_deref(), &env).map_err(|e| e.to_string())?;
    let master_key = env.var("CONNECTORS_MASTER_KEY");
    let input = connectors::migrate::MigrateInput {
        config: &config,
        data_dir: &args.data_dir,
        redis_url: args.redis_url.as_deref(),
        master_key: master_key.as_deref(),
        from: args.from.as_deref(),
        to: &args.tenant,
        name: &args.name,
        plan: args.plan.as_deref(),
    };
    let report = connectors::migrate::run(&input).await.map_err(|e| e.to_string())?;
    let _ = writeln!(std::io::stdout(), "{report}");
    Ok(())
}

/// Resolves when a newer process with this node id took over (never on a single node).
async fn replaced(gateway: &Gateway) {
    match &gateway.cluster {
        Some(cluster) => cluster.superseded.notified().await,
        None => std::future::pending().await,
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        // A failed registration must not read as Ctrl-C: the node would stop at once.
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
