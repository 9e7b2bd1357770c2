//! The gridworld: map parsing, the exact model, and stepping by sampling it.
//!
//! The model is computed once, when the config is built. `step` then draws
//! one outcome from `P[s][a]` with a single uniform number, so what the
//! agent experiences is, by construction, the distribution that
//! dynamic-programming agents plan with.
//!
//! **Draws are Gymnasium's.** Every gridworld draws as Gymnasium's toy-text
//! envs do (`categorical_sample`): the generator is numpy's
//! ([`rl_env::numpy_random`]), reseeded by `reset(Some(seed))` as
//! `reset(seed=…)` reseeds Gymnasium's; `reset` takes one `random()` to
//! pick the start, and every `step` takes one to pick among the outcomes
//! of `(s, a)`, listed unmerged in Gymnasium's order (for a slippery move:
//! the previous action's direction, the intended one, the next action's),
//! even when there is a single outcome. The pick is the first outcome whose
//! running sum of probabilities exceeds the draw. Under Gymnasium's ids
//! (`FrozenLake-v1`, `FrozenLake8x8-v1`, `CliffWalking-v1`) the outcome
//! lists and their probabilities are Gymnasium's to the bit, so a seed
//! gives Gymnasium's episode.

use crate::config::{CellSpec, GridConfig, Moves, ObservationKind};
use ndarray::ArrayD;
use rl_env::numpy_random::Generator;
use rl_env::{
    Action, DType, Env, Error, Frame, GridView, Info, Model, Observation, Outcome, Result, Space,
    StepOutcome,
};

/// `(row, col)` steps of the nine actions in rl-lab's numbering:
/// up, right, down, left, up-right, down-right, down-left, up-left, stay.
const DIRECTIONS: [(i32, i32); 9] = [
    (-1, 0),
    (0, 1),
    (1, 0),
    (0, -1),
    (-1, 1),
    (1, 1),
    (1, -1),
    (-1, -1),
    (0, 0),
];
const ARROWS: [char; 9] = ['↑', '→', '↓', '←', '↗', '↘', '↙', '↖', '○'];

#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Wall,
    Floor,
    Start,
    Goal,
    Hole,
    Custom(char, CellSpec),
}

impl Cell {
    fn terminal(&self) -> bool {
        match self {
            Cell::Goal | Cell::Hole => true,
            Cell::Custom(_, spec) => spec.terminal,
            _ => false,
        }
    }

    fn letter(&self) -> char {
        match self {
            Cell::Wall => '#',
            Cell::Floor => '.',
            Cell::Start => 'S',
            Cell::Goal => 'G',
            Cell::Hole => 'H',
            Cell::Custom(c, _) => *c,
        }
    }
}

/// A built gridworld: validated map, exact model, and the episode state.
pub struct Gridworld {
    rows: usize,
    cols: usize,
    cells: Vec<Cell>,
    starts: Vec<usize>,
    /// Action index (as the agent numbers it) → index into `DIRECTIONS`.
    action_directions: Vec<usize>,
    /// `P[s][a]`, flattened: outcomes of `(s, a)` are `outcomes[span[s * n_actions + a]]`.
    outcomes: Vec<Outcome>,
    spans: Vec<(u32, u32)>,
    /// What `step` draws from: the outcomes of each `(s, a)` unmerged, in
    /// Gymnasium's order, with the running sum of their probabilities;
    /// indexed by `draw_spans` as `outcomes` by `spans`.
    draws: Vec<(f64, Outcome)>,
    draw_spans: Vec<(u32, u32)>,
    /// Running sums of the start distribution (uniform over the `S` cells,
    /// in state order), what `reset` draws from.
    start_cumulative: Vec<f64>,
    /// Probabilities of a slippery move's three branches: the previous
    /// action's direction, the intended one, the next action's.
    slip_weights: [f64; 3],
    observation: ObservationKind,
    observation_space: Space,
    action_space: Space,
    rng: Generator,
    position: Option<usize>,
    /// Where the last episode ended, so it can still be drawn.
    last_terminal: Option<usize>,
}

impl Gridworld {
    /// Validates `config` and computes the model. Errors name the field.
    pub fn new(config: &GridConfig) -> Result<Self> {
        let n_actions = match config.moves {
            Moves::Four => 4,
            Moves::King => 8,
            Moves::KingStay => 9,
        };
        let slip = config.slip;
        Self::with_dynamics(
            config,
            (0..n_actions).collect(),
            [slip / 2.0, 1.0 - slip, slip / 2.0],
        )
    }

