//! End-to-end: `rl-lab rollout` on the real binary, for every format and
//! every kind of bad input (exit code 2, one line naming the field or value).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn rl_lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn lines(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn jsonl_plays_one_episode_from_a_reset_line() {
    let out = lines(&rl_lab(&["rollout", "--env", "CartPole-v1", "--seed", "7"]));
    assert_eq!(out[0]["t"], 0);
    assert!(out[0]["action"].is_null());
    assert_eq!(out[0]["obs"].as_array().unwrap().len(), 4);
    assert!(out[0].get("reward").is_none());
    let last = out.last().unwrap();
    assert!(last["terminated"].as_bool().unwrap() || last["truncated"].as_bool().unwrap());
    for (i, line) in out.iter().enumerate().skip(1) {
        assert_eq!(line["t"], i as u64);
        assert_eq!(line["reward"], 1.0);
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        for key in ["t", "action", "reward", "terminated", "truncated", "obs"] {
            assert!(keys.contains(&key), "{line}");
        }
    }
    // Same seed, same rollout.
    let again = lines(&rl_lab(&[
        "rollout",
        "--env",
        "CartPole-v1",
        "--seed",
        "7",
        "--policy",
        "random",
    ]));
    assert_eq!(out, again);
}

/// Issue 16's reproduction: Gymnasium's `gymnasium.make("MountainCar-v0")
/// .reset(seed=8)` starts at position `np.float32(-0.5346056)`, bits
/// 0xbf08dbe9, velocity 0; so must we.
#[test]
fn mountain_car_seed_8_starts_where_gymnasium_starts() {
    let out = lines(&rl_lab(&[
        "rollout",
        "--env",
        "MountainCar-v0",
        "--seed",
        "8",
    ]));
    let start = f64::from(f32::from_bits(0xbf08_dbe9));
    assert_eq!(start, -0.5346055626869202);
    assert_eq!(out[0]["obs"], serde_json::json!([start, 0.0]));
}

#[test]
fn steps_with_auto_reset_and_an_actions_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("actions.txt");
    // Always push right: CartPole falls within a few dozen steps.
    std::fs::write(&file, "1\n".repeat(150)).unwrap();
    let out = lines(&rl_lab(&[
        "rollout",
        "--env",
        "CartPole-v0",
        "--seed",
        "1",
        "--actions",
        file.to_str().unwrap(),
        "--steps",
        "120",
    ]));
    let steps: Vec<&Value> = out.iter().filter(|l| !l["action"].is_null()).collect();
    assert_eq!(steps.len(), 120);
    assert!(steps.iter().all(|l| l["action"] == 1));
    let resets = out.iter().filter(|l| l["action"].is_null()).count();
    assert!(resets >= 2, "episodes ended and the env was reset");
    // Each reset line follows a step that ended an episode.
    for pair in out.windows(2) {
        if pair[1]["action"].is_null() {
            assert!(pair[0]["terminated"] == true || pair[0]["truncated"] == true);
            assert_eq!(pair[1]["t"], 0);
        }
    }
    // The file running out ends the rollout.
    std::fs::write(&file, "0\n\n1\n").unwrap();
    let out = lines(&rl_lab(&[
        "rollout",
        "--env",
        "MountainCar-v0",
        "--seed",
        "1",
        "--actions",
        file.to_str().unwrap(),
    ]));
    assert_eq!(out.len(), 3);
    assert_eq!(out[2]["reward"], -1.0);
}

#[test]
fn gif_and_png_frames_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("cartpole.gif");
    let out = rl_lab(&[
        "rollout",
        "--env",
        "CartPole-v1",
        "--seed",
        "2",
        "--steps",
        "10",
        "--format",
        "gif",
        "--out",
        gif.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&gif).unwrap();
    assert_eq!(&bytes[..6], b"GIF89a");
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 600);
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 400);
    // One image descriptor (0x2C after a graphic control block) per frame.
    let frames = bytes.windows(2).filter(|w| w == &[0x00, 0x2C]).count();
    assert!(frames >= 11, "{frames} frames");

    let folder = dir.path().join("frames");
    let out = rl_lab(&[
        "rollout",
        "--env",
        "Acrobot-v1",
        "--seed",
        "2",
        "--steps",
        "4",
        "--format",
        "png",
        "--out",
        folder.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000.png",
            "00001.png",
            "00002.png",
            "00003.png",
            "00004.png"
        ]
    );
    let png = std::fs::read(folder.join("00004.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

fn refused(args: &[&str], mentions: &[&str]) {
    let out = rl_lab(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for m in mentions {
        assert!(stderr.contains(m), "{args:?}: {stderr} lacks {m}");
    }
    assert!(out.stdout.is_empty(), "nothing is played: {args:?}");
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let out_of_range = path("range.txt", "0\n1\n2\n");
    let not_a_number = path("nan.txt", "1\none\n");
    let missing = dir.path().join("none.txt");
    refused(
        &["rollout", "--env", "CartPol-v1", "--seed", "0"],
        &["CartPol-v1", "CartPole-v1"],
    );
    refused(
        &[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--config",
            r#"{"max_step": 3}"#,
        ],
        &["max_step"],
    );
    refused(
        &[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--config",
            r#"{"max_steps": 0}"#,
        ],
        &["max_steps"],
    );
    refused(
        &[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--config",
            "{",
        ],
        &["--config"],
    );
    refused(
        &[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--actions",
            &out_of_range,
        ],
        &["range.txt:3", "action 2", "Discrete(2)"],
    );
    refused(
        &[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--actions",
            &not_a_number,
        ],
        &["nan.txt:2", "'one'"],
    );
    refused(
        &[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--actions",
            missing.to_str().unwrap(),
        ],
        &["none.txt"],
    );
    refused(
        &[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--format",
            "gif",
        ],
        &["--out"],
    );
    // Usage errors are clap's, also exit code 2.
    assert_eq!(
        rl_lab(&["rollout", "--env", "CartPole-v1"]).status.code(),
        Some(2)
    );
    assert_eq!(
        rl_lab(&[
            "rollout",
            "--env",
            "CartPole-v1",
            "--seed",
            "0",
            "--format",
            "bmp"
        ])
        .status
        .code(),
        Some(2)
    );
    assert!(!Path::new("none.txt").exists());
}
