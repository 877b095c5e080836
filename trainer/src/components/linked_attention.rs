//! The attention strategy `parallel.cp_comm` selects, for a command that
//! runs ranks without a run's contexts (`cptrain eval`): a plugin's
//! strategy is found and built as a run builds it.

use std::sync::Arc;

use appctx::{ApplicationContext, ComponentDef, Environment, TypeKey};

use super::RANK_SCOPE;
use super::configured::{dependencies_of, few_components, providers};
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
        let attention = TypeKey::of::<dyn Attention>();
        let strategies: Vec<ComponentDef> = providers(attention).collect();
        // What the strategies need beyond the rank's own values, each
        // created only if the chosen one needs it.
        let given = [
            attention,
            TypeKey::of::<TrainPlan>(),
            TypeKey::of::<RankInfo>(),
            TypeKey::of::<RankGroups>(),
            TypeKey::of::<dyn Kernels>(),
        ];
        let needed = dependencies_of(&strategies, &given);
        let (builder, excluded) = few_components(env, "linked-attention", needed)?;
        Ok(LinkedAttention {
            process: builder.instance(plan).build()?,
            strategies: strategies
                .into_iter()
                .filter(|def| !excluded.iter().any(|n| n == def.component_name()))
                .collect(),
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
