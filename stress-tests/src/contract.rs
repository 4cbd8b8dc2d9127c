//! Trial calls that broke the C-API contract in one thread (a result returned with an
//! exception set, NULL without one): single-threaded bugs that introspection has already
//! shown, whatever the scenarios go on to reach.

use crate::model::{ApiModel, ArgSet, TrialOutcome};

/// One such call: a one-line Python reproducer and the `SystemError` it raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractBreak {
    pub call: String,
    pub error: Option<String>,
}

impl ApiModel {
    /// The first contract-breaking trial of each function and method. A method's reproducer
    /// builds its object with the first constructor that worked; without one it is left out.
    pub fn contract_breaks(&self) -> Vec<ContractBreak> {
        let mut breaks = Vec::new();
        for module in &self.modules {
            let import = format!("import {}", module.name);
            for function in &module.functions {
                if let Some(set) = first_break(&function.arg_sets) {
                    breaks.push(ContractBreak {
                        call: format!("{import}; {}({})", function.qualname, set.args.join(", ")),
                        error: set.error.clone(),
                    });
                }
            }
            for ty in &module.types {
                let Some(constructor) = ty.constructors.first() else {
                    continue;
                };
                let access = ty.access.as_deref().unwrap_or(&ty.qualname);
                let build = format!("x = {access}({})", constructor.args.join(", "));
                for method in &ty.methods {
                    if let Some(set) = first_break(&method.call.arg_sets) {
                        breaks.push(ContractBreak {
                            call: format!(
                                "{import}; {build}; x.{}({})",
                                method.call.name,
                                set.args.join(", ")
                            ),
                            error: set.error.clone(),
                        });
                    }
                }
            }
        }
        breaks
    }
}

fn first_break(sets: &[ArgSet]) -> Option<&ArgSet> {
    sets.iter()
        .find(|s| s.outcome == TrialOutcome::InternalError)
}

#[cfg(test)]
mod tests {
    use crate::model::TrialOutcome;
    use crate::parse_api_model;

    /// Introspection's real output on the quirky fixture: `echo('a')` returns a result with
    /// an exception set.
    fn quirky() -> crate::ApiModel {
        parse_api_model(include_str!("../tests/data/quirky_api_model.json")).unwrap()
    }

    #[test]
    fn a_function_that_breaks_the_contract_gets_a_one_line_reproducer() {
        let breaks = quirky().contract_breaks();
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        assert_eq!(
            breaks[0].call,
            "import ftfixture_quirky; ftfixture_quirky.echo('a')"
        );
        assert!(breaks[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("SystemError")));
    }

    #[test]
    fn a_method_is_called_on_an_object_from_the_first_constructor() {
        let mut model = quirky();
        let ty = model.modules[1]
            .types
            .iter_mut()
            .find(|t| t.name == "Thing")
            .unwrap();
        ty.methods[0].call.arg_sets[0].outcome = TrialOutcome::InternalError;
        let calls: Vec<String> = model
            .contract_breaks()
            .into_iter()
            .map(|b| b.call)
            .collect();
        assert!(
            calls.contains(
                &"import ftfixture_quirky._q; x = ftfixture_quirky._q.Thing(); x.describe()"
                    .to_string()
            ),
            "{calls:?}"
        );
    }
}
