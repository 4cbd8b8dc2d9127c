mod common;

use ftreview_reports::{analyze, render_markdown};

#[test]
fn racy_plan_prints() {
    let run = common::racy_record();
    let analysis = analyze(&run, None);
    let md = render_markdown(&analysis);
    std::fs::write("/tmp/racy-plan.md", &md).unwrap();
    std::fs::write(
        "/tmp/racy-results.json",
        ftreview_reports::results_json(&analysis.results),
    )
    .unwrap();
}
