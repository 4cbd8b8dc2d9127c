//! Cross-referencing of TSan root causes with static findings, and the outputs a run
//! produces: the Markdown migration plan, `results.json`, SARIF 2.1.0 and baselines.

pub mod model;

pub use model::RunRecord;
