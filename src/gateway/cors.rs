//! CORS (`core::cors`): Put/Get/DeleteBucketCors keep a bucket's rules on its own record at
//! the sites; a browser's preflight (`OPTIONS`, never signed) is answered from them before
//! the gate, and an actual request from an allowed origin gets the `Access-Control-*` headers
//! with its answer. A preflight learns nothing but whether the bucket's rules allow it: a
//! bucket without rules and a bucket that does not exist answer alike.

use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::dto::{
    CORSRule, DeleteBucketCorsInput, DeleteBucketCorsOutput, GetBucketCorsInput,
    GetBucketCorsOutput, PutBucketCorsInput, PutBucketCorsOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::Gateway;
use super::error::S3Fault;
use crate::core::cors::{self, Rule};

fn rule_of(r: CORSRule) -> Rule {
    Rule {
        id: r.id,
        origins: r.allowed_origins,
        methods: r.allowed_methods,
        headers: r.allowed_headers.unwrap_or_default(),
        expose: r.expose_headers.unwrap_or_default(),
        max_age_secs: r.max_age_seconds,
    }
}

fn dto_of(r: Rule) -> CORSRule {
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    CORSRule {
        id: r.id,
        allowed_origins: r.origins,
        allowed_methods: r.methods,
        allowed_headers: some(r.headers),
        expose_headers: some(r.expose),
        max_age_seconds: r.max_age_secs,
    }
}

/// An S3 error with a code `s3s` may not name and a status.
fn error(code: &str, status: StatusCode, message: &str) -> S3Error {
    let code = S3ErrorCode::from_bytes(code.as_bytes()).unwrap_or(S3ErrorCode::InvalidRequest);
    let mut e = S3Error::with_message(code, message.to_owned());
    e.set_status_code(status);
    e
}

/// The bucket a path-style request names (None: the service).
fn bucket_of(path: &str) -> Option<&str> {
    Some(super::guard::path_bucket(path).0).filter(|b| !b.is_empty())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn put(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The headers every CORS answer from `rule` carries for `origin`.
fn allow(h: &mut HeaderMap, rule: &Rule, origin: &str) {
    let any = rule.origins.iter().any(|o| o == "*");
    put(
        h,
        "access-control-allow-origin",
        if any { "*" } else { origin },
    );
    if !any {
        put(h, "access-control-allow-credentials", "true");
    }
    put(h, "access-control-allow-methods", &rule.methods.join(", "));
    if !rule.expose.is_empty() {
        put(h, "access-control-expose-headers", &rule.expose.join(", "));
    }
    if let Some(s) = rule.max_age_secs {
        put(h, "access-control-max-age", &s.to_string());
    }
    h.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

impl Gateway {
    fn cors_rules(&self, bucket: &str) -> Vec<Rule> {
        match self.index.bucket_extra(bucket, "cors") {
            Ok(Some(s)) => cors::decode(&s),
            _ => Vec::new(),
        }
    }

    /// Answers a browser's preflight `OPTIONS` from the bucket's rules: 200 with what they
    /// allow, 403 when they allow nothing of it, 400 when it is no preflight.
    pub(crate) fn preflight(&self, parts: &http::request::Parts) -> Result<HeaderMap, S3Error> {
        let h = &parts.headers;
        let Some(origin) = header(h, "origin") else {
            return Err(error(
                "BadRequest",
                StatusCode::BAD_REQUEST,
                "Insufficient information. Origin request header needed.",
            ));
        };
        let Some(method) = header(h, "access-control-request-method") else {
            return Err(error(
                "BadRequest",
                StatusCode::BAD_REQUEST,
                "Invalid Access-Control-Request-Method: null",
            ));
        };
        let asked: Vec<String> = header(h, "access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        let asked_refs: Vec<&str> = asked.iter().map(String::as_str).collect();
        let rules = bucket_of(parts.uri.path())
            .map(|b| self.cors_rules(b))
            .unwrap_or_default();
        let Some(rule) = cors::find(&rules, origin, method, &asked_refs) else {
            return Err(error(
                "AccessForbidden",
                StatusCode::FORBIDDEN,
                "CORSResponse: This CORS request is not allowed. This is usually because the \
                 evalution of Origin, request method / Access-Control-Request-Method or \
                 Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            ));
        };
        let mut out = HeaderMap::new();
        allow(&mut out, rule, origin);
        if !asked.is_empty() {
            put(&mut out, "access-control-allow-headers", &asked.join(", "));
        }
        Ok(out)
    }

    /// The `Access-Control-*` headers an actual request from a browser (`Origin`) gets with
    /// its answer, when the bucket's rules allow its origin and method.
    pub(crate) fn cors_headers(&self, parts: &http::request::Parts) -> Option<HeaderMap> {
        let origin = header(&parts.headers, "origin")?;
        let bucket = bucket_of(parts.uri.path())?;
        let rules = self.cors_rules(bucket);
        let rule = cors::find(&rules, origin, parts.method.as_str(), &[])?;
        let mut out = HeaderMap::new();
        allow(&mut out, rule, origin);
        Some(out)
    }

    pub(crate) fn get_bucket_cors_op(
        &self,
        req: &S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.require_bucket(&req.input.bucket)?;
        let stored = self
            .index
            .bucket_extra(&req.input.bucket, "cors")?
            .ok_or(S3Fault::NoSuchCorsConfiguration)?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(cors::decode(&stored).into_iter().map(dto_of).collect()),
        }))
    }

    pub(crate) async fn put_bucket_cors_op(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let i = req.input;
        let rules: Vec<Rule> = i
            .cors_configuration
            .cors_rules
            .into_iter()
            .map(rule_of)
            .collect();
        cors::check(&rules).map_err(|r| match r.code {
            "MalformedXML" => S3Fault::MalformedXml(r.message),
            "InvalidArgument" => S3Fault::InvalidArgument(r.message),
            _ => S3Fault::InvalidRequest(r.message),
        })?;
        self.set_bucket_setting(&i.bucket, "cors", Some(cors::encode(&rules)))
            .await?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    pub(crate) async fn delete_bucket_cors_op(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.set_bucket_setting(&req.input.bucket, "cors", None)
            .await?;
        let mut resp = S3Response::new(DeleteBucketCorsOutput {});
        resp.status = Some(StatusCode::NO_CONTENT);
        Ok(resp)
    }
}
