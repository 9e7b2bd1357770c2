//! `rl-lab envs` and `rl-lab agents`.

use super::{CliResult, print_json};

/// Arguments of `rl-lab envs`.
#[derive(clap::Args)]
pub struct EnvsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `rl-lab agents`.
#[derive(clap::Args)]
pub struct AgentsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Lists every environment id with its spaces and config defaults.
pub fn envs(args: EnvsArgs, lab: &super::Lab) -> CliResult {
    let listing = rl_runner::catalog::envs(&lab.engine());
    if args.json {
        return print_json(&listing);
    }
    for env in &listing {
        let show = |s: &Option<rl_env::Space>| s.as_ref().map_or("?".into(), |s| s.to_string());
        say!("{}", env.id);
        say!("    {}", env.summary);
        say!(
            "    observations {} · actions {}{}",
            show(&env.observation_space),
            show(&env.action_space),
            if env.has_model { " · model" } else { "" }
        );
        say!("    defaults {}", env.defaults);
    }
    Ok(())
}

/// Lists every agent with each hyperparameter, its default and what it does.
pub fn agents(args: AgentsArgs, lab: &super::Lab) -> CliResult {
    let engine = lab.engine();
    if args.json {
        return print_json(&rl_runner::catalog::agents(&engine));
    }
    for agent in engine.agents.entries() {
        say!("{}", agent.id);
        say!("    {}", agent.summary);
        for h in &agent.hyperparameters {
            say!(
                "    {:<20} {:<10} {}{}",
                h.name,
                h.default.to_string(),
                allowed(h),
                h.doc
            );
        }
    }
    Ok(())
}

/// What a field accepts beyond its type, as `rl-lab agents` shows it:
/// `[0, 1]`, `(0, 1]`, `≥ 1`, or the choices.
fn allowed(h: &rl_agent::Hyperparameter) -> String {
    if let Some(choices) = &h.choices {
        let names: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
        return format!("one of {}; ", names.join(", "));
    }
    let low = match (&h.minimum, &h.exclusive_minimum) {
        (_, Some(bound)) => Some(("(", bound)),
        (Some(bound), None) => Some(("[", bound)),
        _ => None,
    };
    let high = match (&h.maximum, &h.exclusive_maximum) {
        (_, Some(bound)) => Some((")", bound)),
        (Some(bound), None) => Some(("]", bound)),
        _ => None,
    };
    match (low, high) {
        (Some((open, low)), Some((close, high))) => format!("{open}{low}, {high}{close}; "),
        (Some(("[", low)), None) => format!("≥ {low}; "),
        (Some((_, low)), None) => format!("> {low}; "),
        (None, Some(("]", high))) => format!("≤ {high}; "),
        (None, Some((_, high))) => format!("< {high}; "),
        (None, None) => String::new(),
    }
}
