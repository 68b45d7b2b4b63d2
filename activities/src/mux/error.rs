//! The Mux client's errors, their classification (retryable or not, and after how long), and
//! the `Retry-After` rules.
//!
//! A response is classified by its HTTP status first and its body second, because Mux's 429 body
//! (`{"errors": […]}`) differs from every other error body (`{"error": {"type", "messages"}}`).

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use rindle_workflows::redact::redact_id;
use serde_json::Value;

use super::types::{MAX_MESSAGE_CHARS, cut};

/// Delay used when a 429 carries no usable hint. Mux documents none (a real 429 from 2024 had no
/// `Retry-After`), and 60 s is what the reference worker snoozes for.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Longest delay a server may ask for, so a bad header cannot park an ingest for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// At most this many messages are kept from an error body, so one response cannot flood a log line.
const MAX_MESSAGES: usize = 10;

/// Everything that can go wrong talking to Mux, in the shape the activity needs to decide whether
/// Temporal should retry. No variant's `Display` holds the signed input URL, the token secret or a
/// raw asset id: messages from Mux are scrubbed of those before they are stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// HTTP 429: over Mux's rate limit. Retry, but not before `retry_after`.
    #[error("Mux rate limit hit (HTTP 429); retry after {retry_after:?}")]
    RateLimited {
        /// From `retry-after-ms` / `Retry-After`, or [`DEFAULT_RETRY_AFTER`].
        retry_after: Duration,
    },
    /// HTTP 5xx, 408 or 409: Mux could not answer now; the same request may succeed later.
    #[error("Mux is unavailable (HTTP {status}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// Mux's message(s), or the start of the body, cut to 500 characters.
        message: String,
    },
    /// No response: connection refused, DNS, TLS, timeout, or the body broke off mid-way.
    #[error("no usable response from Mux ({})", transport_kind(source))]
    Transport {
        /// The underlying error, stripped of its URL (which holds the asset id).
        #[source]
        source: reqwest::Error,
    },
    /// Any other 4xx: Mux refused this request and will refuse it again (bad token, bad input).
    #[error(
        "Mux rejected the request (HTTP {status}{}): {}",
        error_type.as_deref().map(|t| format!(", {t}")).unwrap_or_default(),
        join_messages(messages)
    )]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// `error.type` of Mux's body, such as `invalid_parameters` or `unauthorized`.
        error_type: Option<String>,
        /// `error.messages` of Mux's body (or the start of a non-JSON body).
        messages: Vec<String>,
    },
    /// HTTP 404 on a get: Mux has no asset with that id (deleted, or another environment).
    #[error("Mux has no such asset (HTTP 404)")]
    NotFound,
    /// A 2xx whose body is not what Mux documents, or an unexpected 1xx/3xx status. Not retried,
    /// because for a create the asset may already exist.
    #[error("unexpected {what} from Mux: {detail}")]
    Decode {
        /// Which response was wrong, such as `create-asset response`.
        what: &'static str,
        /// What was wrong with it (never a value from the body).
        detail: String,
    },
    /// The call could not be made as asked: bad configuration or an empty asset id.
    #[error("invalid Mux {what}: {detail}")]
    Invalid {
        /// What was invalid, such as `configuration` or `asset id`.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

impl MuxError {
    /// Whether the same call may succeed if made again later, so the activity knows whether to let
    /// Temporal retry it or fail for good.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport { .. } => true,
            Self::Rejected { .. } | Self::NotFound | Self::Decode { .. } | Self::Invalid { .. } => {
                false
            }
        }
    }

    /// How long to wait before the next attempt when Mux said so (429 only), for Temporal's
    /// `next_retry_delay`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// A stable name for the failure, used as the Temporal application-error type and the
    /// telemetry reason, so that operators can filter on it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "ProviderRateLimited",
            Self::Server { .. } => "ProviderUnavailable",
            Self::Transport { .. } => "ProviderTransport",
            Self::Rejected { .. } => "ProviderRejected",
            Self::NotFound => "ProviderNotFound",
            Self::Decode { .. } => "ProviderBadResponse",
            Self::Invalid { .. } => "ProviderInvalidRequest",
        }
    }

    /// The error for a non-2xx response (other than the 404s the caller handles), classified by
    /// status first and by body second. `scrub` removes secrets from Mux's messages.
    pub(crate) fn from_status(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        scrub: &Scrubber<'_>,
    ) -> Self {
        let code = status.as_u16();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Self::RateLimited {
                retry_after: parse_retry_after(headers, SystemTime::now()),
            };
        }
        let (error_type, messages) = parse_error_body(body, scrub);
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::CONFLICT
        {
            Self::Server {
                status: code,
                message: cut(&join_messages(&messages), MAX_MESSAGE_CHARS),
            }
        } else if status.is_client_error() {
            Self::Rejected {
                status: code,
                error_type,
                messages,
            }
        } else {
            Self::Decode {
                what: "HTTP status",
                detail: format!("HTTP {code} is neither a success nor an error"),
            }
        }
    }

    /// A transport failure, with the URL removed because its path holds the asset id.
    pub(crate) fn transport(source: reqwest::Error) -> Self {
        Self::Transport {
            source: source.without_url(),
        }
    }
}