    /// As [`Gridworld::new`], with the agent's action `i` meaning rl-lab's
    /// direction `action_directions[i]`, and a slippery move's branches
    /// weighted `slip_weights` (used when `config.slip > 0`): how
    /// Gymnasium's numbering and its exact probabilities (`1/3` is not
    /// `1 − 2/3` in floating point) are kept under its ids.
    pub(crate) fn with_dynamics(
        config: &GridConfig,
        action_directions: Vec<usize>,
        slip_weights: [f64; 3],
    ) -> Result<Self> {
        let (rows, cols, cells) = parse_map(config)?;
        validate(config, cols)?;
        let starts: Vec<usize> = (0..cells.len())
            .filter(|&i| cells[i] == Cell::Start)
            .collect();
        if starts.is_empty() {
            return Err(Error::config("map", "no start cell 'S'"));
        }
        let n_states = rows * cols;
        // Gymnasium's `isd /= isd.sum()`, then `cumsum`.
        let start_share = 1.0 / starts.len() as f64;
        let start_cumulative = (1..=starts.len())
            .scan(0.0, |sum, _| {
                *sum += start_share;
                Some(*sum)
            })
            .collect();
        let mut world = Gridworld {
            rows,
            cols,
            cells,
            starts,
            action_directions,
            outcomes: Vec::new(),
            spans: Vec::new(),
            draws: Vec::new(),
            draw_spans: Vec::new(),
            start_cumulative,
            slip_weights,
            observation: config.observation,
            observation_space: match config.observation {
                ObservationKind::Index => Space::discrete(n_states as u64),
                ObservationKind::OneHot => Space::uniform_box(0.0, 1.0, &[n_states], DType::F32),
                ObservationKind::Coordinates => Space::bounded_box(
                    vec![0.0, 0.0],
                    vec![(rows - 1) as f64, (cols - 1) as f64],
                    &[2],
                    DType::F32,
                ),
            },
            action_space: Space::Discrete { n: 0, start: 0 },
            rng: Generator::from_seed(0),
            position: None,
            last_terminal: None,
        };
        world.action_space = Space::discrete(world.action_directions.len() as u64);
        world.build_model(config)?;
        Ok(world)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The agent's state index, if an episode is running.
    pub fn position(&self) -> Option<usize> {
        self.position
    }

    /// Puts the agent in `state` mid-episode, as exploring starts do (and
    /// tests that check a single transition). Walls and terminal cells are refused.
    pub fn place(&mut self, state: usize) -> Result<()> {
        match self.cells.get(state) {
            Some(cell) if *cell != Cell::Wall && !cell.terminal() => {
                self.position = Some(state);
                Ok(())
            }
            _ => Err(Error::config(
                "state",
                format!("{state} is not a non-terminal, non-wall cell"),
            )),
        }
    }

    /// The map as text, one string per row (what the config's `map` would be).
    pub fn map_rows(&self) -> Vec<String> {
        (0..self.rows)
            .map(|r| {
                (0..self.cols)
                    .map(|c| self.cells[r * self.cols + c].letter())
                    .collect()
            })
            .collect()
    }

    fn build_model(&mut self, config: &GridConfig) -> Result<()> {
        let n_actions = self.action_directions.len();
        let mut list = Vec::new();
        for s in 0..self.cells.len() {
            for a in 0..n_actions {
                list.clear();
                if self.cells[s] == Cell::Wall || self.cells[s].terminal() {
                    // Absorbing, as Gymnasium's P: back to itself, nothing gained.
                    list.push(Outcome {
                        probability: 1.0,
                        next_state: s,
                        reward: 0.0,
                        terminated: self.cells[s].terminal(),
                    });
                } else {
                    for (p, d) in self.slip_branches(a, config.slip) {
                        self.outcomes_of_move(config, s, d, p, &mut list)?;
                    }
                }
                let first_draw = self.draws.len();
                let mut running_sum = 0.0;
                for o in &list {
                    running_sum += o.probability;
                    self.draws.push((running_sum, *o));
                }
                self.draw_spans
                    .push((first_draw as u32, (self.draws.len() - first_draw) as u32));
                let start = self.outcomes.len();
                // Merge identical results so P lists each outcome once.
                for o in list.iter().filter(|o| o.probability > 0.0) {
                    match self.outcomes[start..].iter_mut().find(|m| {
                        m.next_state == o.next_state
                            && m.reward == o.reward
                            && m.terminated == o.terminated
                    }) {
                        Some(m) => m.probability += o.probability,
                        None => self.outcomes.push(*o),
                    }
                }
                let len = self.outcomes.len() - start;
                self.spans.push((start as u32, len as u32));
            }
        }
        Ok(())
    }

    /// The outcomes of moving in `DIRECTIONS[d]` from `s`, each weighted by `weight`.
    fn outcomes_of_move(
        &self,
        config: &GridConfig,
        s: usize,
        d: usize,
        weight: f64,
        out: &mut Vec<Outcome>,
    ) -> Result<()> {
        let (row, col) = ((s / self.cols) as i32, (s % self.cols) as i32);
        if let Cell::Custom(
            _,
            CellSpec {
                jump: Some(jump), ..
            },
        ) = &self.cells[s]
        {
            let targets = self.cells_marked(jump.to);
            for &t in &targets {
                out.push(Outcome {
                    probability: weight / targets.len() as f64,
                    next_state: t,
                    reward: jump.reward,
                    terminated: self.cells[t].terminal(),
                });
            }
            return Ok(());
        }
        let (dr, dc) = DIRECTIONS[d];
        let (mut r, mut c) = (row + dr, col + dc);
        let bumped = !self.open(r, c);
        if bumped {
            (r, c) = (row, col);
        }
        if let Some(wind) = &config.wind {
            let strength = wind[col as usize];
            for _ in 0..strength.unsigned_abs() {
                let next = r - strength.signum();
                if !self.open(next, c) {
                    break;
                }
                r = next;
            }
        }
        let t = r as usize * self.cols + c as usize;
        let base = if bumped {
            config.bump_reward.unwrap_or(config.step_reward)
        } else {
            config.step_reward
        };
        let mut land = |next_state, reward, terminated| {
            out.push(Outcome {
                probability: weight,
                next_state,
                reward,
                terminated,
            })
        };
        if t == s {
            land(t, base, false);
            return Ok(());
        }
        match &self.cells[t] {
            Cell::Goal => land(t, config.goal_reward, true),
            Cell::Hole => land(t, config.hole_reward, true),
            Cell::Custom(_, spec) if spec.reset_to_start => {
                let reward = spec.reward.unwrap_or(base);
                for &start in &self.starts {
                    out.push(Outcome {
                        probability: weight / self.starts.len() as f64,
                        next_state: start,
                        reward,
                        terminated: false,
                    });
                }
            }
            Cell::Custom(_, spec) => land(t, spec.reward.unwrap_or(base), spec.terminal),
            _ => land(t, base, false),
        }
        Ok(())
    }

    fn cells_marked(&self, letter: char) -> Vec<usize> {
        (0..self.cells.len())
            .filter(|&i| self.cells[i].letter() == letter)
            .collect()
    }

    fn open(&self, r: i32, c: i32) -> bool {
        r >= 0
            && c >= 0
            && (r as usize) < self.rows
            && (c as usize) < self.cols
            && self.cells[r as usize * self.cols + c as usize] != Cell::Wall
    }

    fn write_observation(&self, obs: &mut Observation) {
        let s = self.position.expect("an episode is running");
        match self.observation {
            ObservationKind::Index => *obs = Observation::Discrete(s as i64),
            ObservationKind::OneHot => {
                let n = self.cells.len();
                if !matches!(obs, Observation::F32(a) if a.len() == n) {
                    *obs = Observation::F32(ArrayD::zeros(vec![n]));
                }
                if let Observation::F32(a) = obs {
                    a.fill(0.0);
                    a[[s]] = 1.0;
                }
            }
            ObservationKind::Coordinates => {
                if !matches!(obs, Observation::F32(a) if a.len() == 2) {
                    *obs = Observation::F32(ArrayD::zeros(vec![2]));
                }
                if let Observation::F32(a) = obs {
                    a[[0]] = (s / self.cols) as f32;
                    a[[1]] = (s % self.cols) as f32;
                }
            }
        }
    }
}

impl Gridworld {
    /// The directions action `action` may actually take, with their
    /// probabilities, in Gymnasium's order: `(a − 1) mod 4`, `a`,
    /// `(a + 1) mod 4` in the agent's numbering for four-move worlds (so
    /// the quarter turn anticlockwise first in rl-lab's and CliffWalking's
    /// numbering, clockwise first in FrozenLake's); for king moves, the
    /// anticlockwise quarter turn first.
    fn slip_branches(&self, action: usize, slip: f64) -> Vec<(f64, usize)> {
        let direction = self.action_directions[action];
        if slip == 0.0 || direction == 8 {
            return vec![(1.0, direction)];
        }
        let (before, after) = if self.action_directions.len() == 4 {
            (
                self.action_directions[(action + 3) % 4],
                self.action_directions[(action + 1) % 4],
            )
        } else {
            let (dr, dc) = DIRECTIONS[direction];
            let find = |v: (i32, i32)| {
                DIRECTIONS
                    .iter()
                    .position(|&d| d == v)
                    .expect("a quarter turn of a move is a move")
            };
            (find((-dc, dr)), find((dc, -dr)))
        };
        let [w_before, w_intended, w_after] = self.slip_weights;
        vec![
            (w_before, before),
            (w_intended, direction),
            (w_after, after),
        ]
    }
}

fn parse_map(config: &GridConfig) -> Result<(usize, usize, Vec<Cell>)> {
    crate::config::check_map_size("map", &config.map)?;
    let rows = config.map.len();
    if rows == 0 {
        return Err(Error::config("map", "needs at least one row"));
    }
    let cols = config.map[0].chars().count();
    if cols == 0 {
        return Err(Error::config("map[0]", "is empty"));
    }
    let mut cells = Vec::with_capacity(rows * cols);
    for (r, line) in config.map.iter().enumerate() {
        let len = line.chars().count();
        if len != cols {
            return Err(Error::config(
                format!("map[{r}]"),
                format!(
                    "row \"{line}\" has {len} cells but row 0 has {cols}: rows must have equal length"
                ),
            ));
        }
        for (c, ch) in line.chars().enumerate() {
            cells.push(match ch {
                '#' => Cell::Wall,
                '.' => Cell::Floor,
                'S' => Cell::Start,
                'G' => Cell::Goal,
                'H' => Cell::Hole,
                other => match config.cells.get(&other) {
                    Some(spec) => Cell::Custom(other, spec.clone()),
                    None => {
                        return Err(Error::config(
                            format!("map[{r}]"),
                            format!("unknown cell '{other}' at column {c}: define it in `cells`"),
                        ));
                    }
                },
            });
        }
    }
    Ok((rows, cols, cells))
}

fn validate(config: &GridConfig, cols: usize) -> Result<()> {
    if !(0.0..=1.0).contains(&config.slip) {
        return Err(Error::config(
            "slip",
            format!("{} is not a probability in [0, 1]", config.slip),
        ));
    }
    if let Some(wind) = &config.wind
        && wind.len() != cols
    {
        return Err(Error::config(
            "wind",
            format!("has {} values but the map has {cols} columns", wind.len()),
        ));
    }
    if config.max_steps == Some(0) {
        return Err(Error::config("max_steps", "must be at least 1"));
    }
    for (letter, spec) in &config.cells {
        let field = |f: &str| format!("cells.{letter}{f}");
        if "#.SGH".contains(*letter) {
            return Err(Error::config(
                field(""),
                format!("'{letter}' is built in and cannot be redefined"),
            ));
        }
        if spec.terminal && (spec.reset_to_start || spec.jump.is_some()) {
            return Err(Error::config(
                field(""),
                "a terminal cell cannot also jump or reset to start",
            ));
        }
        if let Some(jump) = &spec.jump
            && !config.map.iter().any(|row| row.contains(jump.to))
        {
            return Err(Error::config(
                field(".jump.to"),
                format!("no cell '{}' in the map", jump.to),
            ));
        }
        for (name, value) in [
            ("reward", spec.reward),
            ("jump.reward", spec.jump.as_ref().map(|j| j.reward)),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(Error::config(field(&format!(".{name}")), "must be finite"));
            }
        }
    }
    for (name, value) in [
        ("step_reward", config.step_reward),
        ("goal_reward", config.goal_reward),
        ("hole_reward", config.hole_reward),
        ("bump_reward", config.bump_reward.unwrap_or(0.0)),
    ] {
        if !value.is_finite() {
            return Err(Error::config(name, "must be finite"));
        }
    }
    Ok(())
}

