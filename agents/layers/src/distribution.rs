//! A categorical distribution over a batch of logits: what a policy network's
//! head becomes in policy-gradient methods.
//!
//! With `x` one row of logits and `p = softmax(x)`:
//!
//! | quantity | value | gradient with respect to `x_k` |
//! |---|---|---|
//! | log-probability | `ln p_a = x_a − lse(x)` | `1[k = a] − p_k` |
//! | entropy | `H = −Σ_j p_j ln p_j` | `−p_k (ln p_k + H)` |
//!
//! `lse(x) = m + ln Σ_j e^(x_j − m)` with `m = max_j x_j`, so logits of ±1e4
//! give finite log-probabilities (down to about −2e4) instead of `ln 0`. An
//! action of probability 0 in `f32` still has a finite log-probability and a
//! gradient, which a clipped `ln p` would lose.
//!
//! The notes' softmax-with-loss is the special case: the mean of `−ln p_a`
//! over a batch is [`crate::Loss::SoftmaxCrossEntropy`] against one-hot
//! targets, with the same gradient `(p − t)/N`.

use crate::error::{Error, Result, shape_err};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rand::{Rng, RngExt};

/// Writes the log-softmax of `logits` into `out`: `x_k − lse(x)`.
///
/// ```
/// let mut out = [0.0f32; 3];
/// rl_layers::log_softmax(&[1e4, 0.0, -1e4], &mut out);
/// assert_eq!(out, [0.0, -1e4, -2e4]);
/// ```
///
/// # Panics
/// When `out` is not as long as `logits`.
pub fn log_softmax(logits: &[f32], out: &mut [f32]) {
    assert_eq!(
        logits.len(),
        out.len(),
        "log_softmax: out has its own length"
    );
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // The sum runs in f64: with hundreds of actions near the maximum, f32
    // would round away the small terms that the others' gradients need.
    let sum: f64 = logits.iter().map(|&x| f64::from(x - m).exp()).sum();
    let lse = f64::from(m) + sum.ln();
    for (o, &x) in out.iter_mut().zip(logits) {
        *o = (f64::from(x) - lse) as f32;
    }
}

/// Categorical distributions, one per row of a `[N, K]` batch of logits.
///
/// [`Categorical::set_logits`] computes the log-probabilities and
/// probabilities once into buffers the distribution keeps, so a training
/// loop that reuses one `Categorical` for batches of one size (rows in
/// standard layout) allocates nothing after the first.
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::Categorical;
/// let logits = ndarray::arr2(&[[0.0f32, 0.0], [10.0, -10.0]]);
/// let mut pi = Categorical::default();
/// pi.set_logits(logits.view()).unwrap();
/// assert!((pi.entropy(0) - std::f32::consts::LN_2).abs() < 1e-6);
/// assert!((pi.log_prob(1, 1) + 20.0).abs() < 1e-4);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// assert_eq!(pi.sample(1, &mut rng), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Categorical {
    log_probs: Array2<f32>,
    probs: Array2<f32>,
    entropies: Vec<f32>,
}

impl Categorical {
    /// Takes a batch of logits, `[N, K]` with `K ≥ 1`. Non-finite logits are
    /// an error: they mean the network that produced them has diverged.
    pub fn set_logits(&mut self, logits: ArrayView2<'_, f32>) -> Result<()> {
        let (n, k) = logits.dim();
        if k == 0 {
            return Err(shape_err("categorical", "[N, K] with K ≥ 1", &[n, k]));
        }
        if let Some(bad) = logits.iter().find(|x| !x.is_finite()) {
            return Err(Error::InvalidConfig {
                what: "categorical",
                field: "logits",
                reason: format!("must be finite, got {bad}"),
            });
        }
        if self.log_probs.dim() != (n, k) {
            self.log_probs = Array2::zeros((n, k));
            self.probs = Array2::zeros((n, k));
        }
        self.entropies.resize(n, 0.0);
        for (row, logits) in logits.rows().into_iter().enumerate() {
            let mut log_p = self.log_probs.row_mut(row);
            let log_p = log_p.as_slice_mut().expect("owned rows are contiguous");
            match logits.as_slice() {
                Some(x) => log_softmax(x, log_p),
                None => {
                    log_p.iter_mut().zip(logits).for_each(|(o, &x)| *o = x);
                    let copy = log_p.to_vec();
                    log_softmax(&copy, log_p);
                }
            }
            let mut entropy = 0.0f64;
            for (p, &lp) in self.probs.row_mut(row).iter_mut().zip(log_p.iter()) {
                *p = lp.exp();
                entropy -= f64::from(*p) * f64::from(lp);
            }
            self.entropies[row] = entropy as f32;
        }
        Ok(())
    }

    /// How many distributions (rows) there are.
    pub fn len(&self) -> usize {
        self.log_probs.nrows()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many categories each has.
    pub fn categories(&self) -> usize {
        self.log_probs.ncols()
    }

    /// The probabilities, `[N, K]`.
    pub fn probs(&self) -> ArrayView2<'_, f32> {
        self.probs.view()
    }

