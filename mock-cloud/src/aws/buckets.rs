//! Which server-side token buckets an AWS call is charged to (cloud-api-limits §2), and the
//! P-aws profile's bucket sizes.

use std::collections::BTreeMap;

use super::query::Params;
use crate::faults::BucketSpec;

/// Every ELBv2 action also draws from the account-level bucket.
pub const ELB_ACCOUNT: &str = "elbv2-account";
/// `CreateLoadBalancer`, `SetSubnets`.
pub const ELB_CREATE_LB: &str = "elbv2-create-lb";
/// `RegisterTargets`, `DeregisterTargets`.
pub const ELB_REGISTRATION: &str = "elbv2-registration";
/// `Describe*`.
pub const ELB_DESCRIBE: &str = "elbv2-describe";
/// Every other (mutating) ELBv2 action.
pub const ELB_MUTATE: &str = "elbv2-mutate";
/// EC2 non-mutating calls that filter or paginate.
pub const EC2_DESCRIBE: &str = "ec2-describe";
/// EC2 non-mutating calls with neither filters, ids nor pagination.
pub const EC2_DESCRIBE_UNFILTERED: &str = "ec2-describe-unfiltered";
pub const EC2_MUTATE: &str = "ec2-mutate";
/// `AuthorizeSecurityGroup*` / `RevokeSecurityGroup*` (resource-intensive).
pub const EC2_SG_RULES: &str = "ec2-sg-rules";
/// `CreateTags` / `DeleteTags`.
pub const EC2_TAGS: &str = "ec2-tags";

fn describe_like(action: &str) -> bool {
    ["Describe", "List", "Get", "Search"]
        .iter()
        .any(|p| action.starts_with(p))
}

/// ELBv2: (buckets, mutating).
pub fn elb_buckets(action: &str) -> (Vec<String>, bool) {
    let (category, mutating) = match action {
        "CreateLoadBalancer" | "SetSubnets" => (ELB_CREATE_LB, true),
        "RegisterTargets" | "DeregisterTargets" => (ELB_REGISTRATION, true),
        a if a.starts_with("Describe") => (ELB_DESCRIBE, false),
        _ => (ELB_MUTATE, true),
    };
    (
        vec![category.to_string(), ELB_ACCOUNT.to_string()],
        mutating,
    )
}

/// EC2: (buckets, mutating). A describe counts as filtered when it names ids, filters or pages.
pub fn ec2_buckets(action: &str, params: &Params) -> (Vec<String>, bool) {
    let (bucket, mutating) = match action {
        "CreateTags" | "DeleteTags" => (EC2_TAGS, true),
        a if a.starts_with("AuthorizeSecurityGroup") || a.starts_with("RevokeSecurityGroup") => {
            (EC2_SG_RULES, true)
        }
        a if describe_like(a) => {
            let filtered = [
                "Filter.",
                "MaxResults",
                "NextToken",
                "InstanceId.",
                "GroupId.",
            ]
            .iter()
            .chain(["GroupName.", "SubnetId.", "VpcId.", "ZoneName."].iter())
            .any(|p| params.has_prefix(p));
            if filtered {
                (EC2_DESCRIBE, false)
            } else {
                (EC2_DESCRIBE_UNFILTERED, false)
            }
        }
        _ => (EC2_MUTATE, true),
    };
    (vec![bucket.to_string()], mutating)
}

fn spec(capacity: f64, refill_per_sec: f64) -> BucketSpec {
    BucketSpec {
        capacity,
        refill_per_sec,
    }
}

/// P-aws buckets. Describe uses the published 40 / 10 per s (AWS has raised it for some
/// accounts to 200 / 50; override through `/_admin/faults` to model that).
pub fn aws_profile_buckets() -> BTreeMap<String, BucketSpec> {
    [
        (ELB_ACCOUNT, spec(40.0, 10.0)),
        (ELB_CREATE_LB, spec(10.0, 0.2)),
        (ELB_REGISTRATION, spec(20.0, 4.0)),
        (ELB_DESCRIBE, spec(40.0, 10.0)),
        (ELB_MUTATE, spec(20.0, 3.0)),
        (EC2_DESCRIBE, spec(100.0, 20.0)),
        (EC2_DESCRIBE_UNFILTERED, spec(50.0, 10.0)),
        (EC2_MUTATE, spec(50.0, 5.0)),
        (EC2_SG_RULES, spec(50.0, 5.0)),
        (EC2_TAGS, spec(100.0, 10.0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elb_actions_charge_their_category_and_the_account() {
        let cases = [
            ("CreateLoadBalancer", ELB_CREATE_LB, true),
            ("SetSubnets", ELB_CREATE_LB, true),
            ("RegisterTargets", ELB_REGISTRATION, true),
            ("DeregisterTargets", ELB_REGISTRATION, true),
            ("DescribeTargetHealth", ELB_DESCRIBE, false),
            ("DescribeTags", ELB_DESCRIBE, false),
            ("CreateListener", ELB_MUTATE, true),
            ("ModifyTargetGroupAttributes", ELB_MUTATE, true),
            ("AddTags", ELB_MUTATE, true),
        ];
        for (action, bucket, mutating) in cases {
            let (buckets, m) = elb_buckets(action);
            assert_eq!(buckets, [bucket, ELB_ACCOUNT], "{action}");
            assert_eq!(m, mutating, "{action}");
        }
    }

    #[test]
    fn ec2_describe_bucket_depends_on_filtering() {
        let none = Params::default();
        let filtered = Params::from_pairs([("Filter.1.Name", "vpc-id")]);
        let by_id = Params::from_pairs([("GroupId.1", "sg-1")]);
        let cases = [
            (
                "DescribeSecurityGroups",
                &none,
                EC2_DESCRIBE_UNFILTERED,
                false,
            ),
            ("DescribeSecurityGroups", &filtered, EC2_DESCRIBE, false),
            ("DescribeSecurityGroups", &by_id, EC2_DESCRIBE, false),
            ("CreateTags", &none, EC2_TAGS, true),
            ("AuthorizeSecurityGroupIngress", &none, EC2_SG_RULES, true),
            ("RevokeSecurityGroupIngress", &none, EC2_SG_RULES, true),
            ("CreateSecurityGroup", &none, EC2_MUTATE, true),
        ];
        for (action, params, bucket, mutating) in cases {
            assert_eq!(
                ec2_buckets(action, params),
                (vec![bucket.to_string()], mutating)
            );
        }
    }

    #[test]
    fn profile_has_every_bucket() {
        let b = aws_profile_buckets();
        assert_eq!(b.len(), 10);
        assert_eq!(b[ELB_CREATE_LB], spec(10.0, 0.2));
        assert_eq!(b[EC2_TAGS], spec(100.0, 10.0));
    }
}