/// A short word for what kind of transport failure this was, for the one-line `Display`.
fn transport_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "response body broke off"
    } else if err.is_request() {
        "request failed"
    } else {
        "transport error"
    }
}

fn join_messages(messages: &[String]) -> String {
    if messages.is_empty() {
        "no message".to_owned()
    } else {
        messages.join("; ")
    }
}

/// `(error.type, messages)` from an error body. Knows `{"error":{"type","messages"}}`,
/// `{"error":"…"}`, and the 429 shape `{"errors":["…"]}`; any other non-empty body becomes one
/// message holding its start, so a proxy's HTML page still says something.
fn parse_error_body(body: &[u8], scrub: &Scrubber<'_>) -> (Option<String>, Vec<String>) {
    let text = String::from_utf8_lossy(body);
    let clean = |m: &str| cut(&scrub.apply(m), MAX_MESSAGE_CHARS);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .take(MAX_MESSAGES)
                    .map(clean)
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Ok(json) = serde_json::from_str::<Value>(&text) {
        match (json.get("error"), json.get("errors")) {
            (Some(Value::Object(error)), _) => {
                let error_type = error.get("type").and_then(Value::as_str).map(clean);
                let messages = error.get("messages").map(strings).unwrap_or_default();
                return (error_type, messages);
            }
            (Some(Value::String(message)), _) => return (None, vec![clean(message)]),
            (_, Some(errors)) => return (None, strings(errors)),
            _ => {}
        }
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        (None, Vec::new())
    } else {
        (None, vec![clean(trimmed)])
    }
}

/// Removes secrets from text that came from Mux before it is kept in an error, in this order:
/// the query of any URL (signatures live there), the exact secrets of the call (signed URL, its
/// query, the token secret), the asset id of the call, and finally any other token that looks like
/// a Mux id (20 or more ASCII letters and digits), each id replaced by its redacted form.
pub(crate) struct Scrubber<'a> {
    /// Strings replaced by `[redacted]`.
    pub(crate) secrets: Vec<&'a str>,
    /// An asset id replaced by its redacted form.
    pub(crate) asset_id: Option<&'a str>,
}

/// Shortest run of ASCII letters and digits treated as a Mux id; Mux ids are 36 or more.
const MIN_ID_LIKE_LEN: usize = 20;

impl Scrubber<'_> {
    pub(crate) fn apply(&self, text: &str) -> String {
        let mut out = strip_url_queries(text);
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            out = out.replace(secret, "[redacted]");
        }
        if let Some(id) = self.asset_id.filter(|id| !id.is_empty()) {
            out = out.replace(id, &redact_id(id));
        }
        redact_id_like(&out)
    }
}

