//! A bucket's CORS rules (what a browser on a registry's portal may send): checked as S3
//! checks them when put, and matched against a browser's preflight (`OPTIONS`) or actual
//! request as S3 matches them: the first rule whose origin, method and every requested header
//! match.

use serde::{Deserialize, Serialize};

/// Most rules in a configuration.
pub const MAX_RULES: usize = 100;
/// The methods a rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Rule {
    /// Its id (up to 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Origins, each with at most one `*`.
    pub origins: Vec<String>,
    /// Methods, of [`METHODS`].
    pub methods: Vec<String>,
    /// Headers a preflight may ask for, each with at most one `*` (case-insensitive).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Headers the browser may let the page read.
    #[serde(default)]
    pub expose: Vec<String>,
    /// How long a browser may keep the preflight's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<i32>,
}

/// Why a configuration was refused: S3's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `InvalidRequest` or `MalformedXML`.
    pub code: &'static str,
    /// Why.
    pub message: String,
}

fn refused<T>(code: &'static str, message: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        code,
        message: message.into(),
    })
}

/// Checks rules as S3 does when they are put.
pub fn check(rules: &[Rule]) -> Result<(), Refused> {
    if rules.is_empty() {
        return refused("MalformedXML", "a CORS configuration has at least one rule");
    }
    if rules.len() > MAX_RULES {
        return refused(
            "InvalidRequest",
            "The number of CORS rules should not exceed allowed limit of 100 rules.",
        );
    }
    for r in rules {
        if r.id.as_ref().is_some_and(|id| id.chars().count() > 255) {
            return refused(
                "InvalidArgument",
                "The ID of a CORS rule is at most 255 characters",
            );
        }
        if r.origins.is_empty() || r.methods.is_empty() {
            return refused(
                "MalformedXML",
                "a CORS rule names at least one AllowedOrigin and one AllowedMethod",
            );
        }
        if let Some(m) = r.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return refused(
                "InvalidRequest",
                format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}"),
            );
        }
        if let Some(o) = r.origins.iter().find(|o| o.matches('*').count() > 1) {
            return refused(
                "InvalidRequest",
                format!("AllowedOrigin \"{o}\" can not have more than one wildcard."),
            );
        }
        if let Some(h) = r.headers.iter().find(|h| h.matches('*').count() > 1) {
            return refused(
                "InvalidRequest",
                format!("AllowedHeader \"{h}\" can not have more than one wildcard."),
            );
        }
        if let Some(h) = r.expose.iter().find(|h| h.contains('*')) {
            return refused(
                "InvalidRequest",
                format!(
                    "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
                ),
            );
        }
        if r.max_age_secs.is_some_and(|s| s < 0) {
            return refused("InvalidArgument", "MaxAgeSeconds is not negative");
        }
    }
    Ok(())
}

/// Whether `text` matches `pattern` with at most one `*` (any run of characters).
fn wild(pattern: &str, text: &str, fold: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if fold {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, text),
        Some((head, tail)) => {
            text.len() >= head.len() + tail.len()
                && text.is_char_boundary(head.len())
                && text.is_char_boundary(text.len() - tail.len())
                && eq(&text[..head.len()], head)
                && eq(&text[text.len() - tail.len()..], tail)
        }
    }
}

/// The first rule that lets `origin` send `method` with the request headers `headers` (a
/// preflight's `Access-Control-Request-Headers`; none for an actual request).
pub fn find<'a>(
    rules: &'a [Rule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a Rule> {
    rules.iter().find(|r| {
        r.origins.iter().any(|o| wild(o, origin, false))
            && r.methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| r.headers.iter().any(|allowed| wild(allowed, h, true)))
    })
}

/// The stored form of a configuration.
pub fn encode(rules: &[Rule]) -> String {
    serde_json::to_string(rules).unwrap_or_default()
}

/// A stored configuration (one that does not read: no rules, so nothing is allowed).
pub fn decode(s: &str) -> Vec<Rule> {
    serde_json::from_str(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule {
            origins: v(origins),
            methods: v(methods),
            headers: v(headers),
            ..Rule::default()
        }
    }

    #[test]
    fn rules_match_as_s3_matches_them() {
        let rules = vec![
            rule(&["https://portal.land.example"], &["PUT", "POST"], &["*"]),
            rule(
                &["https://*.registry.example"],
                &["GET"],
                &["x-amz-*", "content-type"],
            ),
            rule(&["*"], &["HEAD"], &[]),
        ];
        let put = find(
            &rules,
            "https://portal.land.example",
            "PUT",
            &["content-md5", "x-amz-date"],
        );
        assert!(std::ptr::eq(put.unwrap(), &rules[0]));
        assert!(find(&rules, "https://portal.land.example", "DELETE", &[]).is_none());
        assert!(find(&rules, "https://evil.example", "PUT", &[]).is_none());
        assert!(
            find(
                &rules,
                "https://a.registry.example",
                "GET",
                &["X-Amz-Date", "Content-Type"]
            )
            .is_some()
        );
        assert!(
            find(
                &rules,
                "https://a.registry.example",
                "GET",
                &["authorization"]
            )
            .is_none()
        );
        assert!(find(&rules, "https://registry.example", "GET", &[]).is_none());
        assert!(std::ptr::eq(
            find(&rules, "null", "HEAD", &[]).unwrap(),
            &rules[2]
        ));
        assert!(find(&rules, "null", "HEAD", &["x-y"]).is_none());
    }

    #[test]
    fn what_s3_refuses_is_refused() {
        assert!(check(&[rule(&["*"], &["GET"], &[])]).is_ok());
        assert_eq!(check(&[]).unwrap_err().code, "MalformedXML");
        assert_eq!(
            check(&[rule(&["*"], &["PATCH"], &[])]).unwrap_err().code,
            "InvalidRequest"
        );
        assert_eq!(
            check(&[rule(&["https://*.*.example"], &["GET"], &[])])
                .unwrap_err()
                .code,
            "InvalidRequest"
        );
        assert_eq!(
            check(&[rule(&["*"], &["GET"], &["a*b*"])])
                .unwrap_err()
                .code,
            "InvalidRequest"
        );
        let mut r = rule(&["*"], &["GET"], &[]);
        r.expose = vec!["x-*".into()];
        assert!(check(&[r]).is_err());
        let many = vec![rule(&["*"], &["GET"], &[]); 101];
        assert!(check(&many).is_err());
        let rules = vec![rule(&["a"], &["GET"], &["b"])];
        assert_eq!(decode(&encode(&rules)), rules);
    }
}
