//! How much memory a run will take, weighed before it is built, and the
//! cap it is weighed against: a run too large for the machine is refused
//! with its estimate, instead of aborting the process that hosts it.

use serde::Serialize;

/// A run's memory before it is built, in bytes, by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// The agent's: replay, networks, gradients, optimiser state, batch
    /// buffers, tables (the agent's own estimate, see
    /// `rl_agent::AgentEntry::memory`).
    pub agent: u64,
    /// The environments': the exact model `P` of the training env and of
    /// the evaluation copy, when the env has one.
    pub env: u64,
}

impl MemoryEstimate {
    /// Both parts.
    pub fn total(&self) -> u64 {
        self.agent.saturating_add(self.env)
    }

    /// The spec field to change when the estimate is too large: the larger part's.
    pub fn field(&self) -> &'static str {
        if self.agent >= self.env {
            "agent.config"
        } else {
            "env.config"
        }
    }
}

/// Bytes of an env's model: one `Outcome` per `P[s][a]` entry and a slice
/// header per `(s, a)`, read off the model the env holds.
pub fn model_bytes(model: &dyn rl_env::Model) -> u64 {
    let outcome = std::mem::size_of::<rl_env::Outcome>() as u64;
    let mut bytes = 0u64;
    for state in 0..model.n_states() {
        for action in 0..model.n_actions() {
            let outcomes = model.transitions(state, action).len() as u64;
            bytes = bytes.saturating_add(outcomes * outcome + 16);
        }
    }
    bytes
}

/// `bytes` in binary units with one decimal, e.g. `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Why an estimate is refused, in bytes and binary units, e.g. "needs
/// about 14.6 TiB (16000000000000 bytes) of memory, more than the cap of
/// 4.0 GiB (4294967296 bytes, --max-run-memory)".
pub fn over_cap(estimate: u64, cap: u64) -> String {
    format!(
        "needs about {} ({estimate} bytes) of memory, more than the cap of {} ({cap} bytes, --max-run-memory)",
        human_bytes(estimate),
        human_bytes(cap)
    )
}

/// The memory this process may use: the smaller of the machine's
/// (`MemTotal` in `/proc/meminfo`) and the cgroup's limit
/// (`/sys/fs/cgroup/memory.max`, or v1's `memory.limit_in_bytes`), or
/// `None` when neither can be read.
pub fn available_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map(|kib| kib.saturating_mul(1024));
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    });
    match (total, cgroup) {
        (Some(total), Some(limit)) => Some(total.min(limit)),
        (total, limit) => total.or(limit),
    }
}

/// The default cap of one run's memory when `workers` runs train at once:
/// three quarters of [`available_memory`] (the rest for the process, its
/// store and the page cache), shared equally, `available × 3/4 / workers`.
/// 4 GiB per worker when the machine's memory cannot be read.
pub fn default_max_run_memory(workers: usize) -> u64 {
    match available_memory() {
        Some(bytes) => bytes / 4 * 3 / workers.max(1) as u64,
        None => 4 << 30,
    }
}

/// Reads a byte count as a flag gives it: a number, optionally followed
/// by `K`, `M`, `G` or `T` (powers of 1,024; `KiB`, `MB`… read the same),
/// e.g. `4G` or `512MiB`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a byte count such as 4G or 512M"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("'{text}': unknown unit '{unit}'; use K, M, G or T")),
    };
    number
        .checked_mul(1 << shift)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("'{text}' is not a byte count between 1 and 2^64 - 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_with_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1kb"), Ok(1024));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("3X").is_err());
        assert!(parse_bytes("G").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16_000_000_000_000), "14.6 TiB");
    }

    #[test]
    fn the_default_cap_shares_the_machine() {
        let one = default_max_run_memory(1);
        let four = default_max_run_memory(4);
        assert!(one > 0);
        assert_eq!(four, one / 4);
    }
}