    /// The log-probabilities, `[N, K]`.
    pub fn log_probs(&self) -> ArrayView2<'_, f32> {
        self.log_probs.view()
    }

    /// `ln p(action)` under row `row`.
    ///
    /// # Panics
    /// When `row` or `action` is out of range.
    pub fn log_prob(&self, row: usize, action: usize) -> f32 {
        self.log_probs[(row, action)]
    }

    /// The entropy of row `row`, in nats.
    ///
    /// # Panics
    /// When `row` is out of range.
    pub fn entropy(&self, row: usize) -> f32 {
        self.entropies[row]
    }

    /// Draws an action from row `row` by inverting its cumulative
    /// distribution at one uniform draw.
    ///
    /// # Panics
    /// When `row` is out of range.
    pub fn sample<R: Rng + ?Sized>(&self, row: usize, rng: &mut R) -> usize {
        let u: f32 = rng.random();
        let probs = self.probs.row(row);
        let mut cumulative = 0.0f32;
        let mut last_possible = 0;
        for (action, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                last_possible = action;
                cumulative += p;
                if u < cumulative {
                    return action;
                }
            }
        }
        // The probabilities summed to just under 1 in f32 and `u` fell in
        // the gap: it belongs to the last action that can happen.
        last_possible
    }

    /// The gradient with respect to the logits of
    /// `L = Σ_n d_log_prob[n] · ln p_n(actions[n]) + d_entropy[n] · H_n`,
    /// written into `d_logits` (`[N, K]`, overwritten).
    ///
    /// A policy-gradient loss sets `d_log_prob[n] = −advantage[n] / N` and
    /// `d_entropy[n] = −entropy_coefficient / N`.
    pub fn backward(
        &self,
        actions: &[usize],
        d_log_prob: ArrayView1<'_, f32>,
        d_entropy: ArrayView1<'_, f32>,
        mut d_logits: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let (n, k) = self.log_probs.dim();
        if actions.len() != n || d_log_prob.len() != n || d_entropy.len() != n {
            return Err(shape_err(
                "categorical backward",
                format!("actions, d_log_prob and d_entropy of length {n}"),
                &[actions.len(), d_log_prob.len(), d_entropy.len()],
            ));
        }
        if d_logits.dim() != (n, k) {
            return Err(shape_err(
                "categorical backward",
                format!("d_logits [{n}, {k}]"),
                d_logits.shape(),
            ));
        }
        if let Some(&bad) = actions.iter().find(|&&a| a >= k) {
            return Err(shape_err(
                "categorical backward",
                format!("actions < {k}"),
                &[bad],
            ));
        }
        for row in 0..n {
            let (g_log_prob, g_entropy) = (d_log_prob[row], d_entropy[row]);
            let entropy = self.entropies[row];
            let probs = self.probs.row(row);
            let log_probs = self.log_probs.row(row);
            let mut out = d_logits.row_mut(row);
            for ((o, &p), &lp) in out.iter_mut().zip(probs).zip(log_probs) {
                *o = -g_log_prob * p - g_entropy * p * (lp + entropy);
            }
            out[actions[row]] += g_log_prob;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn samples_follow_the_probabilities_and_never_pick_the_impossible() {
        let probs = [0.1f32, 0.0, 0.6, 0.3];
        let logits: Vec<f32> = probs
            .iter()
            .map(|&p| if p > 0.0 { p.ln() } else { -1e4 })
            .collect();
        let mut policy = Categorical::default();
        policy
            .set_logits(ndarray::ArrayView2::from_shape((1, 4), &logits).unwrap())
            .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let draws = 200_000;
        let mut counts = [0usize; 4];
        for _ in 0..draws {
            counts[policy.sample(0, &mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (action, (&count, &p)) in counts.iter().zip(&probs).enumerate() {
            let expected = f64::from(p) * draws as f64;
            let sigma = (expected * (1.0 - f64::from(p))).sqrt().max(1.0);
            assert!(
                (count as f64 - expected).abs() < 5.0 * sigma,
                "action {action}: {count} draws, expected {expected:.0}"
            );
        }
    }

    #[test]
    fn bad_logits_and_shapes_are_named() {
        let mut policy = Categorical::default();
        let nan = ndarray::arr2(&[[0.0f32, f32::NAN]]);
        let error = policy.set_logits(nan.view()).unwrap_err().to_string();
        assert!(error.contains("logits"), "{error}");
        let empty = ndarray::Array2::<f32>::zeros((2, 0));
        assert!(policy.set_logits(empty.view()).is_err());
        policy
            .set_logits(ndarray::arr2(&[[0.0f32, 1.0]]).view())
            .unwrap();
        let mut d_logits = ndarray::Array2::zeros((1, 2));
        let ones = ndarray::arr1(&[1.0f32]);
        let error = policy
            .backward(&[2], ones.view(), ones.view(), d_logits.view_mut())
            .unwrap_err()
            .to_string();
        assert!(error.contains("actions < 2"), "{error}");
    }
}
