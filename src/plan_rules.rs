//! Physical-plan rules of the engine: a StarFlow call costs 12,500 flow evaluations per star, so no plan may evaluate
//! it on rows that a TopK (`ORDER BY ... LIMIT n`) throws away.
//!
//! - DataFusion's `ProjectionPushdown` moves a column-narrowing projection below a `SortExec`, TopK included, without
//!   weighing what the projection computes: 36 s instead of 0.3 s for the top 30 of 6,500 stars. [`KeepFlowsInPlace`]
//!   runs it only on plans without flow calls.
//! - SQL computes the SELECT list before ORDER BY, so `SELECT id, starflow_age(...) FROM t ORDER BY id LIMIT 5` plans
//!   the TopK above the flow's projection and evaluates every star. [`TopKBeforeFlows`] swaps the two when the sort
//!   keys do not need a flow: the TopK runs on the projection's input, and the flow on the n rows it keeps.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::projection::update_expr;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::projection_pushdown::ProjectionPushdown;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;

#[derive(Debug, Default)]
pub struct KeepFlowsInPlace {
    inner: ProjectionPushdown,
}

fn calls_flow(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let is_flow = expr
        .downcast_ref::<ScalarFunctionExpr>()
        .is_some_and(|f| starflow_udfs::functions::evaluates_flow(f.name()));
    is_flow || expr.children().into_iter().any(calls_flow)
}

fn plan_calls_flow(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let here = plan
        .downcast_ref::<ProjectionExec>()
        .is_some_and(|p| p.expr().iter().any(|e| calls_flow(&e.expr)));
    here || plan.children().into_iter().any(plan_calls_flow)
}

impl PhysicalOptimizerRule for KeepFlowsInPlace {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if plan_calls_flow(&plan) { Ok(plan) } else { self.inner.optimize(plan, config) }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}

#[derive(Debug, Default)]
pub struct TopKBeforeFlows;

/// A sort that keeps the first n rows: a TopK, or the merge of sorted partitions with a fetch (what DataFusion plans when
/// the input is already sorted). Its ordering and input.
fn limited_sort(plan: &Arc<dyn ExecutionPlan>) -> Option<(&LexOrdering, &Arc<dyn ExecutionPlan>)> {
    if let Some(sort) = plan.downcast_ref::<SortExec>() {
        return sort.fetch().map(|_| (sort.expr(), sort.input()));
    }
    let merge = plan.downcast_ref::<SortPreservingMergeExec>()?;
    merge.fetch().map(|_| (merge.expr(), merge.input()))
}

/// The limited sort `plan` with another ordering and input.
fn rebuild_limited_sort(plan: &Arc<dyn ExecutionPlan>, ordering: LexOrdering, input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    match plan.downcast_ref::<SortExec>() {
        Some(sort) => Arc::new(
            SortExec::new(ordering, input).with_fetch(sort.fetch()).with_preserve_partitioning(sort.preserve_partitioning()),
        ),
        None => Arc::new(SortPreservingMergeExec::new(ordering, input).with_fetch(plan.fetch())),
    }
}

impl TopKBeforeFlows {
    /// `Sort(fetch) <- Projection.. <- input` as `Projection.. <- Sort(fetch) <- input` when one of the projections calls
    /// a flow and the sort keys, restated in terms of `input`, do not.
    fn swap(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some((ordering, mut input)) = limited_sort(plan) else { return Ok(None) };
        let mut chain: Vec<&ProjectionExec> = Vec::new();
        while let Some(projection) = input.downcast_ref::<ProjectionExec>() {
            chain.push(projection);
            input = projection.input();
        }
        if !chain.iter().any(|p| p.expr().iter().any(|e| calls_flow(&e.expr))) {
            return Ok(None);
        }
        let mut keys: Vec<PhysicalSortExpr> = ordering.iter().cloned().collect();
        for projection in &chain {
            for key in &mut keys {
                match update_expr(&key.expr, projection.expr(), true)? {
                    Some(expr) => key.expr = expr,
                    None => return Ok(None),
                }
            }
        }
        // A key that needs a flow's value keeps the plan as it is.
        if keys.iter().any(|k| calls_flow(&k.expr)) {
            return Ok(None);
        }
        let Some(ordering) = LexOrdering::new(keys) else { return Ok(None) };
        let mut swapped = rebuild_limited_sort(plan, ordering, Arc::clone(input));
        for projection in chain.iter().rev() {
            swapped = Arc::new(ProjectionExec::try_new(projection.expr().to_vec(), swapped)?);
        }
        Ok(Some(swapped))
    }
}

impl PhysicalOptimizerRule for TopKBeforeFlows {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|plan| {
            Ok(match Self::swap(&plan)? {
                Some(swapped) => Transformed::yes(swapped),
                None => Transformed::no(plan),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "TopKBeforeFlows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// DataFusion's default physical rules with `ProjectionPushdown` replaced by [`KeepFlowsInPlace`], and
/// [`TopKBeforeFlows`] before `PushdownSort` (so that the later rules, e.g. the TopK's dynamic filter, see the new plan).
pub fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = Vec::new();
    for rule in datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules {
        match rule.name() {
            "ProjectionPushdown" => rules.push(Arc::new(KeepFlowsInPlace::default()) as _),
            "PushdownSort" => rules.extend([Arc::new(TopKBeforeFlows) as _, rule]),
            _ => rules.push(rule),
        }
    }
    rules
}
