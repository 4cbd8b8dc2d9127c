//! Recorded data the unit tests share.

use ftreview_reports::RunRecord;

/// A recorded run of the racy fixture, with the API model its stress phase introspected.
pub(crate) fn recorded_run() -> (tempfile::TempDir, RunRecord) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("logs/stress/api-model.json");
    std::fs::create_dir_all(model.parent().unwrap()).unwrap();
    std::fs::write(
        &model,
        include_str!("../../stress-tests/tests/data/racy_model.json"),
    )
    .unwrap();
    let record = serde_json::from_str(include_str!("../tests/data/racy-run.json")).unwrap();
    (dir, record)
}
