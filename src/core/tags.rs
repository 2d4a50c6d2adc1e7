//! Object and bucket tags: S3's limits, the `x-amz-tagging` header's form, and the stored form
//! (a JSON list of pairs, in the version's sealed manifest and the bucket's record).

/// Most tags on an object version.
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on a bucket.
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 128;
/// Longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 256;

/// The stored header (`ObjectMeta::headers`, never served) that holds a version's tags.
pub const STORED_HEADER: &str = "x-exclave-tagging";

/// Tags, in the order they were given.
pub type Tags = Vec<(String, String)>;

/// Why a tag set was refused (S3's `InvalidTag`, with AWS's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTag(pub String);

/// Characters S3 allows in tag keys and values besides letters, digits and spaces (Unicode
/// letters and digits included, as AWS's `[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// Checks a tag set against S3's rules: at most `max` tags, keys 1 to 128 characters and
/// values up to 256, of the allowed characters, no key twice, none starting `aws:`.
pub fn check(tags: &[(String, String)], max: usize) -> Result<(), InvalidTag> {
    let bad = |s: &str| Err(InvalidTag(s.to_owned()));
    if tags.len() > max {
        return if max == MAX_OBJECT_TAGS {
            bad("Object tags cannot be greater than 10")
        } else {
            bad("Bucket tag count cannot be greater than 50")
        };
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in tags {
        if k.is_empty() || !k.chars().all(allowed) {
            return bad("The TagKey you have provided is invalid");
        }
        if k.chars().count() > MAX_KEY_CHARS {
            return bad("The TagKey you have provided is too long, max 128");
        }
        if !v.chars().all(allowed) {
            return bad("The TagValue you have provided is invalid");
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return bad("The TagValue you have provided is too long, max 256");
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return bad("Your TagKey cannot be prefixed with aws:");
        }
        if !seen.insert(k.as_str()) {
            return bad("Cannot provide multiple Tags with the same key");
        }
    }
    Ok(())
}

/// Reads the `x-amz-tagging` header: URL-encoded query parameters (`k1=v1&k2=v2`, `+` a
/// space), each key once; then [`check`]s the set. An empty header is no tags.
pub fn parse_header(s: &str) -> Result<Tags, InvalidTag> {
    let mut tags = Tags::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (decode(k), decode(v)) else {
            return Err(InvalidTag(
                "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query \
                 parameters without tag name duplicates."
                    .into(),
            ));
        };
        tags.push((k, v));
    }
    check(&tags, MAX_OBJECT_TAGS)?;
    Ok(tags)
}

/// Percent-decodes one query component (`+` is a space); None when it is not UTF-8 or a `%`
/// is not followed by two hex digits.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The stored form of a tag set (empty for none).
pub fn encode(tags: &[(String, String)]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        serde_json::to_string(tags).unwrap_or_default()
    }
}

/// A stored tag set; a form that does not read is no tags (it was written by [`encode`]
/// inside an authenticated record, so it never happens short of a bug).
pub fn decode_stored(s: &str) -> Tags {
    if s.is_empty() {
        return Tags::new();
    }
    serde_json::from_str(s).unwrap_or_default()
}

/// A version's tags in their stored form (empty: none).
pub fn stored(meta: &crate::core::format::ObjectMeta) -> &str {
    meta.headers
        .iter()
        .find(|(n, _)| n == STORED_HEADER)
        .map_or("", |(_, v)| v.as_str())
}

/// A version's tags.
pub fn of(meta: &crate::core::format::ObjectMeta) -> Tags {
    decode_stored(stored(meta))
}

/// Sets the tags among stored headers (none: the header goes).
pub fn set(headers: &mut Vec<(String, String)>, tags: &[(String, String)]) {
    headers.retain(|(n, _)| n != STORED_HEADER);
    if !tags.is_empty() {
        headers.push((STORED_HEADER.to_owned(), encode(tags)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_header_reads_as_aws_sends_it() {
        assert_eq!(
            parse_header("a=1&b%20c=d+e&empty=&f%3Ag=%40").unwrap(),
            t(&[("a", "1"), ("b c", "d e"), ("empty", ""), ("f:g", "@")])
        );
        assert_eq!(parse_header("").unwrap(), Tags::new());
        assert!(parse_header("a=%zz").is_err());
        assert!(parse_header("a=1&a=2").is_err());
        assert!(parse_header("aws:x=1").is_err());
    }

    #[test]
    fn limits_are_aws_limits() {
        let eleven: Tags = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(check(&eleven[..10], MAX_OBJECT_TAGS).is_ok());
        assert_eq!(
            check(&eleven, MAX_OBJECT_TAGS).unwrap_err().0,
            "Object tags cannot be greater than 10"
        );
        assert!(check(&eleven, MAX_BUCKET_TAGS).is_ok());
        assert!(check(&t(&[(&"k".repeat(128), "")]), 10).is_ok());
        assert!(check(&t(&[(&"k".repeat(129), "")]), 10).is_err());
        assert!(check(&t(&[("k", &"é".repeat(256))]), 10).is_ok());
        assert!(check(&t(&[("k", &"v".repeat(257))]), 10).is_err());
        assert!(check(&t(&[("", "v")]), 10).is_err());
        assert!(check(&t(&[("a<b", "v")]), 10).is_err());
        assert!(check(&t(&[("k", "v;")]), 10).is_err());
    }

    #[test]
    fn the_stored_form_round_trips() {
        let tags = t(&[("b", "2"), ("a", "1 & \"x\"")]);
        assert_eq!(decode_stored(&encode(&tags)), tags);
        assert_eq!(encode(&[]), "");
        assert!(decode_stored("").is_empty());
    }
}
