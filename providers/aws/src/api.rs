//! SDK plumbing: client construction, the per-action throttling buckets, and one wrapper every
//! request goes through (client-side budget + metrics via `ProviderContext::call`, a timeout,
//! and error classification into `ProviderError`, done once here).

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ec2 as ec2;
use aws_sdk_elasticloadbalancingv2 as elb;
use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use frontdesk_core::provider::{ProviderContext, ProviderError};
use frontdesk_core::ratelimit::BucketConfig;

use crate::PROVIDER_NAME;

/// ELBv2 buckets (cloud-api-limits §2.1): every action draws from its category and the account.
pub const ELB_RESOURCE: &str = "aws-elb-resource-intensive";
pub const ELB_REGISTRATION: &str = "aws-elb-registration";
pub const ELB_DESCRIBE: &str = "aws-elb-non-mutating";
pub const ELB_MUTATE: &str = "aws-elb-mutating";
pub const ELB_ACCOUNT: &str = "aws-elb-account";
/// EC2 buckets (§2.2). Our Describe calls are always filtered, so they use the 100/20 bucket.
pub const EC2_DESCRIBE: &str = "aws-ec2-non-mutating";
pub const EC2_MUTATE: &str = "aws-ec2-mutating";
pub const EC2_SG_RULES: &str = "aws-ec2-resource-intensive";

/// AWS's published per-account, per-region numbers: (bucket, capacity, refill per second).
pub fn budget_buckets() -> [(&'static str, BucketConfig); 8] {
    [
        (ELB_RESOURCE, BucketConfig::new(10.0, 0.2)),
        (ELB_REGISTRATION, BucketConfig::new(20.0, 4.0)),
        (ELB_DESCRIBE, BucketConfig::new(40.0, 10.0)),
        (ELB_MUTATE, BucketConfig::new(20.0, 3.0)),
        (ELB_ACCOUNT, BucketConfig::new(40.0, 10.0)),
        (EC2_DESCRIBE, BucketConfig::new(100.0, 20.0)),
        (EC2_MUTATE, BucketConfig::new(50.0, 5.0)),
        (EC2_SG_RULES, BucketConfig::new(50.0, 5.0)),
    ]
}

/// The buckets the server charges `operation` to.
pub fn buckets_for(operation: &str) -> &'static [&'static str] {
    match operation {
        "CreateLoadBalancer" | "SetSubnets" => &[ELB_RESOURCE, ELB_ACCOUNT],
        "RegisterTargets" | "DeregisterTargets" => &[ELB_REGISTRATION, ELB_ACCOUNT],
        "AuthorizeSecurityGroupIngress" | "RevokeSecurityGroupIngress" => &[EC2_SG_RULES],
        "CreateSecurityGroup" | "DeleteSecurityGroup" | "CreateTags" => &[EC2_MUTATE],
        "DescribeSubnets" | "DescribeSecurityGroups" | "DescribeInstances" => &[EC2_DESCRIBE],
        op if op.starts_with("Describe") => &[ELB_DESCRIBE, ELB_ACCOUNT],
        _ => &[ELB_MUTATE, ELB_ACCOUNT],
    }
}

/// How long a throttled caller should wait: one token of the call's category bucket.
fn refill_time(operation: &str) -> Duration {
    let bucket = buckets_for(operation)[0];
    let rate = budget_buckets()
        .iter()
        .find(|(b, _)| *b == bucket)
        .map(|(_, c)| c.refill_per_sec)
        .unwrap_or(1.0);
    Duration::from_secs_f64(1.0 / rate.max(0.01))
}

