//! The attention strategy `parallel.cp_comm` selects, for a command that
//! runs ranks without a run's contexts (`cptrain eval`): a plugin's
//! strategy is found and built as a run builds it.

use std::collections::BTreeSet;
use std::sync::Arc;

use appctx::{
    ApplicationContext, ComponentDef, ContextBuilder, Dependency, Environment, TypeKey, registered,
};

use super::RANK_SCOPE;
use crate::attention::Attention;
use crate::kernels::Kernels;
use crate::train::{RankGroups, RankInfo, TrainPlan};

/// Builds each rank's attention from the linked components: a process
/// context of the plan and of the components the strategies depend on
/// (beyond what a rank is given), and per rank a child context of every
/// strategy with the rank's [`RankInfo`], [`RankGroups`] and kernels, in
/// which `parallel.cp_comm` (and each strategy's conditions) chooses.
pub struct LinkedAttention {
    process: Arc<ApplicationContext>,
    strategies: Vec<ComponentDef>,
}

impl LinkedAttention {
    /// The process context of `env` and `plan`.
    pub fn new(env: &Environment, plan: Arc<TrainPlan>) -> Result<Self, appctx::Error> {
        let given = [
            TypeKey::of::<TrainPlan>(),
            TypeKey::of::<RankInfo>(),
            TypeKey::of::<RankGroups>(),
            TypeKey::of::<dyn Kernels>(),
        ];
        let providing = |key: TypeKey| {
            registered()
                .iter()
                .filter(move |def| def.provides() == key)
                .map(|def| (**def).clone())
        };
        let strategies: Vec<ComponentDef> = providing(TypeKey::of::<dyn Attention>()).collect();
        // What the strategies need beyond the rank's own values, and what
        // that needs in turn: every provider of each type, once.
        let mut seen: BTreeSet<&str> = given.iter().map(TypeKey::name).collect();
        seen.insert(TypeKey::of::<dyn Attention>().name());
        let mut process_defs = Vec::new();
        let mut frontier = strategies.clone();
        while let Some(def) = frontier.pop() {
            for key in def.dependencies().iter().filter_map(Dependency::type_key) {
                if seen.insert(key.name()) {
                    let found: Vec<ComponentDef> = providing(key).collect();
                    frontier.extend(found.iter().cloned());
                    process_defs.extend(found);
                }
            }
        }
        let mut builder = ContextBuilder::new()
            .name("linked-attention")
            .environment(env.clone())
            .instance(plan);
        for def in process_defs {
            builder = builder.component(def);
        }
        // The rest of the configuration is the run's, read by components
        // this context leaves out.
        if let serde_json::Value::Object(sections) = env.to_json() {
            for section in sections.keys() {
                builder = builder.known_prefix(section.clone());
            }
        }
        Ok(LinkedAttention {
            process: builder.build()?,
            strategies,
        })
    }

    /// Rank `rank`'s strategy over `groups`, computing with `kernels`.
    pub fn build(
        &self,
        rank: usize,
        groups: Arc<RankGroups>,
        kernels: Arc<dyn Kernels>,
    ) -> Result<Arc<dyn Attention>, appctx::Error> {
        let mut builder = self
            .process
            .child(RANK_SCOPE)
            .name(format!("rank-{rank}"))
            .instance(Arc::new(RankInfo { rank }))
            .instance(groups)
            .instance(kernels)
            // Needing the strategy makes a `parallel.cp_comm` that no
            // linked component has an error naming those that exist.
            .component(ComponentDef::new(
                "rank_attention",
                |a: Arc<dyn Attention>| Arc::new(Chosen(a)),
            ));
        for def in &self.strategies {
            builder = builder.component(def.clone());
        }
        Ok(builder.build()?.get::<Chosen>()?.0.clone())
    }
}

/// The strategy [`LinkedAttention::build`] looks up.
struct Chosen(Arc<dyn Attention>);
