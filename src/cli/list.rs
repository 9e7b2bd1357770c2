//! `rl-lab envs` and `rl-lab agents`.

use super::{CliResult, print_json};
use rl_runner::Engine;
use serde::Serialize;
use serde_json::Value;

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

#[derive(Serialize)]
struct EnvListing {
    id: String,
    summary: String,
    observation_space: Option<rl_env::Space>,
    action_space: Option<rl_env::Space>,
    has_model: bool,
    defaults: Value,
}

/// Lists every environment id with its spaces and config defaults.
pub fn envs(args: EnvsArgs) -> CliResult {
    let engine = Engine::default();
    let listing: Vec<EnvListing> = engine
        .envs
        .entries()
        .map(|entry| {
            let env = (entry.make)(&Value::Null)
                .or_else(|_| (entry.make)(&entry.defaults))
                .ok();
            EnvListing {
                id: entry.id.clone(),
                summary: entry.summary.clone(),
                observation_space: env.as_ref().map(|e| e.observation_space().clone()),
                action_space: env.as_ref().map(|e| e.action_space().clone()),
                has_model: env.as_ref().is_some_and(|e| e.model().is_some()),
                defaults: entry.defaults.clone(),
            }
        })
        .collect();
    if args.json {
        return print_json(&listing);
    }
    for env in &listing {
        let show = |s: &Option<rl_env::Space>| s.as_ref().map_or("?".into(), |s| s.to_string());
        println!("{}", env.id);
        println!("    {}", env.summary);
        println!(
            "    observations {} · actions {}{}",
            show(&env.observation_space),
            show(&env.action_space),
            if env.has_model { " · model" } else { "" }
        );
        println!("    defaults {}", env.defaults);
    }
    Ok(())
}

/// Lists every agent with each hyperparameter, its default and what it does.
pub fn agents(args: AgentsArgs) -> CliResult {
    let engine = Engine::default();
    if args.json {
        #[derive(Serialize)]
        struct AgentListing<'a> {
            id: &'a str,
            summary: &'a str,
            hyperparameters: &'a [rl_agent::Hyperparameter],
        }
        let listing: Vec<AgentListing> = engine
            .agents
            .entries()
            .map(|a| AgentListing {
                id: &a.id,
                summary: &a.summary,
                hyperparameters: &a.hyperparameters,
            })
            .collect();
        return print_json(&listing);
    }
    for agent in engine.agents.entries() {
        println!("{}", agent.id);
        println!("    {}", agent.summary);
        for h in &agent.hyperparameters {
            println!("    {:<18} {:<10} {}", h.name, h.default.to_string(), h.doc);
        }
    }
    Ok(())
}
