//! The fault admin API (`/_admin/calls`, `/_admin/faults`), for any front to merge.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;
use tokio::time::Instant;

use super::config::validate;
use super::{FaultConfig, FaultUpdate, Faults, FaultsError, build_buckets, build_windows};

impl Faults {
    /// Apply an admin update atomically: validated first, nothing changes on error.
    pub fn apply(&self, update: FaultUpdate) -> Result<FaultConfig, FaultsError> {
        let mut config = match update.profile {
            Some(p) => p.config(),
            None => self.config(),
        };
        if let Some(latency) = update.latency {
            config.latency = latency;
        }
        let buckets_changed = update.profile.is_some() || update.buckets.is_some();
        if let Some(buckets) = update.buckets {
            config.buckets = buckets;
        }
        if update.clear_injections {
            config.injections.clear();
        }
        config.injections.extend(update.injections);
        if let Some(provisioning) = update.provisioning {
            config.provisioning = provisioning;
        }
        let windows_changed = update.profile.is_some() || update.windows.is_some();
        if let Some(windows) = update.windows {
            config.windows = windows;
        }
        if let Some(serialize) = update.serialize_mutations {
            config.serialize_mutations = serialize;
        }
        validate(&config)?;
        let mut inner = self.lock();
        if buckets_changed {
            inner.buckets = build_buckets(&config, Instant::now());
        }
        if windows_changed {
            inner.windows = build_windows(&config);
        }
        inner.config = config.clone();
        if let Some(seed) = update.seed {
            inner.rng = StdRng::seed_from_u64(seed);
        }
        Ok(config)
    }
}

#[derive(Debug, Deserialize)]
struct SinceQuery {
    since: Option<u64>,
}

/// `/_admin/calls` (GET `?since=`, DELETE) and `/_admin/faults` (GET, POST [`FaultUpdate`]),
/// for any front to merge into its router.
pub fn admin_router(faults: Faults) -> Router {
    Router::new()
        .route("/_admin/calls", get(get_calls).delete(delete_calls))
        .route("/_admin/faults", get(get_faults).post(post_faults))
        .with_state(faults)
}

async fn get_calls(State(faults): State<Faults>, Query(q): Query<SinceQuery>) -> Response {
    let calls = faults.calls(q.since);
    let next = faults.next_seq();
    Json(serde_json::json!({ "calls": calls, "next_seq": next })).into_response()
}

async fn delete_calls(State(faults): State<Faults>) -> StatusCode {
    faults.clear_calls();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(faults): State<Faults>) -> Json<FaultConfig> {
    Json(faults.config())
}

async fn post_faults(State(faults): State<Faults>, Json(update): Json<FaultUpdate>) -> Response {
    match faults.apply(update) {
        Ok(config) => Json(config).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "code": "InvalidFaults", "message": e.to_string() })),
        )
            .into_response(),
    }
}
