//! A plugin crate as a second crate would write one: it only registers
//! components. Nothing here is called by the tests; they name the crate
//! (`use appctx_fixture_plugin as _;`) so that the linker keeps it.

use std::sync::Arc;

// The crate's module: contexts take its components with `.module(&MODULE)`,
// or when a module they name requires `fixture`.
appctx::module!(pub MODULE, name = "fixture");

/// A service provided by this plugin.
pub trait PluginGreeting: Send + Sync {
    /// The greeting.
    fn text(&self) -> String;
}

struct Hello;

impl PluginGreeting for Hello {
    fn text(&self) -> String {
        "hello from the fixture plugin".to_string()
    }
}

fn fixture_greeting() -> Arc<dyn PluginGreeting> {
    Arc::new(Hello)
}

appctx::component!(fixture_greeting, name = "fixture.greeting");
