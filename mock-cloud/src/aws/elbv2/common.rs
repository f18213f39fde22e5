//! Pieces every ELBv2 operation shares: ARNs, names, tags, paging.

use std::collections::{BTreeMap, BTreeSet};

use super::super::query::Params;
use super::super::xml::Xml;
use super::super::{AwsError, Env, REGION};
use super::{MAX_PAGE, MAX_TAGS};

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub(crate) fn arn(env: &Env<'_>, resource: &str) -> String {
    format!(
        "arn:aws:elasticloadbalancing:{REGION}:{}:{resource}",
        env.config.account_id
    )
}

/// `Name` of LBs and TGs: 1-32 alphanumerics or hyphens, no hyphen at either end.
pub(crate) fn validate_name(name: &str, what: &str) -> Result<(), AwsError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        return Err(AwsError::validation(format!(
            "{what} name '{name}' must be 1-32 alphanumeric characters or hyphens, and must not \
             begin or end with a hyphen"
        )));
    }
    if what == "Load balancer" && name.starts_with("internal-") {
        return Err(AwsError::validation(
            "Load balancer names cannot start with 'internal-'",
        ));
    }
    Ok(())
}

/// `Tags.member.N.{Key,Value}`; rejects repeated keys and more than 50 tags.
pub(crate) fn parse_tags(p: &Params) -> Result<Vec<(String, String)>, AwsError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for t in p.structs("Tags") {
        let key = t
            .nonempty("Key")
            .ok_or_else(|| AwsError::validation("Tags.member.N.Key is required"))?;
        if !seen.insert(key.to_string()) {
            return Err(AwsError::new(
                "DuplicateTagKeys",
                format!("Tag key '{key}' is duplicated"),
            ));
        }
        out.push((
            key.to_string(),
            t.get("Value").unwrap_or_default().to_string(),
        ));
    }
    if out.len() > MAX_TAGS {
        return Err(AwsError::new("TooManyTags", "too many tags (at most 50)"));
    }
    Ok(out)
}

pub(crate) fn write_tags(x: &mut Xml, tags: &BTreeMap<String, String>) {
    x.list("Tags", "member", tags, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    });
}

/// `Marker` / `PageSize` paging over items ordered by creation sequence.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    seq: impl Fn(&T) -> u64,
    p: &Params,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let size = p.int("PageSize").map_err(AwsError::validation)?;
    let size = match size {
        None => MAX_PAGE,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(AwsError::validation(format!(
                "PageSize {n} must be between 1 and {MAX_PAGE}"
            )));
        }
    } as usize;
    items.sort_by_key(&seq);
    if let Some(marker) = p.nonempty("Marker") {
        let from: u64 = marker
            .parse()
            .map_err(|_| AwsError::validation(format!("Marker '{marker}' is not valid")))?;
        items.retain(|i| seq(i) >= from);
    }
    let next = items.get(size).map(|i| seq(i).to_string());
    items.truncate(size);
    Ok((items, next))
}
