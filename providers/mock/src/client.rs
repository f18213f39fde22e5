//! HTTP plumbing: every request goes through [`ProviderContext::call`] (client-side budget and
//! metrics), has a timeout, and its failure is classified into a [`ProviderError`] here, once.

use std::time::Duration;

use frontdesk_core::provider::{ProviderContext, ProviderError};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::ErrorBody;

/// Budget bucket names, the same as the generic cloud's own throttling buckets.
pub const BUCKET_READ: &str = "read";
pub const BUCKET_MUTATE: &str = "mutate";

#[derive(Clone, Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: reqwest::Url,
    ctx: ProviderContext,
}

/// One request to make: the cloud operation name (for metrics), whether it mutates (which
/// bucket it is charged to), and the HTTP parts.
pub(crate) struct Request<'a, B: Serialize> {
    pub operation: &'static str,
    pub mutating: bool,
    pub method: Method,
    pub path: &'a str,
    pub query: &'a [(&'a str, String)],
    pub body: Option<&'a B>,
}

impl Api {
    pub fn new(
        base: reqwest::Url,
        timeout: Duration,
        ctx: ProviderContext,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self { http, base, ctx })
    }

    /// Send and decode a JSON answer (`None` for an empty 2xx body, e.g. 204).
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        req: Request<'_, B>,
    ) -> Result<Option<T>, ProviderError> {
        let bucket = if req.mutating {
            BUCKET_MUTATE
        } else {
            BUCKET_READ
        };
        let url = self
            .base
            .join(req.path)
            .map_err(|e| ProviderError::Transient {
                message: format!("building the URL for {}", req.path),
                source: Some(Box::new(e)),
            })?;
        let mut builder = self.http.request(req.method, url).query(req.query);
        if let Some(body) = req.body {
            builder = builder.json(body);
        }
        let operation = req.operation;
        self.ctx
            .call(crate::PROVIDER_NAME, operation, &[bucket], async move {
                exchange(builder, operation).await
            })
            .await
    }
}

async fn exchange<T: DeserializeOwned>(
    builder: reqwest::RequestBuilder,
    operation: &str,
) -> Result<Option<T>, ProviderError> {
    let resp = builder.send().await.map_err(|e| transport(operation, e))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.bytes().await.map_err(|e| transport(operation, e))?;
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(None);
        }
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ProviderError::Transient {
                message: format!("{operation}: undecodable answer"),
                source: Some(Box::new(e)),
            });
    }
    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
    Err(classify(operation, status, retry_after.as_deref(), &body))
}

fn transport(operation: &str, e: reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    ProviderError::Transient {
        message: format!("{operation} {what}"),
        source: Some(Box::new(e)),
    }
}

/// `Retry-After` as delta-seconds. (The HTTP-date form is not used by the generic cloud; it
/// yields `None` and the controller's own backoff applies.)
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Map an error answer to the contract's classes, by status and machine-readable code only.
pub(crate) fn classify(
    operation: &str,
    status: StatusCode,
    retry_after: Option<&str>,
    body: &ErrorBody,
) -> ProviderError {
    let message = if body.message.is_empty() {
        format!("{operation}: HTTP {status}")
    } else {
        format!("{operation}: {}", body.message)
    };
    match status.as_u16() {
        404 => ProviderError::NotFound(message),
        429 => ProviderError::Throttled {
            message,
            retry_after: parse_retry_after(retry_after),
        },
        409 => ProviderError::Conflict(message),
        403 if body.code == "QuotaExceeded" => ProviderError::QuotaExceeded(message),
        // An instance that vanished between listing nodes and registering them: the next
        // node sync fixes it, so retry rather than blame the user.
        400 if body.code == "InvalidTarget" => ProviderError::transient(message),
        400 | 422 if body.code != "InvalidRequest" => {
            let field = body
                .field
                .as_deref()
                .map_or_else(|| "spec".to_string(), crate::desired::service_field);
            ProviderError::invalid(field, message)
        }
        // A body we built that the cloud cannot parse is our bug, not the user's; timeouts and
        // server errors are retried.
        _ => ProviderError::transient(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let body = |code: &str, field: Option<&str>| ErrorBody {
            code: code.to_string(),
            message: "m".to_string(),
            field: field.map(str::to_string),
        };
        let table = [
            (404, None, body("NotFound", None), "NotFound"),
            (429, Some("3"), body("Throttled", None), "Throttled"),
            (409, None, body("AlreadyExists", None), "Conflict"),
            (403, None, body("QuotaExceeded", None), "QuotaExceeded"),
            (403, None, body("Forbidden", None), "Transient"),
            (400, None, body("InvalidTarget", Some("add")), "Transient"),
            (
                400,
                None,
                body("InvalidParameter", Some("address")),
                "InvalidSpec",
            ),
            (400, None, body("InvalidRequest", None), "Transient"),
            (500, None, body("InternalError", None), "Transient"),
            (503, Some("1"), ErrorBody::default(), "Transient"),
        ];
        for (status, ra, body, want) in table {
            let got = classify("Op", StatusCode::from_u16(status).unwrap(), ra, &body);
            assert_eq!(got.class(), want, "{status} {}", body.code);
        }
        match classify(
            "Op",
            StatusCode::TOO_MANY_REQUESTS,
            Some("3"),
            &ErrorBody::default(),
        ) {
            ProviderError::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
        match classify(
            "Op",
            StatusCode::BAD_REQUEST,
            None,
            &body("InvalidParameter", Some("address")),
        ) {
            ProviderError::InvalidSpec { field, .. } => assert_eq!(field, "spec.loadBalancerIP"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        let table = [
            (Some("2"), Some(2)),
            (Some(" 10 "), Some(10)),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            (None, None),
        ];
        for (value, want) in table {
            assert_eq!(
                parse_retry_after(value),
                want.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }
}