/// Replaces every run of at least [`MIN_ID_LIKE_LEN`] ASCII letters and digits by its redacted
/// form, because an error about one asset may name another one we do not know.
fn redact_id_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= MIN_ID_LIKE_LEN {
            out.push_str(&redact_id(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Every `http://…` or `https://…` in `text` loses its query and fragment (up to the next
/// whitespace or quote), because a signed URL echoed by Mux would otherwise leak its signature.
fn strip_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url_start(rest) {
        out.push_str(&rest[..start]);
        let url_and_after = &rest[start..];
        let end = url_and_after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(url_and_after.len());
        let url = &url_and_after[..end];
        let kept = url.find(['?', '#']).map_or(url, |q| &url[..q]);
        out.push_str(kept);
        if kept.len() < url.len() {
            out.push_str("?[redacted]");
        }
        rest = &url_and_after[end..];
    }
    out.push_str(rest);
    out
}

fn find_url_start(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How long to wait after a 429, from its headers.
///
/// Rules, in order (mux-node's precedence):
/// 1. `retry-after-ms`: a number of milliseconds (integer or fraction) greater than 0 wins.
///    Anything else in it is ignored and the next rule applies.
/// 2. `Retry-After` as delta-seconds: a non-negative integer; `0` means "now" (0 s).
/// 3. `Retry-After` as an HTTP-date (IMF-fixdate, RFC 850 or asctime): the time left until then,
///    or 0 s if it has passed.
/// 4. Missing, negative, fractional or otherwise unparseable: [`DEFAULT_RETRY_AFTER`] (60 s).
///
/// The result is capped at [`MAX_RETRY_AFTER`] (1 h). `now` is a parameter so the date rule
/// can be tested.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Duration {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms > 0.0)
    {
        let secs = (ms / 1000.0).min(MAX_RETRY_AFTER.as_secs_f64());
        return Duration::from_secs_f64(secs);
    }
    let Some(value) = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return DEFAULT_RETRY_AFTER;
    };
    let delay = if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits; an overflow means "a very long time", which the cap handles.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else if let Ok(at) = httpdate::parse_http_date(value) {
        at.duration_since(now).unwrap_or(Duration::ZERO)
    } else {
        DEFAULT_RETRY_AFTER
    };
    delay.min(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    const NOW: u64 = 1_700_000_000;

    fn parse(pairs: &[(&'static str, &str)]) -> Duration {
        parse_retry_after(&headers(pairs), at(NOW))
    }

    #[test]
    fn retry_after_ms_wins_when_positive() {
        assert_eq!(
            parse(&[("retry-after-ms", "1500")]),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse(&[("retry-after-ms", "2.5")]),
            Duration::from_micros(2500)
        );
        assert_eq!(
            parse(&[("retry-after-ms", "250"), ("retry-after", "30")]),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse(&[("retry-after-ms", "99999999999")]),
            MAX_RETRY_AFTER,
            "capped"
        );
    }

    #[test]
    fn unusable_retry_after_ms_falls_through_to_retry_after() {
        for bad in ["0", "-5", "abc", "NaN", "inf", ""] {
            assert_eq!(
                parse(&[("retry-after-ms", bad), ("retry-after", "7")]),
                Duration::from_secs(7),
                "retry-after-ms={bad:?}"
            );
            assert_eq!(
                parse(&[("retry-after-ms", bad)]),
                DEFAULT_RETRY_AFTER,
                "retry-after-ms={bad:?} alone"
            );
        }
    }

    #[test]
    fn delta_seconds_are_used_as_given() {
        assert_eq!(parse(&[("retry-after", "2")]), Duration::from_secs(2));
        assert_eq!(parse(&[("Retry-After", " 30 ")]), Duration::from_secs(30));
        assert_eq!(parse(&[("retry-after", "0")]), Duration::ZERO);
        assert_eq!(parse(&[("retry-after", "7200")]), MAX_RETRY_AFTER, "capped");
        assert_eq!(
            parse(&[("retry-after", "99999999999999999999999")]),
            MAX_RETRY_AFTER,
            "overflow is capped"
        );
    }

    #[test]
    fn the_first_retry_after_header_counts() {
        assert_eq!(
            parse(&[("retry-after", "3"), ("retry-after", "9")]),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn http_dates_give_the_time_left() {
        let in_90s = httpdate::fmt_http_date(at(NOW + 90));
        assert_eq!(parse(&[("retry-after", &in_90s)]), Duration::from_secs(90));
        // RFC 850 and asctime forms are HTTP-dates too.
        let rfc850 = "Tuesday, 14-Nov-23 22:15:00 GMT"; // NOW + 100 s
        assert_eq!(parse(&[("retry-after", rfc850)]), Duration::from_secs(100));
        let asctime = "Tue Nov 14 22:15:00 2023";
        assert_eq!(parse(&[("retry-after", asctime)]), Duration::from_secs(100));
        let far = httpdate::fmt_http_date(at(NOW + 86_400));
        assert_eq!(parse(&[("retry-after", &far)]), MAX_RETRY_AFTER, "capped");
    }

    #[test]
    fn past_http_dates_mean_now() {
        let past = httpdate::fmt_http_date(at(NOW - 10));
        assert_eq!(parse(&[("retry-after", &past)]), Duration::ZERO);
    }

    #[test]
    fn missing_or_garbage_gives_the_default() {
        assert_eq!(parse(&[]), DEFAULT_RETRY_AFTER);
        for bad in [
            "",
            "-5",
            "1.5",
            "30abc",
            "soon",
            "Tue, 99 Nov 2023 99:99:99 GMT",
        ] {
            assert_eq!(
                parse(&[("retry-after", bad)]),
                DEFAULT_RETRY_AFTER,
                "retry-after={bad:?}"
            );
        }
        let mut map = HeaderMap::new();
        map.insert(RETRY_AFTER, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(parse_retry_after(&map, at(NOW)), DEFAULT_RETRY_AFTER);
    }

    fn no_scrub() -> Scrubber<'static> {
        Scrubber {
            secrets: vec![],
            asset_id: None,
        }
    }

    fn classify(status: u16, body: &str) -> MuxError {
        MuxError::from_status(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            &no_scrub(),
        )
    }

    #[test]
    fn status_decides_before_the_body() {
        let e = classify(429, r#"{"errors":["Too many requests, retry later."]}"#);
        assert_eq!(e.retry_after(), Some(DEFAULT_RETRY_AFTER));
        assert!(e.is_retryable());
        assert_eq!(e.type_name(), "ProviderRateLimited");

        let e = classify(
            400,
            r#"{"error":{"type":"invalid_parameters","messages":["a","b"]}}"#,
        );
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "Mux rejected the request (HTTP 400, invalid_parameters): a; b"
        );

        for status in [500, 502, 503, 408, 409] {
            let e = classify(status, "<html>Bad gateway</html>");
            assert!(e.is_retryable(), "{status}");
            assert_eq!(e.type_name(), "ProviderUnavailable");
        }
        assert_eq!(
            classify(503, r#"{"errors":["busy"]}"#).to_string(),
            "Mux is unavailable (HTTP 503): busy"
        );
        assert_eq!(
            classify(502, "").to_string(),
            "Mux is unavailable (HTTP 502): no message"
        );
        let e = classify(302, "");
        assert_eq!(e.type_name(), "ProviderBadResponse");
        assert!(!e.is_retryable());
    }

    #[test]
    fn odd_error_bodies_still_say_something() {
        match classify(401, r#"{"error":"bad token"}"#) {
            MuxError::Rejected {
                error_type,
                messages,
                ..
            } => {
                assert_eq!(error_type, None);
                assert_eq!(messages, ["bad token"]);
            }
            other => panic!("{other:?}"),
        }
        match classify(422, &"ab ".repeat(700)) {
            MuxError::Rejected { messages, .. } => {
                assert_eq!(messages.len(), 1);
                assert_eq!(messages[0].chars().count(), MAX_MESSAGE_CHARS + 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scrubbing_removes_queries_secrets_and_ids() {
        let scrub = Scrubber {
            secrets: vec!["tok-secret"],
            asset_id: Some("AbCd1234EfGh5678IjKl9012MnOp3456QrSt"),
        };
        let text = "fetch of \"https://s.example/v.mp4?X-Amz-Signature=abc#f\" failed for \
                    AbCd1234EfGh5678IjKl9012MnOp3456QrSt with tok-secret; see HTTP://x.y/?a=b \
                    and asset 00ecNLnqiG02mmQwOgcEeYQU3aAtqiHIyMb01YGKcrt017A";
        let clean = scrub.apply(text);
        assert_eq!(
            clean,
            "fetch of \"https://s.example/v.mp4?[redacted]\" failed for ...QrSt with \
             [redacted]; see HTTP://x.y/?[redacted] and asset ...017A"
        );
    }

    #[test]
    fn every_variant_displays_on_one_line() {
        let errors = [
            MuxError::RateLimited {
                retry_after: Duration::from_secs(2),
            },
            MuxError::Server {
                status: 500,
                message: "boom".to_owned(),
            },
            MuxError::Rejected {
                status: 401,
                error_type: None,
                messages: vec![],
            },
            MuxError::NotFound,
            MuxError::Decode {
                what: "create-asset response",
                detail: "no `data` field in the response body".to_owned(),
            },
            MuxError::Invalid {
                what: "asset id",
                detail: "empty".to_owned(),
            },
        ];
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "Mux rate limit hit (HTTP 429); retry after 2s",
                "Mux is unavailable (HTTP 500): boom",
                "Mux rejected the request (HTTP 401): no message",
                "Mux has no such asset (HTTP 404)",
                "unexpected create-asset response from Mux: no `data` field in the response body",
                "invalid Mux asset id: empty",
            ]
        );
    }
}
