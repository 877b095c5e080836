//! Modules: the unit a context is built from. A crate declares its module
//! once, at its root, with [`module!`](crate::module) (to name it and state
//! what it requires); every component registered below the Rust module where
//! a module is declared belongs to it (the innermost declaration wins), and
//! a crate that declares none still forms an implicit module named after the
//! crate.

use std::collections::{BTreeMap, HashMap, HashSet};
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
        self.name
            .first()
            .copied()
            .unwrap_or(crate_of_path(self.module_path))
    }

    /// The Rust module path where it was declared: components registered
    /// there or below belong to it.
    pub fn module_path(&self) -> &'static str {
        self.module_path
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

/// Declares the calling crate's module (once, at the crate root) as a
/// `static` that contexts name with
/// [`ContextBuilder::module`](crate::ContextBuilder::module).
///
/// Every component registered with [`component!`](crate::component) in the
/// Rust module of the declaration or below belongs to it. `name = "..."` overrides the default name (the crate's
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

/// Every linked module by name, and the module of each registering path.
#[derive(Debug)]
struct LinkedModules {
    /// Name → what it requires.
    requires: BTreeMap<&'static str, &'static [&'static str]>,
    /// The `module_path!()` of each registration → its module's name.
    owner: HashMap<&'static str, &'static str>,
}

impl LinkedModules {
    fn scan() -> Result<LinkedModules, (String, Vec<String>)> {
        let mut requires = BTreeMap::new();
        let mut declared: BTreeMap<&'static str, &'static str> = BTreeMap::new();
        for ModuleRegistration(module) in inventory::iter::<ModuleRegistration> {
            let (name, path) = (module.name(), module.module_path);
            if let Some(first) = declared.insert(path, name) {
                return Err((path.to_string(), sorted([first, name])));
            }
            if requires.insert(name, module.requires).is_some() {
                let paths = declared.iter().filter(|(_, n)| **n == name);
                return Err((
                    name.to_string(),
                    paths.map(|(p, _)| p.to_string()).collect(),
                ));
            }
        }
        let mut owner = HashMap::new();
        for path in registered().iter().filter_map(|d| d.module_path) {
            let name = innermost(&declared, path).unwrap_or_else(|| crate_of_path(path));
            requires.entry(name).or_insert(&[][..]);
            owner.insert(path, name);
        }
        Ok(LinkedModules { requires, owner })
    }
}

fn sorted(names: [&str; 2]) -> Vec<String> {
    let mut names = names.map(str::to_string).to_vec();
    names.sort();
    names
}

/// The module declared at the longest prefix of `path` (whole segments).
fn innermost(declared: &BTreeMap<&'static str, &'static str>, path: &str) -> Option<&'static str> {
    let mut prefix = path;
    loop {
        if let Some(name) = declared.get(prefix) {
            return Some(name);
        }
        prefix = &prefix[..prefix.rfind("::")?];
    }
}

fn linked() -> Result<&'static LinkedModules> {
    static LINKED: OnceLock<Result<LinkedModules, (String, Vec<String>)>> = OnceLock::new();
    LINKED
        .get_or_init(LinkedModules::scan)
        .as_ref()
        .map_err(|(clash, parties)| Error::ModuleClash {
            clash: clash.clone(),
            parties: parties.clone(),
        })
}

/// The modules whose registered components a context takes.
#[derive(Debug, Clone)]
pub(crate) enum ModuleSet {
    /// Every linked module.
    All,
    /// These modules only (none for a context that names no module).
    Only(HashSet<&'static str>),
}

impl ModuleSet {
    /// Whether a component registered at `module_path` takes part.
    pub fn takes(&self, module_path: &'static str) -> bool {
        match self {
            ModuleSet::All => true,
            ModuleSet::Only(names) => linked()
                .ok()
                .and_then(|l| l.owner.get(module_path))
                .is_some_and(|name| names.contains(name)),
        }
    }

    /// Whether no registered component can take part.
    pub fn is_empty(&self) -> bool {
        matches!(self, ModuleSet::Only(names) if names.is_empty())
    }
}

/// The `named` modules and every module they require, transitively
/// (`None`: every linked module). A required module that is not linked is an
/// error naming who requires it.
pub(crate) fn resolve(named: Option<&[&'static Module]>) -> Result<ModuleSet> {
    if named.is_some_and(<[_]>::is_empty) {
        return Ok(ModuleSet::Only(HashSet::new()));
    }
    let linked = linked()?;
    let mut pending: Vec<(&'static str, &'static [&'static str])> = match named {
        Some(modules) => modules.iter().map(|m| (m.name(), m.requires)).collect(),
        None => linked.requires.iter().map(|(n, r)| (*n, *r)).collect(),
    };
    let mut names = HashSet::new();
    while let Some((name, requires)) = pending.pop() {
        if !names.insert(name) {
            continue;
        }
        for &required in requires {
            let Some(&next) = linked.requires.get(required) else {
                return Err(Error::ModuleMissing {
                    module: name.to_string(),
                    required: required.to_string(),
                    linked: linked.requires.keys().map(|n| n.to_string()).collect(),
                });
            };
            pending.push((required, next));
        }
    }
    Ok(match named {
        Some(_) => ModuleSet::Only(names),
        None => ModuleSet::All,
    })
}
