//! One walk over a file's syntax tree that records everything the rules need, so the tree can
//! be dropped and the rules run over plain data (and across files).

mod body;
mod c_api;
mod initializers;
mod preprocessor;
mod syntax;
mod top_level;
mod types;

pub(crate) use c_api::may_write_through;
pub(crate) use top_level::extract;
pub(crate) use types::*;
