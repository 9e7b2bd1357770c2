//! Gymnasium's `env.unwrapped.P`, fetched once from `GET …/model/`.

use rl_env::{Model, Outcome};
use serde_json::Value;

/// The dynamics a server sent, checked and laid out flat.
#[derive(Debug)]
pub struct RemoteModel {
    n_states: usize,
    n_actions: usize,
    /// Every outcome, `(s, a)` after `(s, a - 1)`.
    outcomes: Vec<Outcome>,
    /// `outcomes[offsets[s · n_actions + a] .. offsets[… + 1]]` is `P[s][a]`.
    offsets: Vec<usize>,
    absorbing: Vec<bool>,
}

impl RemoteModel {
    /// Reads `{n_states, n_actions, transitions}`; the error says what is wrong.
    pub fn from_wire(body: &Value) -> Result<RemoteModel, String> {
        let count = |field: &str| {
            body.get(field)
                .and_then(Value::as_u64)
                .filter(|&n| n >= 1)
                .map(|n| n as usize)
                .ok_or_else(|| format!("malformed body: expected \"{field}\" ≥ 1"))
        };
        let (n_states, n_actions) = (count("n_states")?, count("n_actions")?);
        let rows = body
            .get("transitions")
            .and_then(Value::as_array)
            .filter(|rows| rows.len() == n_states)
            .ok_or_else(|| {
                format!("malformed body: expected \"transitions\" with {n_states} rows")
            })?;
        let mut outcomes = Vec::new();
        let mut offsets = vec![0];
        let mut absorbing = Vec::with_capacity(n_states);
        for (s, row) in rows.iter().enumerate() {
            let actions = row
                .as_array()
                .filter(|a| a.len() == n_actions)
                .ok_or_else(|| format!("transitions[{s}] must list {n_actions} actions"))?;
            let mut stays = true;
            for (a, list) in actions.iter().enumerate() {
                let list = list
                    .as_array()
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| format!("transitions[{s}][{a}] must list outcomes"))?;
                let mut total = 0.0;
                for (i, outcome) in list.iter().enumerate() {
                    let outcome = parse_outcome(outcome, n_states)
                        .ok_or_else(|| {
                            format!(
                                "transitions[{s}][{a}][{i}] must be [probability in [0, 1], next state below {n_states}, finite reward, terminated], got {outcome}"
                            )
                        })?;
                    total += outcome.probability;
                    stays &= outcome.next_state == s && outcome.reward == 0.0;
                    outcomes.push(outcome);
                }
                if (total - 1.0).abs() > 1e-6 {
                    return Err(format!(
                        "the probabilities of transitions[{s}][{a}] sum to {total}, not 1"
                    ));
                }
                offsets.push(outcomes.len());
            }
            // Gymnasium's terminal states loop on themselves with reward 0,
            // as our Model's absorbing states do.
            absorbing.push(stays);
        }
        Ok(RemoteModel {
            n_states,
            n_actions,
            outcomes,
            offsets,
            absorbing,
        })
    }
}

fn parse_outcome(value: &Value, n_states: usize) -> Option<Outcome> {
    let [p, next, reward, terminated] = value.as_array()?.as_slice() else {
        return None;
    };
    let probability = p.as_f64().filter(|p| (0.0..=1.0).contains(p))?;
    let next_state = next.as_u64().filter(|&s| (s as usize) < n_states)? as usize;
    let reward = reward.as_f64().filter(|r| r.is_finite())?;
    let terminated = terminated
        .as_bool()
        .or_else(|| terminated.as_u64().map(|t| t != 0))?;
    Some(Outcome {
        probability,
        next_state,
        reward,
        terminated,
    })
}

impl Model for RemoteModel {
    fn n_states(&self) -> usize {
        self.n_states
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn transitions(&self, state: usize, action: usize) -> &[Outcome] {
        let at = state * self.n_actions + action;
        &self.outcomes[self.offsets[at]..self.offsets[at + 1]]
    }
    fn is_absorbing(&self, state: usize) -> bool {
        self.absorbing[state]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_p_and_finds_absorbing_states() {
        let body = json!({"n_states": 2, "n_actions": 2, "transitions": [
            [[[0.5, 0, 0.0, false], [0.5, 1, 1.0, true]], [[1.0, 0, 0.0, false]]],
            [[[1.0, 1, 0, true]], [[1.0, 1, 0, true]]]]});
        let model = RemoteModel::from_wire(&body).unwrap();
        assert_eq!(model.transitions(0, 0).len(), 2);
        assert_eq!(model.transitions(0, 0)[1].next_state, 1);
        assert!(model.transitions(0, 0)[1].terminated);
        assert!(!model.is_absorbing(0));
        assert!(model.is_absorbing(1));
        let bad = json!({"n_states": 1, "n_actions": 1, "transitions": [[[[0.5, 0, 0, false]]]]});
        assert!(
            RemoteModel::from_wire(&bad)
                .unwrap_err()
                .contains("sum to 0.5")
        );
        let bad = json!({"n_states": 1, "n_actions": 1, "transitions": [[[[1.0, 3, 0, false]]]]});
        assert!(
            RemoteModel::from_wire(&bad)
                .unwrap_err()
                .contains("transitions[0][0][0]")
        );
    }
}
