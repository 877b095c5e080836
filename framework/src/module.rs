//! Modules: the unit a context is built from. Every link-time registered
//! component belongs to the module of the crate that registered it; a crate
//! declares its module once with [`module!`](crate::module) (to name it and
//! state what it requires), and a crate that declares none still forms an
//! implicit module named after the crate.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::registry::registered;

/// A module declared with [`module!`](crate::module): a name and the
/// modules it requires. Pass it to
/// [`ContextBuilder::module`](crate::ContextBuilder::module).
#[derive(Debug)]
pub struct Module {
    name: &'static [&'static str],
    module_path: &'static str,
    requires: &'static [&'static str],
}

impl Module {
    /// Used by [`module!`](crate::module): `name` holds zero names (the
    /// crate's name is used) or one.
    #[doc(hidden)]
    pub const fn __declare(
        module_path: &'static str,
        name: &'static [&'static str],
        requires: &'static [&'static str],
    ) -> Self {
        Module {
            name,
            module_path,
            requires,
        }
    }

    /// The module's name: the one declared, else the crate's name.
    pub fn name(&self) -> &'static str {
        self.name.first().copied().unwrap_or(self.crate_name())
    }

    /// The crate that declared it; its registered components belong to it.
    pub fn crate_name(&self) -> &'static str {
        crate_of_path(self.module_path)
    }

    /// The names of the modules it requires.
    pub fn requires(&self) -> &'static [&'static str] {
        self.requires
    }
}

/// The crate of a `module_path!()`: its first segment.
pub(crate) fn crate_of_path(module_path: &'static str) -> &'static str {
    module_path.split("::").next().unwrap_or(module_path)
}

/// A module's entry in the link-time registry. Used by [`module!`](crate::module).
#[doc(hidden)]
pub struct ModuleRegistration(pub &'static Module);

inventory::collect!(ModuleRegistration);

/// Declares the calling crate's module, once per crate, as a `static` that
/// contexts name with [`ContextBuilder::module`](crate::ContextBuilder::module).
///
/// Every component the crate registers with [`component!`](crate::component)
/// belongs to it. `name = "..."` overrides the default name (the crate's
/// name); `requires = ["..."]` names modules that must be part of any context
/// built from this one: they join it automatically, and a required module
/// that no linked crate provides is an error.
///
/// ```
/// use std::sync::Arc;
/// use appctx::{component, module, ContextBuilder};
///
/// module!(pub GREETINGS, name = "greetings");
///
/// pub struct Greeting(&'static str);
/// fn greeting() -> Arc<Greeting> { Arc::new(Greeting("hello")) }
/// component!(greeting);
///
/// let ctx = ContextBuilder::new().module(&GREETINGS).build().unwrap();
/// assert_eq!(ctx.get::<Greeting>().unwrap().0, "hello");
/// // A context that names no module sees no registered component.
/// assert!(ContextBuilder::new().build().unwrap().get::<Greeting>().is_err());
/// ```
#[macro_export]
macro_rules! module {
    ($vis:vis $item:ident $(, name = $name:literal)? $(, requires = [$($required:literal),* $(,)?])? $(,)?) => {
        $vis static $item: $crate::Module = $crate::Module::__declare(
            module_path!(),
            &[$($name)?],
            &[$($($required),*)?],
        );
        $crate::__private::inventory::submit! {
            $crate::ModuleRegistration(&$item)
        }
    };
}

/// Every linked module by name, with the crate whose components it holds
/// and what it requires; crates that register components without declaring
/// a module appear under their crate's name.
#[derive(Debug)]
struct LinkedModules {
    by_name: BTreeMap<&'static str, (&'static str, &'static [&'static str])>,
}

fn linked() -> Result<&'static LinkedModules> {
    static LINKED: OnceLock<Result<LinkedModules, (String, Vec<String>)>> = OnceLock::new();
    let built = LINKED.get_or_init(|| {
        let mut by_name = BTreeMap::new();
        let mut declaring: BTreeMap<&'static str, &'static str> = BTreeMap::new();
        for ModuleRegistration(module) in inventory::iter::<ModuleRegistration> {
            let crate_name = module.crate_name();
            if let Some(first) = declaring.insert(crate_name, module.name()) {
                return Err((
                    crate_name.to_string(),
                    vec![first.into(), module.name().into()],
                ));
            }
            if let Some((other, _)) = by_name.insert(module.name(), (crate_name, module.requires)) {
                return Err((
                    module.name().to_string(),
                    vec![other.into(), crate_name.into()],
                ));
            }
        }
        for def in registered() {
            if let Some(crate_name) = def.crate_name
                && !declaring.contains_key(crate_name)
            {
                by_name.entry(crate_name).or_insert((crate_name, &[][..]));
            }
        }
        Ok(LinkedModules { by_name })
    });
    built
        .as_ref()
        .map_err(|(clash, parties)| Error::ModuleClash {
            clash: clash.clone(),
            parties: parties.clone(),
        })
}

/// The crates whose registered components a context takes part in.
#[derive(Debug, Clone)]
pub(crate) enum CrateSet {
    /// Every linked crate.
    All,
    /// These crates only (none for a context that names no module).
    Only(HashSet<&'static str>),
}

impl CrateSet {
    /// Whether components registered by `crate_name` take part.
    pub fn contains(&self, crate_name: &str) -> bool {
        match self {
            CrateSet::All => true,
            CrateSet::Only(crates) => crates.contains(crate_name),
        }
    }

    /// Whether no registered component can take part.
    pub fn is_empty(&self) -> bool {
        matches!(self, CrateSet::Only(crates) if crates.is_empty())
    }
}

/// The crates of `named` modules and of every module they require,
/// transitively (`None`: every linked module). A required module that is not
/// linked is an error naming who requires it.
pub(crate) fn resolve(named: Option<&[&'static Module]>) -> Result<CrateSet> {
    if named.is_some_and(<[_]>::is_empty) {
        return Ok(CrateSet::Only(HashSet::new()));
    }
    let linked = linked()?;
    type Entry = (&'static str, &'static str, &'static [&'static str]);
    let entry = |name: &'static str| -> Option<Entry> {
        linked.by_name.get(name).map(|&(c, r)| (name, c, r))
    };
    let mut pending: Vec<Entry> = match named {
        Some(modules) => modules
            .iter()
            .map(|m| (m.name(), m.crate_name(), m.requires))
            .collect(),
        None => linked.by_name.keys().filter_map(|&n| entry(n)).collect(),
    };
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    let mut crates = HashSet::new();
    while let Some((name, crate_name, requires)) = pending.pop() {
        if !seen.insert(name) {
            continue;
        }
        crates.insert(crate_name);
        for &required in requires {
            let Some(found) = entry(required) else {
                return Err(Error::ModuleMissing {
                    module: name.to_string(),
                    required: required.to_string(),
                    linked: linked.by_name.keys().map(|n| n.to_string()).collect(),
                });
            };
            pending.push(found);
        }
    }
    Ok(match named {
        Some(_) => CrateSet::Only(crates),
        None => CrateSet::All,
    })
}