impl Model for Gridworld {
    fn n_states(&self) -> usize {
        self.cells.len()
    }
    fn n_actions(&self) -> usize {
        self.action_directions.len()
    }
    fn transitions(&self, state: usize, action: usize) -> &[Outcome] {
        let (start, len) = self.spans[state * self.action_directions.len() + action];
        &self.outcomes[start as usize..(start + len) as usize]
    }
    fn is_absorbing(&self, state: usize) -> bool {
        self.cells[state] == Cell::Wall || self.cells[state].terminal()
    }
}

impl Env for Gridworld {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        if let Some(seed) = seed {
            self.rng = Generator::from_seed(seed);
        }
        // One draw even with a single start, as Gymnasium's reset.
        let start = self.starts[self.rng.categorical(self.start_cumulative.iter().copied())];
        self.position = Some(start);
        self.last_terminal = None;
        self.write_observation(obs);
        Ok(Info {
            prob: Some(1.0),
            ..Info::default()
        })
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let s = self.position.ok_or(Error::ResetNeeded)?;
        let a = rl_env::discrete_action(&self.action_space, action)?;
        let (start, len) = self.draw_spans[s * self.action_directions.len() + a];
        let branches = &self.draws[start as usize..(start + len) as usize];
        // Gymnasium's categorical_sample: one draw even for a certain move.
        let chosen = branches[self.rng.categorical(branches.iter().map(|b| b.0))].1;
        self.position = Some(chosen.next_state);
        self.write_observation(obs);
        if chosen.terminated {
            // Gymnasium leaves stepping past the end undefined; we refuse it.
            self.position = None;
            self.last_terminal = Some(chosen.next_state);
        }
        Ok(StepOutcome {
            reward: chosen.reward,
            terminated: chosen.terminated,
            truncated: false,
            info: Info {
                prob: Some(chosen.probability),
                ..Info::default()
            },
        })
    }

    fn render_text(&self) -> String {
        let agent = self.position.or(self.last_terminal);
        let mut text = String::new();
        for r in 0..self.rows {
            for c in 0..self.cols {
                let i = r * self.cols + c;
                text.push(if agent == Some(i) {
                    '@'
                } else {
                    self.cells[i].letter()
                });
            }
            text.push('\n');
        }
        text
    }

    fn render_rgb(&self) -> Frame {
        const CELL: usize = 24;
        let agent = self.position.or(self.last_terminal);
        Frame::from_shape_fn((self.rows * CELL, self.cols * CELL, 3), |(y, x, ch)| {
            let i = (y / CELL) * self.cols + x / CELL;
            let (cy, cx) = (y % CELL, x % CELL);
            let border = cy == 0 || cx == 0;
            let inner = (6..CELL - 6).contains(&cy) && (6..CELL - 6).contains(&cx);
            let colour: [u8; 3] = if agent == Some(i) && inner {
                [220, 40, 40]
            } else if border {
                [90, 90, 90]
            } else {
                match &self.cells[i] {
                    Cell::Wall => [40, 40, 40],
                    Cell::Floor => [235, 235, 235],
                    Cell::Start => [170, 200, 255],
                    Cell::Goal => [60, 180, 75],
                    Cell::Hole => [20, 40, 110],
                    Cell::Custom(_, spec) if spec.terminal => [150, 80, 180],
                    Cell::Custom(_, spec) if spec.reset_to_start => [120, 60, 30],
                    Cell::Custom(_, spec) if spec.jump.is_some() => [240, 200, 40],
                    Cell::Custom(_, _) => [200, 200, 170],
                }
            };
            colour[ch]
        })
    }

    fn model(&self) -> Option<&dyn Model> {
        (self.observation == ObservationKind::Index).then_some(self as &dyn Model)
    }

    fn grid(&self) -> Option<GridView> {
        Some(GridView {
            rows: self.rows,
            cols: self.cols,
            cells: (0..self.cells.len())
                .map(|i| (self.cells[i] != Cell::Wall).then_some(i))
                .collect(),
            terminal: self.cells.iter().map(Cell::terminal).collect(),
            action_arrows: self.action_directions.iter().map(|&d| ARROWS[d]).collect(),
        })
    }
}
