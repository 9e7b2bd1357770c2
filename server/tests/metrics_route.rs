//! `GET /v1/runs/{id}/metrics` through the whole app (`rl_server::app`, no
//! socket): downsampled with `max_points`, whole without it, its bad
//! parameters refused naming them, and the parameter as `/openapi.json`
//! documents it.

use axum::body::Body;
use axum::http::Request;
use rl_server::{AppState, ServeConfig, Shared};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A server whose run has `rollout/episode_return` at `rows` steps 37
/// apart (two spikes among them when there are enough, one inside a window
/// row) and 20 evaluations.
fn server_with_a_run(rows: u64) -> (tempfile::TempDir, Shared, String) {
    let data = tempfile::tempdir().unwrap();
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    let state = AppState::open(config).unwrap();
    let id = state
        .store
        .insert_run(json!({"env": {"id": "CartPole-v1"}, "agent": {"id": "q_learning"}}))
        .unwrap();
    // The rows as the writer stores them (migration 2's columns).
    let mut conn = rusqlite::Connection::open(data.path().join("rl-lab.db")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO metrics (run_id, name, step, value, wall_seconds, event_id, count,
                 min, max, last) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?4)",
            )
            .unwrap();
        for i in 0..rows {
            let value = match i {
                17_777 => 5_000.0,
                _ => (i % 200) as f64,
            };
            // One window row, whose own minimum is the low spike.
            let window = (i == 2_222).then_some((10i64, -5_000.0, 300.0));
            insert
                .execute(rusqlite::params![
                    id,
                    "rollout/episode_return",
                    (i * 37) as i64,
                    value,
                    i as f64 * 1e-3,
                    window.map(|w| w.0),
                    window.map(|w| w.1),
                    window.map(|w| w.2),
                ])
                .unwrap();
        }
        for i in 0..20u64 {
            insert
                .execute(rusqlite::params![
                    id,
                    "eval/mean_return",
                    (i * 10_000) as i64,
                    i as f64,
                    i as f64,
                    None::<i64>,
                    None::<f64>,
                    None::<f64>,
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    (data, state, id)
}

async fn get(state: &Shared, uri: &str) -> (u16, Value) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = rl_server::app(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn column(series: &Value, name: &str) -> Vec<f64> {
    series[name]
        .as_array()
        .unwrap_or_else(|| panic!("no column {name}: {series}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn max_points_downsamples_each_series_keeping_spikes_and_ends() {
    let (_data, state, id) = server_with_a_run(30_000);
    let names = "rollout/episode_return,eval/mean_return";
    let (status, reply) = get(
        &state,
        &format!("/v1/runs/{id}/metrics?name={names}&max_points=1500"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let returns = &reply["metrics"]["rollout/episode_return"];
    let step = column(returns, "step");
    let (value, min, max, count) = (
        column(returns, "value"),
        column(returns, "min"),
        column(returns, "max"),
        column(returns, "count"),
    );
    assert!(step.len() <= 1500 && step.len() >= 750, "{}", step.len());
    for other in [&value, &min, &max, &count, &column(returns, "wall_seconds")] {
        assert_eq!(other.len(), step.len());
    }
    // The first and last rows as stored.
    assert_eq!((step[0], value[0], count[0]), (0.0, 0.0, 1.0));
    let end = step.len() - 1;
    assert_eq!((step[end], value[end]), (29_999.0 * 37.0, 199.0));
    // Both spikes, though each shares its bucket with many points.
    let top = max.iter().copied().fold(f64::MIN, f64::max);
    let bottom = min.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!((top, bottom), (5_000.0, -5_000.0));
    let spiked = max.iter().position(|&m| m == 5_000.0).unwrap();
    assert!(count[spiked] > 1.0 && value[spiked] < 5_000.0);
    // Every recorded point is in one bucket (the window row is ten).
    assert_eq!(count.iter().sum::<f64>(), 30_009.0);
    assert!(step.windows(2).all(|w| w[0] < w[1]));
    // A short series comes whole, one value a point.
    let evals = &reply["metrics"]["eval/mean_return"];
    assert_eq!(
        column(evals, "value"),
        (0..20).map(f64::from).collect::<Vec<_>>()
    );
    assert_eq!(column(evals, "count"), vec![1.0; 20]);
    assert_eq!(column(evals, "min"), column(evals, "max"));

    // After a step: only what follows it, still from its first row.
    let (status, reply) = get(
        &state,
        &format!(
            "/v1/runs/{id}/metrics?name=rollout/episode_return&max_points=100&after_step=300000"
        ),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let after = &reply["metrics"]["rollout/episode_return"];
    let step = column(after, "step");
    assert!(step.len() <= 100);
    assert_eq!(step[0], 8_109.0 * 37.0);
    assert_eq!(
        column(after, "count").iter().sum::<f64>(),
        (30_000 - 8_109) as f64
    );
}

#[tokio::test]
async fn without_max_points_every_row_up_to_the_limit() {
    let (_data, state, id) = server_with_a_run(30_000);
    let (status, reply) = get(
        &state,
        &format!("/v1/runs/{id}/metrics?name=rollout/episode_return&limit=20000"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let returns = &reply["metrics"]["rollout/episode_return"];
    let step = column(returns, "step");
    assert_eq!(step.len(), 20_000);
    assert_eq!(step[19_999], 19_999.0 * 37.0);
    // The window row says what it stands for; the others are single values.
    let count = column(returns, "count");
    assert_eq!(count[2_222], 10.0);
    assert_eq!(column(returns, "min")[2_222], -5_000.0);
    assert_eq!(count.iter().sum::<f64>(), 20_009.0);
    assert_eq!(column(returns, "min")[1], column(returns, "value")[1]);
}

#[tokio::test]
async fn bad_max_points_are_refused_naming_the_parameter() {
    let (_data, state, id) = server_with_a_run(0);
    for (query, field) in [
        ("max_points=2", Some("max_points")),
        ("max_points=0", Some("max_points")),
        ("max_points=100001", Some("max_points")),
        ("max_points=1500&limit=10", Some("limit")),
        // Not a number: axum's message names it, as for every parameter.
        ("max_points=many", None),
        ("max_points=-3", None),
    ] {
        let (status, reply) = get(&state, &format!("/v1/runs/{id}/metrics?{query}")).await;
        assert_eq!(status, 400, "{query}: {reply}");
        assert_eq!(reply["error"]["code"], "bad_query", "{query}: {reply}");
        assert_eq!(reply["error"]["field"].as_str(), field, "{query}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field.unwrap_or("max_points")),
            "{query}: {reply}"
        );
    }
    let (status, _) = get(&state, "/v1/runs/run-999/metrics?max_points=10").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_openapi_document_describes_max_points_and_the_new_columns() {
    let (_data, state, _id) = server_with_a_run(0);
    let (_, doc) = get(&state, "/openapi.json").await;
    let parameters = doc["paths"]["/v1/runs/{id}/metrics"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let max_points = parameters
        .iter()
        .find(|p| p["name"] == "max_points")
        .expect("max_points is documented");
    assert_eq!(max_points["in"], "query");
    assert_eq!(max_points["schema"]["minimum"], 3);
    assert_eq!(max_points["schema"]["maximum"], 100_000);
    let description = max_points["description"].as_str().unwrap();
    assert!(description.contains("first and last"), "{description}");
    let series = &doc["components"]["schemas"]["MetricSeries"];
    for column in ["step", "value", "wall_seconds", "min", "max", "count"] {
        assert!(
            series["properties"][column].is_object(),
            "{column}: {series}"
        );
        assert!(
            series["required"]
                .as_array()
                .unwrap()
                .contains(&json!(column))
        );
    }
}
