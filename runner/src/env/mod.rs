//! The environments the extension runs in: the venvs on the TSan interpreter (created and
//! filled by uv, or pip when uv is unavailable), what the built wheel installed, and the
//! TSan environment of every instrumented process.

mod installed;
mod test_env;
mod tsan;
mod uv;
mod venv;

pub(crate) use installed::{instrumentation, instrumentation_problem, Installed};
pub(crate) use test_env::{
    cached_test_env, install_requirements, install_wheel, publish, requirement_name, Installer,
    TestEnv, TestEnvRequest,
};
pub(crate) use tsan::{quiet_env, run_env, tsan_log_prefix, tsan_options, write_suppressions};
pub(crate) use uv::Uv;
pub(crate) use venv::{cache_root, expect_success, helper_output, installed_versions, Venv};
