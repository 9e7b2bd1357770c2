//! [`FrameStack`]: the last `k` observations as one.

use super::buffers::{copy_into, kind};
use super::{forward_render, inner_access};
use crate::{
    Action, Bounds, Env, Error, Frame, GridView, Info, Observation, Result, Space, StepOutcome,
};
use ndarray::ArrayD;

/// Stacks the last `k` observations on a new leading axis: a `Box` of
/// shape `S` becomes `[k, ...S]`, oldest first (Gymnasium's
/// `FrameStackObservation`). For MinAtar's `[C, 10, 10]` that is
/// `[k, C, 10, 10]`; a network that wants `[k·C, 10, 10]` reads the same
/// memory with the first two axes merged.
///
/// **Padding.** After a reset every slot holds the reset frame, i.e.
/// Gymnasium's `padding_type="reset"`, which is its default in 1.x (the
/// alternative, `"zero"`, is not offered).
///
/// Works on `Box` and `MultiBinary` spaces of any dtype; a `Discrete`
/// space is refused (wrap it in [`OneHot`](super::OneHot) first).
pub struct FrameStack<E> {
    env: E,
    k: usize,
    space: Space,
    /// The newest frame, as the wrapped env wrote it.
    frame: Observation,
    /// `[k, ...S]`, oldest first.
    stack: Observation,
}

/// Most frames a stack may hold: 64, sixteen times the Nature DQN's 4; the
/// stack and its space grow with it.
pub const MAX_FRAME_STACK: usize = 64;

impl<E: Env> FrameStack<E> {
    /// Wraps `env`, stacking `1 ≤ k ≤` [`MAX_FRAME_STACK`] frames.
    pub fn new(env: E, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::config("frame_stack", "must stack at least 1 frame"));
        }
        if k > MAX_FRAME_STACK {
            return Err(Error::config(
                "frame_stack",
                format!("{k} is more than the most, {MAX_FRAME_STACK}"),
            ));
        }
        let inner = env.observation_space();
        let space = match inner {
            Space::Box {
                low,
                high,
                shape,
                dtype,
            } => {
                let repeat = |b: &Bounds| {
                    if b.0.len() == 1 {
                        b.clone()
                    } else {
                        Bounds(b.0.iter().copied().cycle().take(b.0.len() * k).collect())
                    }
                };
                Space::Box {
                    low: repeat(low),
                    high: repeat(high),
                    shape: stacked_shape(k, shape),
                    dtype: *dtype,
                }
            }
            Space::MultiBinary { n } => Space::MultiBinary {
                n: stacked_shape(k, n),
            },
            Space::Discrete { .. } => {
                return Err(Error::Space(format!(
                    "frame_stack needs a Box or MultiBinary observation space, not {inner}; put one_hot inside it"
                )));
            }
        };
        Ok(FrameStack {
            frame: inner.zeros(),
            stack: space.zeros(),
            env,
            k,
            space,
        })
    }

    /// Shifts the stack by one frame and appends `self.frame`, or with
    /// `fill` writes it into every slot.
    fn push(&mut self, fill: bool) -> Result<()> {
        fn push<T: Copy>(stack: &mut ArrayD<T>, frame: &ArrayD<T>, fill: bool) -> bool {
            let n = frame.len();
            let Some(s) = stack.as_slice_mut() else {
                return false;
            };
            if n == 0 || s.len() % n != 0 {
                return false;
            }
            let newest = s.len() - n;
            match frame.as_slice() {
                Some(f) if fill => s.chunks_exact_mut(n).for_each(|c| c.copy_from_slice(f)),
                Some(f) => {
                    s.copy_within(n.., 0);
                    s[newest..].copy_from_slice(f);
                }
                None => {
                    if !fill {
                        s.copy_within(n.., 0);
                    }
                    let from = if fill { 0 } else { newest };
                    for chunk in s[from..].chunks_exact_mut(n) {
                        chunk
                            .iter_mut()
                            .zip(frame.iter())
                            .for_each(|(d, &v)| *d = v);
                    }
                }
            }
            true
        }
        let fits = match (&mut self.stack, &self.frame) {
            (Observation::U8(s), Observation::U8(f)) => push(s, f, fill),
            (Observation::F32(s), Observation::F32(f)) => push(s, f, fill),
            (Observation::F64(s), Observation::F64(f)) => push(s, f, fill),
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(Error::Space(format!(
                "frame_stack: the wrapped env wrote a {} of shape {:?}, not an element of {}",
                kind(&self.frame),
                shape_of(&self.frame),
                self.env.observation_space()
            )))
        }
    }

    /// The number of frames stacked.
    pub fn k(&self) -> usize {
        self.k
    }
}

fn stacked_shape(k: usize, shape: &[usize]) -> Vec<usize> {
    std::iter::once(k).chain(shape.iter().copied()).collect()
}

fn shape_of(obs: &Observation) -> Vec<usize> {
    match obs {
        Observation::Discrete(_) => vec![],
        Observation::U8(a) => a.shape().to_vec(),
        Observation::F32(a) => a.shape().to_vec(),
        Observation::F64(a) => a.shape().to_vec(),
    }
}

inner_access!(FrameStack);

impl<E: Env> Env for FrameStack<E> {
    fn observation_space(&self) -> &Space {
        &self.space
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        let info = self.env.reset_into(seed, &mut self.frame)?;
        self.push(true)?;
        copy_into(obs, &self.stack);
        Ok(info)
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let out = self.env.step_into(action, &mut self.frame)?;
        self.push(false)?;
        copy_into(obs, &self.stack);
        Ok(out)
    }
    forward_render!();
}
