//! The AWS Query protocol's request side: a form-encoded body (`Action=..&Version=..&..`) with
//! lists flattened into numbered keys. ELBv2 spells lists `Name.member.N[.Field]`, EC2 spells them
//! `Name.N[.Field]`; [`Params`] accepts both so one parser serves both services.

use std::collections::BTreeMap;

/// The decoded parameters of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("the request body is not valid form encoding: {0}")]
    Encoding(String),
}

/// Decode `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte, UTF-8 overall).
fn decode(raw: &str) -> Result<String, QueryError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| QueryError::Encoding(format!("bad escape near {raw:?}")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::Encoding(format!("{raw:?} is not UTF-8")))
}

/// Parse a form body (or a URL query string). Later duplicates win, like AWS.
pub fn parse_form(body: &str) -> Result<Params, QueryError> {
    let mut map = BTreeMap::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(decode(k)?, decode(v)?);
    }
    Ok(Params { map })
}

/// `rest` of `name.member.N` / `name.N` keys: (N, what follows `N`, possibly empty).
fn indexed<'a>(key: &'a str, name: &str) -> Option<(u32, &'a str)> {
    let tail = key.strip_prefix(name)?.strip_prefix('.')?;
    let tail = tail.strip_prefix("member.").unwrap_or(tail);
    let (idx, rest) = match tail.split_once('.') {
        Some((i, r)) => (i, r),
        None => (tail, ""),
    };
    let n: u32 = idx.parse().ok()?;
    Some((n, rest))
}

impl Params {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A present, non-empty value.
    pub fn nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.map.keys().any(|k| k.starts_with(prefix))
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A list of scalars (`Names.member.1=a&Names.member.2=b`, or `SubnetId.1=..`), in index order.
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut items: Vec<(u32, &String)> = self
            .map
            .iter()
            .filter_map(|(k, v)| match indexed(k, name) {
                Some((n, "")) => Some((n, v)),
                _ => None,
            })
            .collect();
        items.sort_by_key(|(n, _)| *n);
        items.into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// A list of structures (`Tags.member.1.Key=..&Tags.member.1.Value=..`), each as its own
    /// `Params` holding the fields after the index, in index order.
    pub fn structs(&self, name: &str) -> Vec<Params> {
        let mut groups: BTreeMap<u32, Params> = BTreeMap::new();
        for (k, v) in &self.map {
            if let Some((n, rest)) = indexed(k, name)
                && !rest.is_empty()
            {
                groups
                    .entry(n)
                    .or_default()
                    .map
                    .insert(rest.to_string(), v.clone());
            }
        }
        groups.into_values().collect()
    }

    /// The fields of a nested structure (`Matcher.HttpCode` → `sub("Matcher").get("HttpCode")`).
    pub fn sub(&self, name: &str) -> Params {
        let prefix = format!("{name}.");
        Params {
            map: self
                .map
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone())))
                .collect(),
        }
    }

    /// An optional integer field; a present non-integer is an error naming the field.
    pub fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.nonempty(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{key}: {v:?} is not an integer")),
        }
    }

    /// An optional boolean field (`true`/`false`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.nonempty(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(format!("{key}: {v:?} is not true or false")),
        }
    }

    /// Every key=value, for the call log.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_encoding() {
        let cases = [
            ("a=b", "a", "b"),
            (
                "k=kubernetes.io%2Fservice-name",
                "k",
                "kubernetes.io/service-name",
            ),
            ("k=a+b%20c", "k", "a b c"),
            ("k=%E2%9C%93", "k", "\u{2713}"),
            ("k=", "k", ""),
            ("k", "k", ""),
        ];
        for (body, key, want) in cases {
            let p = parse_form(body).expect(body);
            assert_eq!(p.get(key), Some(want), "{body}");
        }
        assert!(parse_form("k=%G1").is_err());
        assert!(parse_form("k=%4").is_err());
        assert!(parse_form("k=%FF").is_err());
    }

    #[test]
    fn lists_in_both_spellings_and_index_order() {
        let p = parse_form(
            "Subnets.member.2=subnet-b&Subnets.member.1=subnet-a&Subnets.member.10=subnet-j\
             &SubnetId.1=s1&SubnetId.2=s2&Other=x",
        )
        .expect("parse");
        assert_eq!(p.list("Subnets"), ["subnet-a", "subnet-b", "subnet-j"]);
        assert_eq!(p.list("SubnetId"), ["s1", "s2"]);
        assert!(p.list("Missing").is_empty());
        // A prefix of another name is not that name.
        assert!(p.list("Subnet").is_empty());
    }

    #[test]
    fn structs_and_nested_lists() {
        let p = parse_form(
            "Tags.member.1.Key=k1&Tags.member.1.Value=v1&Tags.member.2.Key=k2\
             &Filter.1.Name=tag-key&Filter.1.Value.1=a&Filter.1.Value.2=b\
             &Targets.member.1.Id=i-1&Targets.member.1.Port=30080\
             &IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8&IpPermissions.1.FromPort=80\
             &Matcher.HttpCode=200-399",
        )
        .expect("parse");
        let tags = p.structs("Tags");
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].get("Key"), Some("k1"));
        assert_eq!(tags[0].get("Value"), Some("v1"));
        assert_eq!(tags[1].get("Value"), None);
        let filters = p.structs("Filter");
        assert_eq!(filters[0].get("Name"), Some("tag-key"));
        assert_eq!(filters[0].list("Value"), ["a", "b"]);
        let targets = p.structs("Targets");
        assert_eq!(targets[0].int("Port"), Ok(Some(30080)));
        let perms = p.structs("IpPermissions");
        assert_eq!(
            perms[0].structs("IpRanges")[0].get("CidrIp"),
            Some("10.0.0.0/8")
        );
        assert_eq!(p.sub("Matcher").get("HttpCode"), Some("200-399"));
    }

    #[test]
    fn typed_fields_name_the_field_on_error() {
        let p = Params::from_pairs([("Port", "eighty"), ("On", "yes"), ("Ok", "true")]);
        assert_eq!(
            p.int("Port"),
            Err("Port: \"eighty\" is not an integer".into())
        );
        assert_eq!(p.int("Absent"), Ok(None));
        assert!(p.bool("On").is_err());
        assert_eq!(p.bool("Ok"), Ok(Some(true)));
    }
}
