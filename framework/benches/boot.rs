//! Boot cost: prepare + refresh of N trivial components, as a chain
//! (component i needs component i-1) and as a wide fan-out (every leaf needs
//! one hub, and one collector needs every leaf). Cost should grow linearly.
//!
//! Run: `cargo bench -p appctx --bench boot`.

use std::sync::Arc;

use appctx::{ComponentDef, ContextBuilder, Dependency};

fn main() {
    divan::main();
}

/// A trivial component.
struct Node;

/// The hub of the fan-out.
struct Hub;

fn chain(n: usize) -> ContextBuilder {
    let mut builder = ContextBuilder::new();
    builder = builder.component(ComponentDef::manual::<Node, _>("n0", vec![], |_| {
        Ok(Arc::new(Node))
    }));
    for i in 1..n {
        let previous = format!("n{}", i - 1);
        let deps = vec![Dependency::named::<Node>(previous.clone())];
        builder = builder.component(ComponentDef::manual::<Node, _>(
            format!("n{i}"),
            deps,
            move |r| {
                r.get_named::<Node>(&previous)?;
                Ok(Arc::new(Node))
            },
        ));
    }
    builder
}

fn fan_out(n: usize) -> ContextBuilder {
    let mut builder = ContextBuilder::new().component(ComponentDef::new("hub", || Arc::new(Hub)));
    for i in 0..n {
        builder = builder.component(ComponentDef::new(format!("leaf{i}"), |_hub: Arc<Hub>| {
            Arc::new(Node)
        }));
    }
    builder.component(ComponentDef::new("collector", |leaves: Vec<Arc<Node>>| {
        Arc::new(leaves.len())
    }))
}

#[divan::bench(args = [1_000, 10_000], sample_count = 10)]
fn boot_chain(bencher: divan::Bencher, n: usize) {
    bencher
        .with_inputs(|| chain(n))
        .bench_values(|builder| builder.build().expect("chain boots"));
}

#[divan::bench(args = [1_000, 10_000], sample_count = 10)]
fn boot_fan_out(bencher: divan::Bencher, n: usize) {
    bencher
        .with_inputs(|| fan_out(n))
        .bench_values(|builder| builder.build().expect("fan-out boots"));
}
