//! End-to-end: the real `ftreview run` on the project's fixture extensions and on bad input,
//! with a real TSan interpreter, real uv/pip, pytest and extension builds, judged by the
//! outputs a user reads (results.json against its schema, the plan).

mod bad_input;
mod clean;
mod layout;
mod planted;
mod recorded;
mod support;
