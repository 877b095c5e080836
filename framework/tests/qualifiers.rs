//! `Named<T, Q>` parameters: a provider chosen by component name, checked
//! by prepare with errors as precise as for unnamed dependencies.

use std::sync::Arc;

use appctx::{ComponentDef, ContextBuilder, Environment, Error, Named, on_property};

struct Db(&'static str);

appctx::qualifier!(
    /// The database that takes writes.
    Primary = "primary_db";
    Replica = "replica_db"
);
appctx::qualifier!(Typo = "primery_db");

struct Repo {
    write: Arc<Db>,
    read: Arc<Db>,
}

fn repo(write: Named<Db, Primary>, read: Named<Db, Replica>) -> Arc<Repo> {
    Arc::new(Repo {
        write: write.into_arc(),
        read: read.into_arc(),
    })
}

fn databases() -> ContextBuilder {
    ContextBuilder::new()
        .named_instance("primary_db", Arc::new(Db("primary")))
        .named_instance("replica_db", Arc::new(Db("replica")))
}

#[test]
fn a_named_parameter_gets_the_provider_of_that_name() {
    let ctx = databases()
        .component(ComponentDef::new("repo", repo))
        .build()
        .unwrap();
    let repo = ctx.get::<Repo>().unwrap();
    assert_eq!((repo.write.0, repo.read.0), ("primary", "replica"));
    // Two providers of `Db`: a plain `Arc<Db>` would be ambiguous.
    assert!(matches!(
        ctx.get::<Db>(),
        Err(Error::AmbiguousDependency { .. })
    ));
    let kinds: Vec<(String, String)> = (ctx.graph().edges.iter())
        .filter(|e| e.from == "repo")
        .map(|e| (e.to.clone(), e.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("primary_db".to_string(), "named".to_string()),
            ("replica_db".to_string(), "named".to_string())
        ]
    );
    assert_eq!(Named::<Db, Primary>::NAME, "primary_db");
}

#[test]
fn a_childs_component_of_that_name_shadows_its_parents() {
    let parent = databases().build().unwrap();
    let child = parent
        .child("tenant")
        .named_instance("primary_db", Arc::new(Db("tenant primary")))
        .component(ComponentDef::new("repo", repo))
        .build()
        .unwrap();
    let repo = child.get::<Repo>().unwrap();
    assert_eq!((repo.write.0, repo.read.0), ("tenant primary", "replica"));
}

#[test]
fn a_name_no_provider_has_lists_the_providers_that_exist() {
    let err = databases()
        .component(ComponentDef::new("reporting", |db: Named<Db, Typo>| {
            Arc::new(db.0.len())
        }))
        .prepare()
        .unwrap_err();
    match &err {
        Error::QualifierNotFound {
            component,
            name,
            providers,
            ..
        } => {
            assert_eq!(component, "reporting");
            assert_eq!(name, "primery_db");
            assert_eq!(providers, &["primary_db", "replica_db"]);
        }
        other => panic!("expected QualifierNotFound, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(
            "reporting needs the Db named `primery_db`, but no component of that name provides Db."
        ),
        "{message}"
    );
    assert!(
        message.contains("Active providers of Db: `primary_db`, `replica_db`."),
        "{message}"
    );
    assert!(message.contains("Did you mean `primary_db`?"), "{message}");
}

#[test]
fn a_name_held_by_a_component_of_another_type_says_what_it_provides() {
    let err = ContextBuilder::new()
        .named_instance("primary_db", Arc::new(String::from("a url, not a Db")))
        .component(ComponentDef::new("repo", repo))
        .prepare()
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::QualifierNotFound { .. }), "{message}");
    assert!(
        message.contains("(the component `primary_db` provides String)"),
        "{message}"
    );
    assert!(
        message.contains("No active component provides Db at all."),
        "{message}"
    );
}

#[test]
fn an_inactive_provider_of_that_name_is_reported_with_why() {
    let env = Environment::builder()
        .sets(["db.replicas=off"])
        .build()
        .unwrap();
    let err = ContextBuilder::new()
        .environment(env)
        .named_instance("primary_db", Arc::new(Db("primary")))
        .component(
            ComponentDef::instance("replica_db", Arc::new(Db("replica")))
                .when(on_property("db.replicas", "on")),
        )
        .component(ComponentDef::new("repo", repo))
        .prepare()
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, Error::MissingDependency { dependency, .. } if dependency == "Db named `replica_db`"),
        "{message}"
    );
    assert!(
        message.contains("`replica_db` (scope `singleton`): property db.replicas == on"),
        "{message}"
    );
}
