//! A small config-driven service an embedding application could copy.
//!
//! It boots from a TOML file, prints the effective configuration and its
//! startup report, writes its dependency graph as DOT, runs until Ctrl-C
//! (or `service.max_ticks`), and closes gracefully.
//!
//! ```text
//! cargo run -p appctx --example service -- [CONFIG.toml] [--set key=value]...
//! APP__SERVICE__TICK_MS=100 cargo run -p appctx --example service
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use appctx::{
    BoxError, CancellationToken, Config, ConfigSection, ContextBuilder, Environment, Lifecycle,
    Runner, component,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceConfig {
    name: String,
    tick_ms: u64,
    max_ticks: u64,
}

impl ConfigSection for ServiceConfig {
    const PREFIX: &'static str = "service";
}

/// Where ticks are counted; two providers, chosen by `store.kind`.
trait Store: Send + Sync {
    fn record(&self) -> u64;
}

#[derive(Default)]
struct MemoryStore(AtomicU64);

impl Store for MemoryStore {
    fn record(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::default())
}
component!(memory, select = "store.kind");

struct LogStore(AtomicU64);

impl Store for LogStore {
    fn record(&self) -> u64 {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!("[log store] recorded tick {n}");
        n
    }
}

fn log() -> Arc<dyn Store> {
    Arc::new(LogStore(AtomicU64::new(0)))
}
component!(log, select = "store.kind");

/// The service's main loop, run by `ctx.run()`.
struct Ticker {
    cfg: Config<ServiceConfig>,
    store: Arc<dyn Store>,
}

impl Runner for Ticker {
    fn run(&self, shutdown: &CancellationToken) -> Result<(), BoxError> {
        let period = Duration::from_millis(self.cfg.tick_ms);
        loop {
            if let Some(cause) = shutdown.wait_timeout(period) {
                println!("{}: stopping ({cause})", self.cfg.name);
                return Ok(());
            }
            let n = self.store.record();
            println!("{}: tick {n}", self.cfg.name);
            if self.cfg.max_ticks != 0 && n >= self.cfg.max_ticks {
                return Ok(());
            }
        }
    }
}

fn ticker(cfg: Config<ServiceConfig>, store: Arc<dyn Store>) -> Arc<dyn Runner> {
    Arc::new(Ticker { cfg, store })
}
component!(ticker);

/// Something with a start/stop lifecycle.
struct Announcer;

impl Lifecycle for Announcer {
    fn start(&self) -> Result<(), BoxError> {
        println!("announcer: started");
        Ok(())
    }
    fn stop(&self) {
        println!("announcer: stopped");
    }
}

fn announcer() -> Arc<dyn Lifecycle> {
    Arc::new(Announcer)
}
component!(announcer);

fn main() {
    if let Err(e) = boot() {
        eprintln!(
            "\n***************************\nAPPLICATION FAILED TO START\n***************************\n\n{e}"
        );
        std::process::exit(1);
    }
}

fn boot() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let mut config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/service.toml").to_string();
    let mut sets = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--set" => sets.push(args.next().ok_or("--set needs key=value")?),
            _ => config = arg,
        }
    }
    let env = Environment::builder()
        .file(config)
        .env_prefix("APP")
        .sets(sets)
        .build()?;
    println!("Effective configuration:\n{}", env.effective());

    // Opt in to signal handling: Ctrl-C / SIGTERM cancel this token.
    let shutdown = CancellationToken::new();
    let _signals = appctx::signals::cancel_on_signals(&shutdown)?;

    let prepared = ContextBuilder::new()
        .all_modules() // the binary's own context: every linked module
        .environment(env)
        .shutdown_token(shutdown)
        .prepare()?;
    let graph = std::env::temp_dir().join("appctx-service.dot");
    std::fs::write(&graph, prepared.graph().to_dot())?;
    println!("Dependency graph written to {}", graph.display());

    let ctx = prepared.refresh()?;
    println!("{}", ctx.startup_report());
    let result = ctx.run();
    ctx.close();
    Ok(result?)
}
