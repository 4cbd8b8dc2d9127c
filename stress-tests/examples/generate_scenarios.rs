//! Writes the scenarios for an API model to a directory, one `<name>.py` each.
//!
//! Usage: generate_scenarios MODEL.json OUT_DIR [SEED [THREADS [ITERATIONS [BUDGET_SECS [TARGET...]]]]]

use std::time::Duration;

use anyhow::{Context, Result};
use ftreview_stress::{generate, parse_api_model, GenConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, out_dir, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: generate_scenarios MODEL.json OUT_DIR [SEED [THREADS [ITERATIONS [BUDGET_SECS [TARGET...]]]]]");
    };
    let number = |i: usize, default: u64| {
        rest.get(i).map_or(Ok(default), |s| {
            s.parse::<u64>()
                .with_context(|| format!("not a number: {s}"))
        })
    };
    let cfg = GenConfig {
        seed: number(0, 0)?,
        threads: number(1, 4)? as usize,
        iterations: number(2, 2000)?,
        time_budget_per_scenario: Duration::from_secs(number(3, 20)?),
        targets: rest.iter().skip(4).cloned().collect(),
        ..GenConfig::default()
    };
    let model = parse_api_model(
        &std::fs::read_to_string(model_path).with_context(|| format!("reading {model_path}"))?,
    )?;
    std::fs::create_dir_all(out_dir)?;
    for scenario in generate(&model, &cfg) {
        std::fs::write(format!("{out_dir}/{}.py", scenario.name), &scenario.script)?;
        println!("{}", scenario.name);
    }
    Ok(())
}