/// Test and production overrides; `Default` = the standard AWS chain in `us-east-1`.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// `None` = the chain's region (env `AWS_REGION`, profile, IMDS), else `us-east-1`.
    pub region: Option<String>,
    /// Both ELBv2 and EC2 go to this URL (mock cloud, moto); `None` = the real AWS endpoints.
    pub endpoint_url: Option<String>,
    /// `(access key id, secret)`; `None` = the standard chain (env, web identity/IRSA, IMDS).
    pub static_credentials: Option<(String, String)>,
    /// Per-call timeout (connect + whole operation).
    pub call_timeout: Duration,
    /// Restrict subnet discovery to this VPC; `None` = the VPC of the discovered subnets.
    pub vpc_id: Option<String>,
    /// How soon to ensure again while an NLB is `provisioning`.
    pub provisioning_poll: Duration,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            static_credentials: None,
            call_timeout: Duration::from_secs(20),
            vpc_id: None,
            provisioning_poll: Duration::from_secs(15),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Api {
    pub elb: elb::Client,
    pub ec2: ec2::Client,
    ctx: ProviderContext,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AwsProviderError {
    #[error("no AWS region: pass --aws-region or set AWS_REGION / AWS_DEFAULT_REGION")]
    NoRegion,
}

/// The standard credential chain, built without awaiting: environment, shared profile files,
/// web identity (IRSA), ECS container credentials, then IMDS (EC2 instance role).
fn standard_chain() -> aws_config::meta::credentials::CredentialsProviderChain {
    use aws_config::meta::credentials::CredentialsProviderChain;
    CredentialsProviderChain::first_try(
        "Environment",
        aws_config::environment::credentials::EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else(
        "Profile",
        aws_config::profile::ProfileFileCredentialsProvider::builder().build(),
    )
    .or_else(
        "WebIdentityToken",
        aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder().build(),
    )
    .or_else(
        "EcsContainer",
        aws_config::ecs::EcsCredentialsProvider::builder().build(),
    )
    .or_else(
        "Ec2InstanceMetadata",
        aws_config::imds::credentials::ImdsCredentialsProvider::builder().build(),
    )
}

impl Api {
    /// Builds both SDK clients. Retries are disabled in the SDK (`RetryConfig::disabled`): the
    /// controller owns retries and backoff, and a hidden SDK retry would both double-charge the
    /// budget and hide throttling from it. Timeouts: every call is wrapped in a tokio timeout
    /// (`call_timeout`), and the SDK's own connect/operation timeouts are set to the same.
    pub fn new(cfg: &AwsConfig, ctx: ProviderContext) -> Result<Api, AwsProviderError> {
        let region = cfg
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .ok_or(AwsProviderError::NoRegion)?;
        let credentials = match &cfg.static_credentials {
            Some((id, secret)) => SharedCredentialsProvider::new(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "frontdesk-static",
            )),
            None => SharedCredentialsProvider::new(standard_chain()),
        };
        let mut b = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .credentials_provider(credentials)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(cfg.call_timeout)
                    .operation_timeout(cfg.call_timeout)
                    .build(),
            );
        if let Some(url) = &cfg.endpoint_url {
            b = b.endpoint_url(url.clone());
        }
        let shared = b.build();
        Ok(Api {
            elb: elb::Client::new(&shared),
            ec2: ec2::Client::new(&shared),
            ctx,
            timeout: cfg.call_timeout,
        })
    }

    /// Budget, metrics, timeout and classification around one SDK call.
    pub async fn call<T, E, R, F>(
        &self,
        operation: &'static str,
        fut: F,
    ) -> Result<T, ProviderError>
    where
        F: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HasStatus,
    {
        let timeout = self.timeout;
        // SDK futures are large (tens of KB in debug builds); boxing keeps the provider's own
        // futures small enough for a worker thread's stack.
        let fut = Box::pin(fut);
        self.ctx
            .call(
                PROVIDER_NAME,
                operation,
                buckets_for(operation),
                async move {
                    match tokio::time::timeout(timeout, fut).await {
                        Err(_) => Err(ProviderError::transient(format!(
                            "{operation}: no answer within {timeout:?}"
                        ))),
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(e)) => Err(classify(operation, e)),
                    }
                },
            )
            .await
    }
}

/// The HTTP status of a raw response, for errors without a service code.
pub(crate) trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_elasticloadbalancingv2::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Error codes by class, as ELBv2 and EC2 spell them on the wire.
const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
];
const NOT_FOUND: &[&str] = &[
    "LoadBalancerNotFound",
    "TargetGroupNotFound",
    "ListenerNotFound",
    "InvalidGroup.NotFound",
    "InvalidGroupId.NotFound",
    "InvalidPermission.NotFound",
];
const BUSY: &[&str] = &[
    "ResourceInUse",
    "DependencyViolation",
    "IncorrectState",
    "InvalidTarget",
];
const CONFLICT: &[&str] = &[
    "DuplicateLoadBalancerName",
    "DuplicateTargetGroupName",
    "DuplicateListener",
    "InvalidGroup.Duplicate",
    "InvalidPermission.Duplicate",
    "DuplicateTagKeys",
];
const QUOTA: &[&str] = &[
    "TooManyLoadBalancers",
    "TooManyTargetGroups",
    "TooManyTargets",
    "TooManyListeners",
    "TooManyTags",
    "TooManyRegistrationsForTargetId",
    "RulesPerSecurityGroupLimitExceeded",
    "SecurityGroupLimitExceeded",
];
const INVALID: &[&str] = &[
    "InvalidConfigurationRequest",
    "ValidationError",
    "InvalidSubnet",
    "SubnetNotFound",
    "InvalidSecurityGroup",
    "AllocationIdNotFound",
    "InvalidScheme",
    "InvalidParameterValue",
    "InvalidSubnetID.NotFound",
];

