//! One crate declaring two modules is refused when a context reads the
//! modules (its own test binary: the clash would fail every other test).

use appctx::{ContextBuilder, Error};

appctx::module!(ONE, name = "one");
appctx::module!(TWO, name = "two");

#[test]
fn a_crate_with_two_modules_is_an_error() {
    let err = ContextBuilder::new().module(&ONE).build().unwrap_err();
    assert!(
        matches!(&err, Error::ModuleClash { clash, parties } if clash == "module_clash" && parties == &["one", "two"]),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("Keep one `appctx::module!` per crate (at its root)"),
        "{text}"
    );
}
