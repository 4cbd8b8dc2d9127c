//! Whether importing the extension turns the GIL back on: each module is imported in a fresh
//! process without `PYTHON_GIL` (a module without a `Py_mod_gil` declaration re-enables it).

use std::time::Duration;

use ftreview_reports::model::{GilCheck, Phase};
use serde::Deserialize;

use super::Ctx;
use crate::env::{helper_output, quiet_env};
use crate::process::Step;

/// What `ftreview_helper.py gil-check MODULE` prints.
#[derive(Debug, Deserialize)]
pub(crate) struct GilProbe {
    pub module: String,
    /// Always true on a GIL build, so only a change counts.
    pub gil_before: bool,
    pub gil_after: bool,
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

pub(crate) async fn gil_check(ctx: &Ctx, modules: &[String]) -> anyhow::Result<GilCheck> {
    let logs = ctx.run_dir.logs(Phase::GilCheck.name())?;
    let mut reenabled = false;
    let mut messages = Vec::new();
    for module in modules {
        let step = Step::new(
            format!("gil-check {module}"),
            &ctx.venv.python,
            &logs,
            &logs.join(format!("{module}.log")),
        )
        .in_phase(Phase::GilCheck)
        .arg(ctx.run_dir.helper())
        .args(["gil-check", module])
        .envs(&quiet_env())
        .env_remove("PYTHON_GIL")
        .timeout(Duration::from_secs(300));
        match helper_output::<GilProbe>(step, &ctx.runner).await {
            Ok(probe) => {
                reenabled |= probe.gil_after && !probe.gil_before;
                if let Some(error) = probe.error {
                    messages.push(format!("{}: import failed: {error}", probe.module));
                }
                let warnings = probe.warnings.into_iter();
                messages.extend(warnings.map(|w| format!("{}: {w}", probe.module)));
            }
            Err(err) => messages.push(format!("{module}: the check did not run: {err:#}")),
        }
    }
    Ok(GilCheck {
        reenabled_on_import: Some(reenabled),
        modules: modules.to_vec(),
        message: (!messages.is_empty()).then(|| messages.join("\n")),
    })
}
