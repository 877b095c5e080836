//! A module that requires a module no linked crate declares: every context
//! built from it (named, or through `all_modules`) fails with the fix.
//! (Its own test binary: the missing module would fail every other test.)

use appctx::{ContextBuilder, Error};

appctx::module!(NEEDY, name = "needy", requires = ["storage"]);

#[test]
fn a_missing_required_module_names_it_and_the_linking_fix() {
    for builder in [
        ContextBuilder::new().module(&NEEDY),
        ContextBuilder::new().all_modules(),
    ] {
        let err = builder.build().unwrap_err();
        let Error::ModuleMissing {
            module, required, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((module.as_str(), required.as_str()), ("needy", "storage"));
        let text = err.to_string();
        assert!(
            text.contains("Module `needy` requires module `storage`, but no linked crate declares it. Linked modules: `needy`."),
            "{text}"
        );
        assert!(text.contains("`use the_crate as _;`"), "{text}");
    }
    // A context that does not name it is unaffected.
    assert!(ContextBuilder::new().build().is_ok());
}