pub(crate) fn classify_code(
    operation: &str,
    code: Option<&str>,
    status: Option<u16>,
    message: String,
) -> ProviderError {
    let message = format!("{operation}: {message}");
    let is = |set: &[&str]| code.is_some_and(|c| set.contains(&c));
    if is(THROTTLED) || matches!(status, Some(429) | Some(503)) {
        return ProviderError::Throttled {
            message,
            retry_after: Some(refill_time(operation)),
        };
    }
    if is(NOT_FOUND) {
        return ProviderError::NotFound(message);
    }
    if is(CONFLICT) {
        return ProviderError::Conflict(message);
    }
    if is(QUOTA) {
        return ProviderError::QuotaExceeded(message);
    }
    if is(INVALID) {
        return ProviderError::invalid("service", message);
    }
    // BUSY and everything else (5xx, unknown codes): retry with backoff.
    let _ = BUSY;
    ProviderError::transient(message)
}

fn classify<E, R>(operation: &str, err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().map(String::from);
            let msg = format!(
                "{} ({})",
                e.message().unwrap_or("no message"),
                code.as_deref().unwrap_or("no code")
            );
            let status = Some(ctx.raw().status_code());
            classify_code(operation, code.as_deref(), status, msg)
        }
        _ => {
            let status = err.raw_response().map(HasStatus::status_code);
            let msg = aws_smithy_display(&err);
            classify_code(operation, None, status, msg)
        }
    }
}

/// The error and its sources on one line (SdkError's own Display is just "dispatch failure").
fn aws_smithy_display(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let table: &[(&str, Option<&str>, Option<u16>, &str)] = &[
            (
                "DescribeLoadBalancers",
                Some("ThrottlingException"),
                Some(400),
                "Throttled",
            ),
            (
                "DescribeSubnets",
                Some("RequestLimitExceeded"),
                Some(503),
                "Throttled",
            ),
            ("RegisterTargets", None, Some(429), "Throttled"),
            (
                "DeleteLoadBalancer",
                Some("LoadBalancerNotFound"),
                Some(400),
                "NotFound",
            ),
            (
                "DeleteSecurityGroup",
                Some("InvalidGroup.NotFound"),
                Some(400),
                "NotFound",
            ),
            (
                "DeleteTargetGroup",
                Some("ResourceInUse"),
                Some(400),
                "Transient",
            ),
            (
                "DeleteSecurityGroup",
                Some("DependencyViolation"),
                Some(400),
                "Transient",
            ),
            (
                "CreateTargetGroup",
                Some("DuplicateTargetGroupName"),
                Some(400),
                "Conflict",
            ),
            (
                "CreateLoadBalancer",
                Some("TooManyLoadBalancers"),
                Some(400),
                "QuotaExceeded",
            ),
            (
                "CreateLoadBalancer",
                Some("InvalidConfigurationRequest"),
                Some(400),
                "InvalidSpec",
            ),
            ("CreateListener", None, Some(500), "Transient"),
            ("CreateListener", Some("Weird"), Some(400), "Transient"),
        ];
        for (op, code, status, class) in table {
            let e = classify_code(op, *code, *status, "m".into());
            assert_eq!(e.class(), *class, "{op} {code:?} {status:?}");
        }
    }

    #[test]
    fn throttled_waits_one_token_of_the_category() {
        let ProviderError::Throttled { retry_after, .. } = classify_code(
            "CreateLoadBalancer",
            Some("ThrottlingException"),
            None,
            String::new(),
        ) else {
            panic!("not throttled")
        };
        assert_eq!(retry_after, Some(Duration::from_secs(5)));
        assert_eq!(
            buckets_for("RegisterTargets"),
            [ELB_REGISTRATION, ELB_ACCOUNT]
        );
        assert_eq!(
            buckets_for("DescribeTargetHealth"),
            [ELB_DESCRIBE, ELB_ACCOUNT]
        );
        assert_eq!(buckets_for("ModifyListener"), [ELB_MUTATE, ELB_ACCOUNT]);
        assert_eq!(buckets_for("AuthorizeSecurityGroupIngress"), [EC2_SG_RULES]);
        for (b, _) in budget_buckets() {
            assert!(
                [
                    ELB_RESOURCE,
                    ELB_REGISTRATION,
                    ELB_DESCRIBE,
                    ELB_MUTATE,
                    ELB_ACCOUNT,
                    EC2_DESCRIBE,
                    EC2_MUTATE,
                    EC2_SG_RULES
                ]
                .contains(&b)
            );
        }
    }
}
